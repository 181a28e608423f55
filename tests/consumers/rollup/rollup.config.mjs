// Rollup's usual setup for a page with npm dependencies: node-resolve finds them; no
// asset or worker plugin (so the package's inline wasm copy is used, and its worker's
// file is not shipped).
import { nodeResolve } from "@rollup/plugin-node-resolve";

export default {
  input: "src/index.js",
  output: { dir: "dist", format: "es" },
  plugins: [nodeResolve({ browser: true })],
};
