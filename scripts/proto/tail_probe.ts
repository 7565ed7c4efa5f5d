/**
 * Where the fan-out tail comes from (issue 11, K=10 p99): the harness's
 * huskies fan-out (scripts/compare/huskies_clients.ts: K counting peers on
 * Deno's client, one writer node on npm `ws`, `rate` updates/s) with a
 * timestamp at every hop of every stamped value: the writer's commit (the
 * stamp), the writer's socket send, the hub's receive, the hub's send to
 * each peer, the peer's arrival (scripts/proto/tail_hub.ts traces the hub).
 * Both processes also note their event-loop stalls (a 5 ms interval timer
 * firing late); with `--gc` both run with `--trace-gc` and the collections
 * of 1 ms or more are listed (`--trace-gc` for this process's own, as below).
 *
 * Prints, for the slowest 1 % of deliveries, which hop their time went to,
 * and the tail's deliveries grouped by update (one slow update for every peer
 * points upstream of the fan-out; one peer slow alone points at that peer).
 *
 * Usage: deno run -A [--v8-flags=--trace-gc] scripts/proto/tail_probe.ts [--k 10] [--rate 1000] [--updates 5000]
 *        [--store sqlite|memory] [--live-batch-ms N] [--gc] [--json out.json]
 *        [--writer-process]   (the writer in a process of its own, not beside the peers)
 *        [--hub-flags="--cpu-prof --cpu-prof-dir=DIR"]   (the hub's `deno run` flags)
 */
import { parseArgs } from "node:util";
import { runWriter } from "./tail_writer.ts";
import { connectCountingPeer, type CountingPeer } from "../compare/huskies_peer.ts";
import { nowMs, quantile } from "../compare/proc.ts";

const { values: flags } = parseArgs({
  args: Deno.args,
  options: {
    k: { type: "string", default: "10" },
    rate: { type: "string", default: "1000" },
    updates: { type: "string", default: "5000" },
    store: { type: "string", default: "sqlite" },
    "live-batch-ms": { type: "string" },
    gc: { type: "boolean", default: false },
    "hub-flags": { type: "string", default: "" },
    json: { type: "string" },
    "writer-process": { type: "boolean", default: false },
  },
});
const k = Number(flags.k);
const rate = Number(flags.rate);
const updates = Number(flags.updates);

// --- this process's stalls ---------------------------------------------------------------------
const clientStalls: [number, number][] = [];
const INTERVAL_MS = 5;
let expected = nowMs() + INTERVAL_MS;
const stallTimer = setInterval(() => {
  const now = nowMs();
  if (now - expected > 1) clientStalls.push([now, now - expected]);
  expected = now + INTERVAL_MS;
}, INTERVAL_MS);

// --- the hub -----------------------------------------------------------------------------------
const dir = await Deno.makeTempDir({ prefix: "huskies-tail-" });
const traceFile = `${dir}/trace.json`;
const hubArgs = [
  flags.store === "memory" ? ":memory:" : `${dir}/hub`,
  traceFile,
  ...(flags["live-batch-ms"] !== undefined ? [flags["live-batch-ms"]] : []),
];
const hubProcess = new Deno.Command(Deno.execPath(), {
  args: [
    "run",
    "-A",
    ...(flags.gc ? ["--v8-flags=--trace-gc-nvp"] : []),
    ...flags["hub-flags"].split(" ").filter((flag) => flag !== ""),
    new URL("./tail_hub.ts", import.meta.url).pathname,
    ...hubArgs,
  ],
  stdout: "piped",
  stderr: "inherit",
}).spawn();
const hubLines: string[] = [];
const port = Promise.withResolvers<number>();
(async () => {
  let buffer = "";
  for await (const chunk of hubProcess.stdout.pipeThrough(new TextDecoderStream())) {
    buffer += chunk;
    for (let at = buffer.indexOf("\n"); at >= 0; at = buffer.indexOf("\n")) {
      const line = buffer.slice(0, at);
      buffer = buffer.slice(at + 1);
      // With --gc, V8's buffered trace text may come out just before the port line on one line.
      const portAt = line.indexOf('{"port"');
      if (portAt >= 0) port.resolve(JSON.parse(line.slice(portAt)).port);
      else hubLines.push(line);
    }
  }
  port.reject(new Error("the hub exited before printing its port"));
})();
const url = `ws://127.0.0.1:${await port.promise}/crdt-sync`;

// --- the run, as huskies_clients.ts's fanout -----------------------------------------------------
const arrivals: Float64Array[] = []; // per peer: [stamp, arrival] pairs
const peers: CountingPeer[] = [];
for (let i = 0; i < k; i++) {
  const mine = new Float64Array(2 * updates);
  let at = 0;
  arrivals.push(mine);
  const latencies: number[] = []; // as the harness keeps them
  peers.push(
    await connectCountingPeer(url, updates, latencies, (stamp, arrived) => {
      if (at + 2 > mine.length) return;
      mine[at++] = stamp;
      mine[at++] = arrived;
    }),
  );
}
const liveBatchMs = flags["live-batch-ms"] === undefined
  ? undefined
  : Number(flags["live-batch-ms"]);
let writerTrace: { start: number; sends: ArrayLike<number>; used: number };
if (flags["writer-process"]) {
  const out = `${dir}/writer.json`;
  const status = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL("./tail_writer.ts", import.meta.url).pathname,
      url,
      String(rate),
      String(updates),
      out,
      ...(liveBatchMs === undefined ? [] : [String(liveBatchMs)]),
    ],
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  if (!status.success) throw new Error("Cannot measure: the writer process failed");
  const written = JSON.parse(await Deno.readTextFile(out)) as { start: number; sends: number[] };
  writerTrace = { ...written, used: written.sends.length };
} else {
  writerTrace = await runWriter(url, rate, updates, liveBatchMs);
}
const start = writerTrace.start;
const writerSends = writerTrace.sends;
const writerSent = writerTrace.used;
await Promise.all(peers.map((peer) => peer.done));
const end = nowMs();
clearInterval(stallTimer);
for (const peer of peers) peer.close();
hubProcess.kill("SIGTERM");
await hubProcess.status;
const trace = JSON.parse(await Deno.readTextFile(traceFile)) as {
  frames: number[];
  stalls: [number, number][];
  slowSql: [number, number, string][];
  checkpoints: number[];
  walSizes: [number, number][];
  origin: number;
};
await Deno.remove(dir, { recursive: true });

// --- analysis ------------------------------------------------------------------------------------
// Stamps are µs rounded to ms/1000: key them by integer µs.
const key = (stamp: number) => Math.round(stamp * 1000);
const hubRecv = new Map<number, number>();
const hubSend = new Map<string, number>(); // `${stamp}:${socket}`
for (let i = 0; i < trace.frames.length; i += 4) {
  const [at, dirn, socket, stamp] = trace.frames.slice(i, i + 4);
  if (dirn === 0) {
    if (!hubRecv.has(key(stamp))) hubRecv.set(key(stamp), at);
  } else if (!hubSend.has(`${key(stamp)}:${socket}`)) hubSend.set(`${key(stamp)}:${socket}`, at);
}
const sendByKey = new Map<number, number>();
for (let i = 0; i < writerSent; i += 2) {
  if (!sendByKey.has(key(writerSends[i]))) sendByKey.set(key(writerSends[i]), writerSends[i + 1]);
}

interface Delivery {
  stamp: number;
  peer: number;
  total: number;
  writer: number;
  wire1: number;
  hub: number;
  wire2: number;
}
const deliveries: Delivery[] = [];
for (let peer = 0; peer < k; peer++) {
  for (let i = 0; i < arrivals[peer].length; i += 2) {
    const [stamp, arrival] = [arrivals[peer][i], arrivals[peer][i + 1]];
    const latency = arrival - stamp;
    const s = key(stamp);
    const sent = sendByKey.get(s) ?? NaN;
    const received = hubRecv.get(s) ?? NaN;
    const relayed = hubSend.get(`${s}:${peer}`) ?? NaN;
    deliveries.push({
      stamp,
      peer,
      total: latency,
      writer: sent - stamp,
      wire1: received - sent,
      hub: relayed - received,
      wire2: arrival - relayed,
    });
  }
}
deliveries.sort((a, b) => a.total - b.total);
const totals = deliveries.map((d) => d.total);
const p99 = quantile(totals, 0.99);
const tail = deliveries.filter((d) => d.total >= p99);
const hops = ["writer", "wire1", "hub", "wire2"] as const;
const med = (values: number[]) => quantile([...values].sort((a, b) => a - b), 0.5);
const fmt = (v: number) => v.toFixed(2);

console.log(
  `# K=${k}, ${updates} updates at ${rate}/s, hub ${flags.store}, ${deliveries.length} deliveries,` +
    ` load ${Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ")}`,
);
console.log(`run start at ${fmt(start - performance.timeOrigin)} ms into this process`);
console.log(
  `p50 ${fmt(quantile(totals, 0.5))} ms, p99 ${fmt(p99)} ms, max ${fmt(quantile(totals, 1))} ms`,
);
console.log("hop medians, all deliveries / the slowest 1 % (ms):");
for (const hop of hops) {
  console.log(
    `  ${hop.padEnd(6)} ${fmt(med(deliveries.map((d) => d[hop])))} / ${
      fmt(med(tail.map((d) => d[hop])))
    }  (tail's share of its time: ${
      fmt(tail.reduce((s, d) => s + d[hop], 0) / tail.reduce((s, d) => s + d.total, 0) * 100)
    } %)`,
  );
}
// Group the tail by update.
const byStamp = new Map<number, Delivery[]>();
for (const d of tail) {
  const list = byStamp.get(d.stamp) ?? [];
  list.push(d);
  byStamp.set(d.stamp, list);
}
const peersPerSlowUpdate = [...byStamp.values()].map((list) => list.length);
console.log(
  `tail: ${tail.length} deliveries of ${byStamp.size} updates; peers per slow update: median ${
    med(peersPerSlowUpdate)
  }`,
);
// Episodes: slow updates within 50 ms of each other, each put down to the first cause found in
// its span (from its first update's commit to its last's plus the worst latency): a hub SQL call
// over 2.5 ms, a hub stall, a stall of this process (both: a 5 ms timer firing 2.5 ms late or
// more), the first 100 ms (warm-up), or none seen.
const STALL_MS = 2.5;
interface Episode {
  from: number;
  to: number;
  updates: number;
  deliveries: number;
  worst: Delivery;
}
const slowStamps = [...byStamp.keys()].sort((a, b) => a - b);
const episodes: Episode[] = [];
for (const stamp of slowStamps) {
  const last = episodes.at(-1);
  const list = byStamp.get(stamp)!;
  const worst = list.reduce((a, b) => (a.total > b.total ? a : b));
  if (last && stamp - last.to < 50) {
    last.to = stamp;
    last.updates++;
    last.deliveries += list.length;
    if (worst.total > last.worst.total) last.worst = worst;
  } else episodes.push({ from: stamp, to: stamp, updates: 1, deliveries: list.length, worst });
}
/** Spans [start, end] of stalls (noted when the late timer fired) and SQL calls over the mark. */
const spans = (list: [number, number, ...unknown[]][], endsAt: boolean) =>
  list.filter(([, ms]) => ms >= STALL_MS).map(([at, ms, what]) =>
    endsAt ? { from: at - ms, to: at, ms, what } : { from: at, to: at + ms, ms, what }
  );
const hubStallSpans = spans(trace.stalls, true);
const clientStallSpans = spans(clientStalls, true);
const sqlSpans = spans(trace.slowSql, false);
const within = (list: ReturnType<typeof spans>, e: Episode) =>
  list.filter((x) => x.to >= e.from && x.from <= e.to + e.worst.total);
const causes = new Map<string, number>();
console.log(`episodes (slow updates within 50 ms of each other): ${episodes.length}`);
for (const e of episodes) {
  const w = e.worst;
  const sql = within(sqlSpans, e);
  const hubStalled = within(hubStallSpans, e);
  const clientStalled = within(clientStallSpans, e);
  const cause = sql.length > 0
    ? "hub SQL"
    : hubStalled.length > 0 && clientStalled.length > 0
    ? "both stalled"
    : hubStalled.length > 0
    ? "hub stall"
    : clientStalled.length > 0
    ? "client stall"
    : e.from - start < 100
    ? "warm-up"
    : "none seen";
  causes.set(cause, (causes.get(cause) ?? 0) + e.deliveries);
  const list = (xs: ReturnType<typeof spans>) =>
    xs.map((x) => `${fmt(x.from - start)}+${fmt(x.ms)}${x.what ? ` ${x.what}` : ""}`).join(", ");
  console.log(
    `  t=${fmt(e.from - start)}..${fmt(e.to - start)} ms, ${e.updates} updates, ${e.deliveries} ` +
      `of the tail: ${cause}; worst ${fmt(w.total)} (writer ${fmt(w.writer)}, wire1 ${
        fmt(w.wire1)
      }, hub ${fmt(w.hub)}, wire2 ${fmt(w.wire2)})`,
  );
  if (sql.length) console.log(`    hub SQL ${list(sql)}`);
  if (hubStalled.length) console.log(`    hub stalls ${list(hubStalled)}`);
  if (clientStalled.length) console.log(`    client stalls ${list(clientStalled)}`);
}
console.log(
  `tail deliveries by cause: ${[...causes].map(([c, n]) => `${c} ${n}`).join(", ")}`,
);
if (trace.checkpoints.length > 0) {
  const sorted = [...trace.checkpoints].sort((a, b) => a - b);
  console.log(
    `worker checkpoints: ${sorted.length}, median ${fmt(med(sorted))} ms, max ${
      fmt(sorted.at(-1)!)
    } ms (off the hub's event loop)`,
  );
}
const warm = deliveries.filter((d) => d.stamp - start >= 100).map((d) => d.total);
console.log(`p99 without the first 100 ms: ${fmt(quantile(warm, 0.99))} ms`);
console.log(
  `stalls over the run: hub ${trace.stalls.length} (sum ${
    fmt(trace.stalls.reduce((s, [, ms]) => s + ms, 0))
  } ms), clients ${clientStalls.length} (sum ${
    fmt(clientStalls.reduce((s, [, ms]) => s + ms, 0))
  } ms); hub SQL calls over 1 ms: ${trace.slowSql.length} (median ${
    fmt(med(trace.slowSql.map(([, ms]) => ms)))
  } ms, max ${fmt(Math.max(...trace.slowSql.map(([, ms]) => ms)))} ms, sum ${
    fmt(trace.slowSql.reduce((sum, [, ms]) => sum + ms, 0))
  } ms); wall ${fmt(end - start)} ms`,
);
if (flags.gc) {
  // `--trace-gc-nvp`: `[pid:addr:n]    1234 ms: GC: {"pause": 1.2, "gc": "s", ...}`
  const collections = hubLines
    .map((line) => line.match(/ (\d+) ms: GC: (\{.*\})/))
    .filter((m) => m !== null)
    .map((m) => ({ at: trace.origin + Number(m![1]) - start, ...JSON.parse(m![2]) }));
  const during = collections.filter((c) => c.at >= 0 && c.at <= end - start);
  const pauses = during.filter((c) => c.pause >= 1).map((c) =>
    `${fmt(c.at)}:${c.gc} ${fmt(c.pause)}`
  );
  console.log(`hub GC pauses >= 1 ms (at, ms into the run: kind pause): ${pauses.join(", ")}`);
  const scavenges = during.filter((c) => c.gc === "s");
  console.log(
    `hub: ${scavenges.length} scavenges, new-space allocation ${
      fmt(med(scavenges.map((c) => c.new_space_allocation_throughput)))
    } bytes/ms (median), survived per scavenge ${
      fmt(med(scavenges.map((c) => c.new_space_survived)) / 1024)
    } KiB, pause sum ${fmt(during.reduce((s, c) => s + c.pause, 0))} ms`,
  );
}
if (flags.json) {
  await Deno.writeTextFile(
    flags.json,
    JSON.stringify({
      start,
      deliveries,
      stalls: trace.stalls,
      clientStalls,
      sql: trace.slowSql,
      walSizes: trace.walSizes,
    }),
  );
}
Deno.exit(0);
