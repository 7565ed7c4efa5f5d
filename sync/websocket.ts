/**
 * The Deno WebSocket transport: a {@link Channel} over a `WebSocket`, the
 * server-side upgrade of `GET /crdt-sync` with admission limits, and a
 * {@link Dialer} for `ws://` and `wss://` URLs. It absorbs the WebSocket
 * quirks: a client may only send close codes 1000 and 3000-4999, close
 * handlers can fire twice, abnormal closes report 0 or 1006, and sends after
 * a close throw.
 * @module
 */
import type { NodeId } from "../crdt/identity.ts";
import type { Admission } from "../auth/limits.ts";
import { clampCloseReason } from "../auth/handshake.ts";
import type { PreauthServer } from "../auth/preauth.ts";
import {
  challengeResponse,
  checkUpgradeRequest,
  closeForUpgradeStatus,
  isChallengeRequest,
  refusalResponse,
} from "../auth/preauth_http.ts";
import type { Scope } from "../auth/trust.ts";
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

/** A peer authenticated before the upgrade: its key, scope and the welcome to send first. */
export interface Preauthenticated {
  /** The peer's key. */
  peer: string;
  /** The scope granted. */
  scope: Scope;
  /** The signed `welcome` frame, the first frame on the socket. */
  welcome: string;
}

/** What {@link handleSyncRequest} needs from the node. */
export interface SyncEndpoint {
  /** True once the node is shutting down (new connections get 503). */
  readonly closing: boolean;
  /** Admits one unauthenticated request from an address, or refuses it. */
  admit(address: string): Admission;
  /** Issues challenges and checks pre-upgrade credentials (`PROTOCOL.md` §3.10). */
  readonly preauth: PreauthServer;
  /**
   * Admits one in-band handshake (a request without a credential, when the
   * node allows them): returns its release, or `undefined` when the cap of
   * concurrent in-band handshakes is reached.
   */
  admitInBand(): (() => void) | undefined;
  /** Idle timeout for the WebSocket-level ping, seconds. */
  readonly idleTimeoutSecs: number;
  /** Called when an upgrade is refused before it happens (its in-band close code and reason). */
  onRefused?(remote: string, code: number, reason: string, key?: NodeId): void;
  /** The logger. */
  readonly logger: Logger;
  /**
   * Runs the handshake (or, with `preauthenticated`, just sends the welcome)
   * and the session on an open channel; `release` ends the admission.
   */
  accept(
    channel: Channel,
    remote: string,
    release: (authenticated: boolean) => void,
    preauthenticated?: Preauthenticated,
  ): void;
}

/** Whether an upgrade request carries everything `Deno.upgradeWebSocket` needs. */
function isWellFormedUpgrade(request: Request): boolean {
  const headers = request.headers;
  return request.method === "GET" &&
    /(^|,)\s*upgrade\s*(,|$)/i.test(headers.get("connection") ?? "") &&
    headers.get("sec-websocket-version") === "13" && headers.has("sec-websocket-key");
}

/**
 * A pool of `size` slots: each call takes one and returns its release
 * (idempotent), or `undefined` when all are taken.
 */
export function slotPool(size: number): () => (() => void) | undefined {
  let taken = 0;
  return () => {
    if (taken >= size) return undefined;
    taken++;
    let released = false;
    return () => {
      if (!released) (released = true, taken--);
    };
  };
}

/**
 * Handles `GET /crdt-sync/challenge` (a fresh pre-upgrade challenge) and
 * `GET /crdt-sync` (WebSocket upgrade, authenticated BEFORE the upgrade) and
 * returns the response; returns `undefined` for other paths so the caller can
 * serve them.
 */
export function handleSyncRequest(
  endpoint: SyncEndpoint,
  request: Request,
  info?: Deno.ServeHandlerInfo,
): Response | undefined {
  if (isChallengeRequest(request, SYNC_PATH)) {
    if (endpoint.closing) return new Response("node is shutting down\n", { status: 503 });
    return challengeResponse(endpoint.preauth);
  }
  if (new URL(request.url).pathname !== SYNC_PATH) return undefined;
  if (endpoint.closing) return new Response("node is shutting down\n", { status: 503 });
  if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
    return new Response("this endpoint speaks WebSocket\n", { status: 426 });
  }
  // Check the upgrade headers before the credential: a token is redeemed by the check.
  if (!isWellFormedUpgrade(request)) {
    return new Response("bad WebSocket upgrade\n", { status: 400 });
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
  // The credential is checked before the upgrade: no unauthenticated WebSocket exists.
  let check: ReturnType<typeof checkUpgradeRequest>;
  try {
    check = checkUpgradeRequest(request, endpoint.preauth);
  } catch (error) {
    release(false);
    endpoint.logger.log("error", "pre-authentication failed on our side", {
      address,
      error: (error as Error).message,
    });
    return new Response("internal error\n", { status: 500 });
  }
  let inBandRelease: (() => void) | undefined;
  if (check.kind === "refused") {
    release(false);
    const { code, reason, status, key } = check.refusal;
    endpoint.logger.log("warn", "handshake refused", { remote: address, code, reason, status });
    endpoint.onRefused?.(address, code, reason, key);
    return refusalResponse(check.refusal);
  }
  if (check.kind === "accepted") {
    release(true);
  } else {
    inBandRelease = endpoint.admitInBand();
    if (!inBandRelease) {
      release(false);
      endpoint.logger.log("warn", "connection refused", { address, reason: "in-band cap" });
      return new Response("too many in-band handshakes\n", {
        status: 429,
        headers: { "retry-after": "5" },
      });
    }
  }
  const endInBand = () => {
    inBandRelease?.();
    inBandRelease = undefined;
  };
  let upgraded: { socket: WebSocket; response: Response };
  try {
    upgraded = Deno.upgradeWebSocket(request, { idleTimeout: endpoint.idleTimeoutSecs });
  } catch (error) {
    release(false);
    endInBand();
    return new Response(`bad WebSocket upgrade: ${(error as Error).message}\n`, { status: 400 });
  }
  const { socket, response } = upgraded;
  const channel = webSocketChannel(socket, false);
  let opened = false;
  socket.addEventListener("open", () => {
    opened = true;
    const preauthenticated = check.kind === "accepted"
      ? { peer: check.peer, scope: check.scope, welcome: check.welcome }
      : undefined;
    endpoint.accept(channel, address, (authenticated) => {
      endInBand();
      release(authenticated);
    }, preauthenticated);
  }, { once: true });
  socket.addEventListener("close", () => {
    endInBand();
    // A socket that closes before it opens never reaches the handshake.
    if (!opened) release(false);
  }, { once: true });
  return response;
}

/**
 * A `Dialer` for `ws://` and `wss://` URLs, with `WebSocket`; `headers` go on
 * the upgrade request (the pre-upgrade credential). Aborting the signal
 * before the socket opens closes it and reports the attempt as failed. An
 * upgrade answered with an HTTP refusal reports that refusal's close code.
 */
export function webSocketDialer(
  url: string,
  signal: AbortSignal,
  headers?: Record<string, string>,
): Promise<DialResult> {
  let socket: WebSocket;
  try {
    socket = headers ? new WebSocket(url, { headers }) : new WebSocket(url);
  } catch (error) {
    return Promise.resolve({ ok: false, code: 1006, reason: (error as Error).message });
  }
  const { promise, resolve } = Promise.withResolvers<DialResult>();
  const channel = webSocketChannel(socket, true);
  let settled = false;
  let refusedStatus: number | undefined;
  const onAbort = () => {
    if (settled) return;
    settled = true;
    channel.close(CloseCode.NORMAL, "client stopping");
    resolve({ ok: false, code: CloseCode.NORMAL, reason: "client stopping" });
  };
  if (signal.aborted) onAbort();
  signal.addEventListener("abort", onAbort, { once: true });
  socket.addEventListener("error", (event) => {
    // Deno reports an upgrade answered without 101 as "Invalid status code: 403".
    const match = /status code:? (\d{3})/i.exec((event as ErrorEvent).message ?? "");
    if (match) refusedStatus = Number(match[1]);
  });
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
    if (refusedStatus !== undefined && refusedStatus !== 404) {
      resolve({ ok: false, ...closeForUpgradeStatus(refusedStatus) });
      return;
    }
    resolve({ ok: false, code: event.code, reason: event.reason || "unreachable" });
  }, { once: true });
  return promise;
}
