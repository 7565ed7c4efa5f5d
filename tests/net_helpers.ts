/** Helpers for tests over real sockets: nodes on port 0, raw protocol peers, bounded waits. */
import { ClientHandshake } from "../auth/handshake.ts";
import { PreauthClient } from "../auth/preauth.ts";
import { preauthenticate } from "../auth/preauth_http.ts";
import type { Identity } from "../crdt/identity.ts";
import { HuskiesNode, type NodeOptions } from "../sync/node.ts";

/** A node served on 127.0.0.1 at a free port. */
export interface ServedNode {
  node: HuskiesNode;
  url: string;
  port: number;
  server: Deno.HttpServer<Deno.NetAddr>;
  stop(): Promise<void>;
}

/** Opens a node and serves it on 127.0.0.1 (port 0 unless given). */
export async function serveNode(options: NodeOptions = {}, port = 0): Promise<ServedNode> {
  const node = await HuskiesNode.open({ open: true, ...options });
  const server = Deno.serve(
    { hostname: "127.0.0.1", port, onListen() {} },
    (req, info) => node.handleRequest(req, info) ?? new Response("not found", { status: 404 }),
  );
  let stopped = false;
  return {
    node,
    server,
    port: server.addr.port,
    url: `ws://127.0.0.1:${server.addr.port}/crdt-sync`,
    async stop() {
      if (stopped) return;
      stopped = true;
      await node.close();
      await server.shutdown();
    },
  };
}

/** Polls `condition` every few ms until it holds, failing after `timeoutMs`. */
export async function eventually(
  condition: () => boolean,
  what: string,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) {
      throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** A peer speaking the wire protocol by hand, for protocol-level tests (it answers heartbeats). */
export class RawPeer {
  readonly socket: WebSocket;
  readonly #frames: (string | Uint8Array)[] = [];
  #notify: (() => void) | undefined;
  readonly closed: Promise<CloseEvent>;
  /** Resolves with the peer's node id once the handshake is done. */
  readonly authenticated: Promise<string>;
  /** Heartbeats (`ping`) received and answered; they are not queued as frames. */
  heartbeats = 0;

  private constructor(
    url: string,
    handshake: { receive(text: string): import("../auth/handshake.ts").Step },
    headers?: Record<string, string>,
  ) {
    this.socket = headers ? new WebSocket(url, { headers }) : new WebSocket(url);
    this.socket.binaryType = "arraybuffer";
    const auth = Promise.withResolvers<string>();
    this.authenticated = auth.promise;
    let done = false;
    this.closed = new Promise((resolve) => {
      this.socket.onclose = (event) => {
        auth.reject(new Error(`closed during handshake: ${event.code} ${event.reason}`));
        this.#notify?.();
        resolve(event);
      };
    });
    this.authenticated.catch(() => {});
    this.socket.onmessage = (event) => {
      const data = typeof event.data === "string" ? event.data : new Uint8Array(event.data);
      if (!done) {
        const step = handshake.receive(data as string);
        if (step.send) this.socket.send(step.send);
        if (step.close) this.socket.close(step.close.code, step.close.reason);
        if (step.done) {
          done = true;
          auth.resolve(step.done.peer);
        }
        return;
      }
      // Answer the node's heartbeat as a peer would; tests see every other frame.
      if (typeof data === "string" && data.startsWith('{"type":"ping"')) {
        this.heartbeats++;
        this.socket.send('{"type":"pong"}');
        return;
      }
      this.#frames.push(data);
      this.#notify?.();
    };
  }

  /**
   * Connects and completes the handshake: before the upgrade (`PROTOCOL.md`
   * §3.10) unless `inBand`, or when the server has no challenge route.
   */
  static async connect(
    url: string,
    identity: Identity,
    options: { token?: string; hubKey?: string; inBand?: boolean } = {},
  ): Promise<RawPeer> {
    const { inBand, ...credentials } = options;
    let peer: RawPeer | undefined;
    if (!inBand) {
      const client = new PreauthClient({ identity, ...credentials });
      const upgrade = await preauthenticate(url, client);
      if ("close" in upgrade) {
        throw new Error(
          `pre-authentication refused: ${upgrade.close.code} ${upgrade.close.reason}`,
        );
      }
      if ("url" in upgrade) peer = new RawPeer(upgrade.url, client, upgrade.headers);
    }
    if (!peer) {
      const handshake = new ClientHandshake({ identity, ...credentials });
      handshake.start();
      peer = new RawPeer(url, handshake);
    }
    await peer.authenticated;
    return peer;
  }

  /** Sends a text frame (objects are JSON-encoded) or binary frame. */
  send(frame: unknown): void {
    this.socket.send(
      typeof frame === "string" || frame instanceof Uint8Array ? frame : JSON.stringify(frame),
    );
  }

  /** Frames received so far and not yet taken. */
  get buffered(): number {
    return this.#frames.length;
  }

  /** The next frame, waiting at most `timeoutMs`. */
  async next(timeoutMs = 10_000): Promise<string | Uint8Array> {
    const deadline = Date.now() + timeoutMs;
    while (this.#frames.length === 0) {
      if (this.socket.readyState === WebSocket.CLOSED) throw new Error("socket closed");
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no frame within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#notify = () => (clearTimeout(timer), resolve());
      });
      this.#notify = undefined;
    }
    return this.#frames.shift()!;
  }

  /** The next text frame parsed as JSON (binary frames are decoded too). */
  async nextJson(timeoutMs?: number): Promise<Record<string, unknown>> {
    const frame = await this.next(timeoutMs);
    return JSON.parse(typeof frame === "string" ? frame : new TextDecoder().decode(frame));
  }

  /** Closes the socket and waits for the close to finish. */
  async close(): Promise<void> {
    if (this.socket.readyState < WebSocket.CLOSING) this.socket.close(1000, "test done");
    await this.closed;
  }
}
