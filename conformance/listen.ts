/**
 * A listener the peer under test dials (`--listen`), for the cases where
 * the peer is the connecting side.
 * @module
 */

import { Conn } from "./wire/socket.ts";

/**
 * Accepts the peer's WebSocket connections at `/crdt-sync`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { HuskiesNode } from "@huskies/sync";
 * import { ListenServer } from "@huskies/sync/conformance";
 *
 * const listen = await ListenServer.start("127.0.0.1:0");
 * try {
 *   await using peer = await HuskiesNode.open();
 *   peer.connect(listen.url); // the peer under test dials the suite
 *   const conn = await listen.accept(5000);
 *   assert.ok(conn !== undefined);
 * } finally {
 *   await listen.close();
 * }
 * ```
 */
export class ListenServer {
  readonly #server: Deno.HttpServer<Deno.NetAddr>;
  readonly #queue: Conn[] = [];
  readonly #all = new Set<Conn>();
  #wake: (() => void) | undefined;

  private constructor(hostname: string, port: number, ready: (addr: Deno.NetAddr) => void) {
    this.#server = Deno.serve({ hostname, port, onListen: ready }, (request) => {
      if (new URL(request.url).pathname !== "/crdt-sync") {
        return new Response("not found", { status: 404 });
      }
      if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
        return new Response("upgrade required", { status: 426 });
      }
      const { socket, response } = Deno.upgradeWebSocket(request);
      const conn = new Conn(socket, true);
      this.#all.add(conn);
      socket.addEventListener("open", () => {
        this.#queue.push(conn);
        const wake = this.#wake;
        this.#wake = undefined;
        wake?.();
      });
      return response;
    });
  }

  /** Listens on `HOST:PORT` (port 0 picks a free one). */
  static async start(address: string): Promise<ListenServer> {
    const match = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(address);
    if (!match) throw new TypeError(`Cannot listen on ${address}: expected HOST:PORT`);
    const hostname = match[1].replace(/^\[|\]$/g, "");
    let server!: ListenServer;
    await new Promise<void>((resolve) => {
      server = new ListenServer(hostname, Number(match[2]), () => resolve());
    });
    return server;
  }

  /** The address listened on. */
  get addr(): Deno.NetAddr {
    return this.#server.addr;
  }

  /** The sync URL the peer should dial. */
  get url(): string {
    const host = this.addr.hostname.includes(":") ? `[${this.addr.hostname}]` : this.addr.hostname;
    return `ws://${host}:${this.addr.port}/crdt-sync`;
  }

  /** The next connection the peer opened, or undefined after `timeoutMs`. */
  async accept(timeoutMs: number): Promise<Conn | undefined> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const conn = this.#queue.shift();
      // A connection that waited too long was closed by the peer's own handshake timeout.
      if (conn && !conn.isClosed) return conn;
      if (conn) continue;
      const left = deadline - Date.now();
      if (left <= 0) return undefined;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#wake = () => (clearTimeout(timer), resolve());
      });
    }
  }

  /** Closes every connection the peer opened and stops listening. */
  async close(): Promise<void> {
    for (const conn of this.#all) conn.close();
    await this.#server.shutdown();
  }
}
