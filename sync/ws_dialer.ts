/**
 * The node's default {@link Dialer}: a {@link Channel} over npm `ws`
 * ({@link WsClientConnection}), whose socket sets TCP_NODELAY. Deno's native
 * client leaves Nagle's algorithm on, so a second small frame sent before
 * the first is acknowledged waits for the peer's delayed ACK (40 ms on
 * Linux); scripts/RESULTS.md has the measurements. The native
 * {@link webSocketDialer} stays available through the `dialer` option, and
 * is the default of a process without env access to what `ws` reads.
 * @module
 */
import { clampCloseReason } from "../auth/handshake.ts";
import { closeForUpgradeStatus } from "../auth/preauth_http.ts";
import type { Channel, ChannelReceiver, Dialer, DialResult } from "./channel.ts";
import { clientCloseCode, webSocketDialer } from "./websocket.ts";
import { ABNORMAL_CLOSE, WS_ENV_VARIABLES, WsClientConnection } from "./ws_client.ts";

/**
 * The dialer a node uses unless told otherwise: {@link noDelayDialer} when
 * the process may read the environment variables npm `ws` reads as it loads,
 * else Deno's native {@link webSocketDialer} (asking never prompts).
 */
export function defaultDialer(): Dialer {
  const allowed = WS_ENV_VARIABLES.every((variable) =>
    Deno.permissions.querySync({ name: "env", variable }).state === "granted"
  );
  return allowed ? noDelayDialer : webSocketDialer;
}

/**
 * True for the built-in dialers, which take `ws://` and `wss://` URLs and
 * send upgrade headers, so they can pre-authenticate (`PROTOCOL.md` §3.10).
 */
export function isWebSocketDialer(dialer: Dialer): boolean {
  return dialer === noDelayDialer || dialer === webSocketDialer;
}

/**
 * A `Dialer` for `ws://` and `wss://` URLs over npm `ws` with TCP_NODELAY.
 * Aborting the signal before the socket opens abandons the dial and
 * reports the attempt as failed.
 */
export async function noDelayDialer(
  url: string,
  signal: AbortSignal,
  headers?: Record<string, string>,
): Promise<DialResult> {
  let connection: WsClientConnection;
  try {
    connection = await WsClientConnection.open(url, { headers });
  } catch (error) {
    return { ok: false, code: ABNORMAL_CLOSE, reason: (error as Error).message };
  }
  const { promise, resolve } = Promise.withResolvers<DialResult>();
  let settled = false;
  let receiver: ChannelReceiver | undefined;
  const early: (string | Uint8Array)[] = [];
  let earlyClose: { code: number; reason: string } | undefined;
  let ended = false;
  const channel: Channel = {
    send: (data) => connection.send(data),
    close(code, reason) {
      const adapted = clientCloseCode(code, reason);
      try {
        connection.close(adapted.code, clampCloseReason(adapted.reason));
      } catch {
        // Already closing or closed.
      }
    },
    get bufferedAmount() {
      return connection.bufferedAmount;
    },
    listen(next) {
      if (receiver) throw new Error("Cannot listen on a channel twice");
      receiver = next;
      for (const data of early.splice(0)) next.frame(data);
      if (earlyClose) next.closed(earlyClose.code, earlyClose.reason);
    },
  };
  const onAbort = () => {
    if (settled) return;
    settled = true;
    connection.close(1000, "client stopping");
    resolve({ ok: false, code: 1000, reason: "client stopping" });
  };
  if (signal.aborted) onAbort();
  signal.addEventListener("abort", onAbort, { once: true });
  connection.onopen = () => {
    signal.removeEventListener("abort", onAbort);
    if (settled) {
      connection.close(1000, "client stopping");
      return;
    }
    settled = true;
    resolve({ ok: true, channel });
  };
  connection.onmessage = (data) => {
    if (receiver) receiver.frame(data);
    else early.push(data);
  };
  connection.onclose = (code, reason) => {
    signal.removeEventListener("abort", onAbort);
    if (!settled) {
      settled = true;
      // An upgrade answered with an HTTP refusal reports that refusal's close code, as Deno's does.
      const status = connection.failure?.status;
      if (status !== undefined && status !== 404) {
        resolve({ ok: false, ...closeForUpgradeStatus(status) });
      } else resolve({ ok: false, code, reason: reason || "unreachable" });
      return;
    }
    if (ended) return;
    ended = true;
    if (receiver) receiver.closed(code, reason);
    else earlyClose = { code, reason };
  };
  return promise;
}
