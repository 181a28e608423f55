// The `ws` package (a dependency of the Node entry): only its WebSocket class is used,
// as a `WebSocketConstructor` (js/types.ts).
declare module "ws" {
  export const WebSocket: unknown;
}
