/**
 * The node's default {@link Dialer}: a {@link Channel} over npm `ws`
 * ({@link WsClientConnection}), whose socket sets TCP_NODELAY. Deno's native
 * client leaves Nagle's algorithm on, so a second small frame sent before
 * the first is acknowledged waits for the peer's delayed ACK (40 ms on
 * Linux); scripts/RESULTS.md has the measurements. The native
 * {@link webSocketDialer} stays available through the `dialer` option.
 * @module
 */
import { clampCloseReason } from "../auth/handshake.ts";
import type { Channel, ChannelReceiver, DialResult } from "./channel.ts";
import { clientCloseCode } from "./websocket.ts";
import { ABNORMAL_CLOSE, WsClientConnection } from "./ws_client.ts";

/**
 * A `Dialer` for `ws://` and `wss://` URLs over npm `ws` with TCP_NODELAY.
 * Aborting the signal before the socket opens abandons the dial and
 * reports the attempt as failed.
 */
export function noDelayDialer(
  url: string,
  signal: AbortSignal,
  headers?: Record<string, string>,
): Promise<DialResult> {
  let connection: WsClientConnection;
  try {
    connection = WsClientConnection.open(url, { headers });
  } catch (error) {
    return Promise.resolve({ ok: false, code: ABNORMAL_CLOSE, reason: (error as Error).message });
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
      resolve({ ok: false, code, reason: reason || "unreachable" });
      return;
    }
    if (ended) return;
    ended = true;
    if (receiver) receiver.closed(code, reason);
    else earlyClose = { code, reason };
  };
  return promise;
}
