// What the dashboard puts on `window` for tests and the demo tour (src/main.js).
interface Window {
  edgesync: { createClient: typeof import("edgesync").createClient };
  dashboard: { device: import("./src/device.js").Device; db: import("edgesync").EmbeddedReplica };
}
