/**
 * One WebSocket connection to a libSQL server and its Hrana session (the protocol is
 * `WsSession`, src/wasm/ws.rs). Messages sent before the socket is open wait in order;
 * what arrives goes to the session; when the socket closes, the session fails every
 * waiting call, and the client opens a new connection for the next one (js/remote.ts).
 */
import type * as Full from "./wasm/edgesync.js";
import type { WebSocketConstructor, WebSocketEvent, WebSocketLike } from "./types.js";
import type { RemoteGlue } from "./runtime.js";

/** Hrana 3 and 2 over JSON, as libSQL servers speak them (the server picks). */
const SUBPROTOCOLS = ["hrana3", "hrana2"];
const CONNECTING = 0;
const OPEN = 1;

export class WsConnection {
  readonly session: Full.WsSession;
  #socket: WebSocketLike;
  #queue: string[] | undefined = [];
  #error: string | undefined;
  #closed = false;

  constructor(glue: RemoteGlue, WebSocket: WebSocketConstructor, url: string, jwt: string | undefined, intMode: string) {
    this.#socket = new WebSocket(url, SUBPROTOCOLS);
    this.#socket.binaryType = "arraybuffer";
    const send = (text: string) => {
      if (this.#queue !== undefined) this.#queue.push(text);
      else if (this.#socket.readyState === OPEN) this.#socket.send(text);
      else throw new Error("the WebSocket is closed");
    };
    this.session = new glue.WsSession(send, jwt, intMode);
    this.#socket.addEventListener("open", () => {
      const queued = this.#queue ?? [];
      this.#queue = undefined;
      for (const text of queued) this.#socket.send(text);
    });
    this.#socket.addEventListener("message", (ev: WebSocketEvent) => {
      const text = typeof ev.data === "string" ? ev.data : new TextDecoder().decode(ev.data as ArrayBuffer);
      if (!this.session.receive(text)) this.close();
    });
    this.#socket.addEventListener("error", (ev: WebSocketEvent) => {
      this.#error = ev.message ?? (ev.error as Error | undefined)?.message;
    });
    this.#socket.addEventListener("close", (ev: WebSocketEvent) => {
      this.#closed = true;
      this.#queue = undefined;
      this.session.closed(this.#error ?? `WebSocket was closed with code ${ev.code}${ev.reason ? `: ${ev.reason}` : ""}`);
    });
  }

  /** Whether calls can be made on this connection (it may still be connecting). */
  get open(): boolean {
    return !this.#closed && this.session.isOpen && this.#socket.readyState <= OPEN;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#queue = undefined;
    this.session.closed("The client is closed");
    if (this.#socket.readyState === CONNECTING || this.#socket.readyState === OPEN) this.#socket.close();
  }
}
