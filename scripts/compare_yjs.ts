/**
 * Side-by-side harness: huskies against Yjs + y-websocket on this machine,
 * runs alternating, every server in its own process (CPU and RSS read from
 * /proc), every client side in another (one clock for send and arrival).
 *
 * Workloads (issue 11):
 * - fan-out: K subscribers; one writer (a huskies spoke node, or a Y.Doc over
 *   y-websocket's protocol) sets `--rate` 100-byte values per second; latency
 *   from the writer's call to each subscriber's arrival, p50/p99, and the
 *   server's CPU over the writing period (% of one core), and the client
 *   side's (near 100 %: the subscribers, not the server, bound the figure);
 * - live load: the writer sets `--cold` distinct keys through the server;
 *   the server's RSS once a watching subscriber has seen them all;
 * - cold sync: a fresh client syncs all of them from that server: time, the
 *   TCP payload bytes on its socket (kernel counters, `ss`), and the CPU time
 *   the client's process and the server's spent over it (a client CPU near
 *   the sync's time, or above it with more threads, says the client bounds it).
 *
 * Usage: deno run -A scripts/compare_yjs.ts [--json] [--runs 3] [--k 10,100,300]
 *        [--big-k-runs 1] [--rate 1000] [--updates 5000] [--cold 100000]
 *        [--writer ws|native] [--cold-store sqlite|memory] [--only fanout,cold]
 *        [--live-batch-ms N]   (huskies hub's and writer's live batching window; default 2)
 *   --writer: the huskies writer's dialer, npm ws (the node's default) or Deno's client
 */
import { parseArgs } from "node:util";
import { cpuMs, JsonChild, median, rssBytes } from "./compare/proc.ts";

const { values: flags } = parseArgs({
  args: Deno.args,
  options: {
    json: { type: "boolean", default: false },
    runs: { type: "string", default: "3" },
    k: { type: "string", default: "10,100,300" },
    "big-k-runs": { type: "string", default: "1" },
    rate: { type: "string", default: "1000" },
    updates: { type: "string", default: "5000" },
    cold: { type: "string", default: "100000" },
    writer: { type: "string", default: "ws" },
    "cold-store": { type: "string", default: "sqlite" },
    only: { type: "string", default: "fanout,cold" },
    "live-batch-ms": { type: "string" },
  },
});
const runs = Number(flags.runs);
const ks = flags.k.split(",").map(Number);
const bigKRuns = Number(flags["big-k-runs"]);
const only = new Set(flags.only.split(","));

type System = "huskies" | "yjs";
const here = (path: string) => new URL(path, import.meta.url);
/**
 * The y-websocket side runs under its own config and lockfile (`scripts/yjs/`), so its packages
 * stay out of the repository's `deno.lock` and a checkout's first run does not fetch them.
 */
const YJS_FLAGS = ["--config", here("./yjs/deno.json").pathname];

/** A server of `system` in its own process, and the URL its clients dial. */
async function startServer(
  system: System,
): Promise<{ child: JsonChild; url: string; dir?: string }> {
  if (system === "yjs") {
    const child = new JsonChild(here("./yjs/server.ts"), [], YJS_FLAGS);
    const { port } = await child.next<{ port: number }>();
    return { child, url: `ws://127.0.0.1:${port}/bench` };
  }
  const dir = await Deno.makeTempDir({ prefix: "huskies-compare-hub-" });
  const liveBatch = flags["live-batch-ms"];
  const child = new JsonChild(
    here("./compare/huskies_server.ts"),
    [`${dir}/hub`, ...(liveBatch !== undefined ? [liveBatch] : [])],
  );
  const { port } = await child.next<{ port: number }>();
  return { child, url: `ws://127.0.0.1:${port}/crdt-sync`, dir };
}

async function stopServer(server: { child: JsonChild; dir?: string }): Promise<void> {
  await server.child.stop();
  if (server.dir) await Deno.remove(server.dir, { recursive: true });
}

function clients(system: System, args: string[]): JsonChild {
  const liveBatch = flags["live-batch-ms"];
  if (liveBatch !== undefined) Deno.env.set("HUSKIES_LIVE_BATCH_MS", liveBatch);
  return system === "yjs"
    ? new JsonChild(here("./yjs/clients.ts"), args, YJS_FLAGS)
    : new JsonChild(here("./compare/huskies_clients.ts"), args);
}

interface FanoutFigures {
  p50: number;
  p99: number;
  serverCpuPct: number;
  /** The client side's CPU: near 100 % means the figure is bound by the subscribers, not the server. */
  clientsCpuPct: number;
  deliveries: number;
}

async function fanout(system: System, k: number): Promise<FanoutFigures> {
  const server = await startServer(system);
  try {
    const args = ["fanout", server.url, String(k), flags.rate, flags.updates];
    const child = clients(system, system === "huskies" ? [...args, flags.writer] : args);
    try {
      await child.next(); // {"phase": "writing"}
      const cpuBefore = cpuMs(server.child.pid);
      const clientsCpuBefore = cpuMs(child.pid);
      const t = performance.now();
      const { result } = await child.next<{ result: Record<string, number> }>();
      const wall = performance.now() - t;
      const serverCpuPct = (cpuMs(server.child.pid) - cpuBefore) / wall * 100;
      const clientsCpuPct = (cpuMs(child.pid) - clientsCpuBefore) / wall * 100;
      const expected = k * Number(flags.updates);
      if (result.deliveries !== expected) {
        throw new Error(`Cannot measure: ${system} delivered ${result.deliveries} of ${expected}`);
      }
      return {
        p50: result.p50,
        p99: result.p99,
        serverCpuPct,
        clientsCpuPct,
        deliveries: result.deliveries,
      };
    } finally {
      await child.finish();
    }
  } finally {
    await stopServer(server);
  }
}

interface ColdFigures {
  loadMs: number;
  rssMiB: number;
  coldMs: number;
  coldMB: number;
  /** The fresh client's CPU over its sync (all its threads): near its time means it bounds the sync. */
  coldClientCpuMs: number;
  /** The server's CPU over that sync. */
  coldServerCpuMs: number;
}

async function loadAndCold(system: System): Promise<ColdFigures> {
  const server = await startServer(system);
  try {
    const loader = clients(system, [
      "load",
      server.url,
      flags.cold,
      ...(system === "huskies" ? [flags.writer] : []),
    ]);
    let loaded: Record<string, number | string>;
    try {
      await loader.next();
      loaded = (await loader.next<{ result: Record<string, number | string> }>()).result;
    } finally {
      await loader.finish();
    }
    const rssMiB = rssBytes(server.child.pid) / 2 ** 20;
    const coldArgs = system === "huskies"
      ? ["cold", server.url, flags.cold, String(loaded.stateHash), flags["cold-store"]]
      : ["cold", server.url, flags.cold];
    const cold = clients(system, coldArgs);
    try {
      await cold.next(); // {"phase": "writing"}
      const serverCpuBefore = cpuMs(server.child.pid);
      const clientCpuBefore = cpuMs(cold.pid);
      const { result } = await cold.next<{ result: Record<string, number> }>();
      const clientCpuMs = cpuMs(cold.pid) - clientCpuBefore;
      const serverCpuMs = cpuMs(server.child.pid) - serverCpuBefore;
      // huskies: the WebSocket, and the kept-alive connection of its §3.10 challenge request.
      if (result.sockets < 1 || result.sockets > (system === "huskies" ? 2 : 1)) {
        throw new Error(`Cannot measure: ${result.sockets} sockets counted`);
      }
      return {
        loadMs: Number(loaded.ms),
        rssMiB,
        coldMs: result.ms,
        coldMB: (result.received + result.sent) / 1e6,
        coldClientCpuMs: clientCpuMs,
        coldServerCpuMs: serverCpuMs,
      };
    } finally {
      await cold.finish();
    }
  } finally {
    await stopServer(server);
  }
}

const samples = new Map<string, Record<System, number[]>>();
function record(figure: string, system: System, value: number): void {
  if (!samples.has(figure)) samples.set(figure, { huskies: [], yjs: [] });
  samples.get(figure)![system].push(value);
}

const loadAverage = () => Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ");
const loadAtStart = loadAverage();
for (let run = 0; run < runs; run++) {
  const order: System[] = run % 2 === 0 ? ["huskies", "yjs"] : ["yjs", "huskies"];
  if (only.has("fanout")) {
    for (const k of ks) {
      if (k >= 300 && run >= bigKRuns) continue;
      for (const system of order) {
        const f = await fanout(system, k);
        record(`fanout K=${k} p50 ms`, system, f.p50);
        record(`fanout K=${k} p99 ms`, system, f.p99);
        record(`fanout K=${k} server CPU %`, system, f.serverCpuPct);
        record(`fanout K=${k} clients CPU %`, system, f.clientsCpuPct);
        if (!flags.json) console.error(`# run ${run + 1} ${system} K=${k}: ${JSON.stringify(f)}`);
      }
    }
  }
  if (only.has("cold")) {
    for (const system of order) {
      const c = await loadAndCold(system);
      record(`live load ${flags.cold} ms`, system, c.loadMs);
      record(`server RSS after ${flags.cold} live MiB`, system, c.rssMiB);
      record(`cold sync ${flags.cold} ms`, system, c.coldMs);
      record(`cold sync ${flags.cold} socket MB`, system, c.coldMB);
      record(`cold sync ${flags.cold} client CPU ms`, system, c.coldClientCpuMs);
      record(`cold sync ${flags.cold} server CPU ms`, system, c.coldServerCpuMs);
      if (!flags.json) console.error(`# run ${run + 1} ${system} cold: ${JSON.stringify(c)}`);
    }
  }
}

const load = `${loadAtStart} at start, ${loadAverage()} at end`;
const fmt = (v: number) => (Number.isNaN(v) ? "-" : v < 10 ? v.toFixed(2) : v.toFixed(0));
if (!flags.json) {
  console.log(
    `# ${new Date().toISOString()}, load average ${load}, writer ${flags.writer}`,
  );
  console.log("| figure (median of runs) | y-websocket | huskies | huskies / yjs | runs |");
  console.log("|---|---|---|---|---|");
}
for (const [figure, bySystem] of samples) {
  const yjs = median(bySystem.yjs);
  const huskies = median(bySystem.huskies);
  const ratio = huskies / yjs;
  if (flags.json) {
    console.log(
      JSON.stringify({ figure, yjs, huskies, ratio, runs: bySystem.huskies.length, load }),
    );
  } else {
    console.log(
      `| ${figure} | ${fmt(yjs)} | ${fmt(huskies)} | ${
        ratio.toFixed(2)
      }× | ${bySystem.huskies.length} |`,
    );
  }
}
Deno.exit(0);
