/**
 * The Deno WebSocket transport: a {@link Channel} over a `WebSocket`, the
 * server-side upgrade of `GET /crdt-sync` with admission limits, and a
 * {@link Dialer} for `ws://` and `wss://` URLs. It absorbs the WebSocket
 * quirks: a client may only send close codes 1000 and 3000-4999, close
 * handlers can fire twice, abnormal closes report 0 or 1006, and sends after
 * a close throw.
 * @module
 */
import type { Admission } from "../auth/limits.ts";
import { clampCloseReason } from "../auth/handshake.ts";
import { CloseCode } from "../protocol/close_codes.ts";
import type { Channel, ChannelReceiver, DialResult } from "./channel.ts";
import type { Logger } from "./logger.ts";

/** The sync endpoint's path. */
export const SYNC_PATH = "/crdt-sync";

/** The close code a client would send instead of `code` (and the reason that then carries it). */
export function clientCloseCode(code: number, reason: string): { code: number; reason: string } {
  if (code !== 1000 && (code < 3000 || code > 4999)) {
    return { code: 1000, reason: `${code} ${reason}` };
  }
  return { code, reason };
}

/**
 * A channel over an open (or opening) WebSocket. `client` marks the dialling
 * side, whose close codes are adapted (see {@link clientCloseCode}). Frames
 * that arrive before {@link Channel.listen} wait for it.
 */
export function webSocketChannel(socket: WebSocket, client: boolean): Channel {
  socket.binaryType = "arraybuffer";
  let receiver: ChannelReceiver | undefined;
  const early: (string | Uint8Array)[] = [];
  let earlyClose: { code: number; reason: string } | undefined;
  let closed = false;
  socket.onmessage = (event) => {
    const data = typeof event.data === "string" ? event.data : new Uint8Array(event.data);
    if (receiver) receiver.frame(data);
    else early.push(data);
  };
  socket.onerror = () => {};
  socket.onclose = (event) => {
    if (closed) return; // some runtimes fire close twice
    closed = true;
    if (receiver) receiver.closed(event.code, event.reason);
    else earlyClose = { code: event.code, reason: event.reason };
  };
  return {
    send(data) {
      socket.send(data);
    },
    close(code, reason) {
      const adapted = client ? clientCloseCode(code, reason) : { code, reason };
      try {
        socket.close(adapted.code, clampCloseReason(adapted.reason));
      } catch {
        // Already closing or closed.
      }
    },
    get bufferedAmount() {
      return socket.bufferedAmount;
    },
    listen(next) {
      if (receiver) throw new Error("Cannot listen on a channel twice");
      receiver = next;
      for (const data of early.splice(0)) next.frame(data);
      if (earlyClose) next.closed(earlyClose.code, earlyClose.reason);
    },
  };
}

/** What {@link handleSyncRequest} needs from the node. */
export interface SyncEndpoint {
  /** True once the node is shutting down (new connections get 503). */
  readonly closing: boolean;
  /** Admits one unauthenticated connection from an address, or refuses it. */
  admit(address: string): Admission;
  /** Idle timeout for the WebSocket-level ping, seconds. */
  readonly idleTimeoutSecs: number;
  /** The logger. */
  readonly logger: Logger;
  /** Runs the handshake and session on an open channel; `release` ends the admission. */
  accept(channel: Channel, remote: string, release: (authenticated: boolean) => void): void;
}

/**
 * Handles `GET /crdt-sync` (WebSocket upgrade) and returns the response;
 * returns `undefined` for other paths so the caller can serve them.
 */
export function handleSyncRequest(
  endpoint: SyncEndpoint,
  request: Request,
  info?: Deno.ServeHandlerInfo,
): Response | undefined {
  if (new URL(request.url).pathname !== SYNC_PATH) return undefined;
  if (endpoint.closing) return new Response("node is shutting down\n", { status: 503 });
  if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
    return new Response("this endpoint speaks WebSocket\n", { status: 426 });
  }
  const address = info && "hostname" in info.remoteAddr ? info.remoteAddr.hostname : "unknown";
  const admission = endpoint.admit(address);
  if (!admission.ok) {
    endpoint.logger.log("warn", "connection refused", { address, reason: admission.reason });
    return new Response(`${admission.reason}\n`, {
      status: 429,
      headers: { "retry-after": "5" },
    });
  }
  let released = false;
  const release = (authenticated: boolean) => {
    if (released) return;
    released = true;
    admission.release(authenticated);
  };
  let upgraded: { socket: WebSocket; response: Response };
  try {
    upgraded = Deno.upgradeWebSocket(request, { idleTimeout: endpoint.idleTimeoutSecs });
  } catch (error) {
    release(false);
    return new Response(`bad WebSocket upgrade: ${(error as Error).message}\n`, { status: 400 });
  }
  const { socket, response } = upgraded;
  const channel = webSocketChannel(socket, false);
  let opened = false;
  socket.addEventListener("open", () => {
    opened = true;
    endpoint.accept(channel, address, release);
  }, { once: true });
  // A socket that closes before it opens never reaches the handshake.
  socket.addEventListener("close", () => {
    if (!opened) release(false);
  }, { once: true });
  return response;
}

/**
 * A `Dialer` for `ws://` and `wss://` URLs, with `WebSocket`. Aborting the signal
 * before the socket opens closes it and reports the attempt as failed.
 */
export function webSocketDialer(url: string, signal: AbortSignal): Promise<DialResult> {
  let socket: WebSocket;
  try {
    socket = new WebSocket(url);
  } catch (error) {
    return Promise.resolve({ ok: false, code: 1006, reason: (error as Error).message });
  }
  const { promise, resolve } = Promise.withResolvers<DialResult>();
  const channel = webSocketChannel(socket, true);
  let settled = false;
  const onAbort = () => {
    if (settled) return;
    settled = true;
    channel.close(CloseCode.NORMAL, "client stopping");
    resolve({ ok: false, code: CloseCode.NORMAL, reason: "client stopping" });
  };
  if (signal.aborted) onAbort();
  signal.addEventListener("abort", onAbort, { once: true });
  socket.addEventListener("open", () => {
    signal.removeEventListener("abort", onAbort);
    if (settled) return;
    settled = true;
    resolve({ ok: true, channel });
  }, { once: true });
  socket.addEventListener("close", (event) => {
    signal.removeEventListener("abort", onAbort);
    if (settled) return;
    settled = true;
    resolve({ ok: false, code: event.code, reason: event.reason || "unreachable" });
  }, { once: true });
  return promise;
}
