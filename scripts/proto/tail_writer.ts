/**
 * The fan-out writer of scripts/proto/tail_probe.ts, as the harness has it
 * (a HuskiesNode in memory dialling the hub with `noDelayDialer`, `rate`
 * 100-byte updates/s), with the time each stamp left on its socket. Imported,
 * it runs in the caller's process (as the harness runs it, beside the
 * subscribers); run as a script, in its own, writing `{start, sends}` to
 * `<out file>` (sends: stamp, time pairs).
 *
 * Usage: deno run -A scripts/proto/tail_writer.ts <url> <rate> <updates> <out file> [live batch ms]
 * @module
 */
import { HuskiesNode } from "../../sync/node.ts";
import { noDelayDialer } from "../../sync/ws_dialer.ts";
import { WsClientConnection } from "../../sync/ws_client.ts";
import { forEachStamp, nowMs, tick, writeAtRate } from "../compare/proc.ts";

/** What {@link runWriter} saw: when writing began, and [stamp, socket send] pairs. */
export interface WriterTrace {
  /** When the first update was due, ms since the epoch. */
  start: number;
  /** Stamp, send time pairs (preallocated: no garbage for the collectors watched). */
  sends: Float64Array;
  /** Numbers used in `sends`. */
  used: number;
}

let trace: WriterTrace | undefined;
const wsSend = WsClientConnection.prototype.send;
WsClientConnection.prototype.send = function (this: WsClientConnection, data) {
  const at = nowMs();
  const t = trace;
  if (t !== undefined) {
    forEachStamp(data, (stamp) => {
      if (t.used + 2 > t.sends.length) return;
      t.sends[t.used++] = stamp;
      t.sends[t.used++] = at;
    });
  }
  return wsSend.call(this, data);
};

/** Connects a writer to `url`, commits `updates` updates at `rate`/s, closes it. */
export async function runWriter(
  url: string,
  rate: number,
  updates: number,
  liveBatchMs?: number,
): Promise<WriterTrace> {
  const t: WriterTrace = { start: 0, sends: new Float64Array(4 * updates), used: 0 };
  trace = t;
  const writer = await HuskiesNode.open({
    open: true,
    dialer: noDelayDialer,
    ...(liveBatchMs !== undefined ? { liveBatchMs } : {}),
  });
  writer.connect(url);
  while (!writer.sessions().some((s) => s.stats().state === "live")) await tick();
  t.start = nowMs();
  await writeAtRate(writer.replica, updates, rate, t.start);
  // Until the last update is on the socket.
  while (t.used < 2 * updates) await tick();
  await writer.close();
  return t;
}

if (import.meta.main) {
  const [url, rate, updates, out, liveBatchMs] = Deno.args;
  const t = await runWriter(
    url,
    Number(rate),
    Number(updates),
    liveBatchMs === undefined ? undefined : Number(liveBatchMs),
  );
  Deno.writeTextFileSync(
    out,
    JSON.stringify({ start: t.start, sends: [...t.sends.subarray(0, t.used)] }),
  );
  Deno.exit(0);
}
