/**
 * Benchmarks for huskies-sync. Prints readable results, or with `--json` one
 * JSON object per line: {"name": ..., "value": ..., "unit": ...}.
 *
 * Usage: deno task bench [--json] [--only name,name]
 */
import { join } from "node:path";
import { Identity, SignatureVerifier } from "../crdt/identity.ts";
import { OpLog } from "../crdt/log.ts";
import {
  decodeOperation,
  encodedSize,
  encodeOperation,
  type Operation,
  operationId,
  signOperation,
  type UnsignedOperation,
} from "../crdt/operation.ts";
import { verifyOperation } from "../crdt/signatures.ts";
import { POOLED_MIN_SIGNATURES, PrecheckedQueue, VerifyPool } from "../crdt/verify_pool.ts";
import { STAGES } from "../crdt/pipeline.ts";
import { Replica } from "../crdt/replica.ts";
import { SqliteStore } from "../crdt/sqlite_store.ts";
import { HuskiesNode } from "../sync/node.ts";
import { clientTcpBytes, JsonChild, stampedValue } from "./compare/proc.ts";

const args = Deno.args;
const json = args.includes("--json");
const onlyIndex = args.indexOf("--only");
const only = onlyIndex >= 0 ? new Set(args[onlyIndex + 1].split(",")) : undefined;
const wanted = (name: string) => !only || only.has(name);

function report(name: string, value: number, unit: string, note = ""): void {
  const rounded = Math.round(value * 100) / 100;
  if (json) console.log(JSON.stringify({ name, value: rounded, unit, ...(note ? { note } : {}) }));
  else console.log(`${name.padEnd(24)} ${String(rounded).padStart(12)} ${unit.padEnd(6)} ${note}`);
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[values.length >> 1];

function identityFor(i: number): Identity {
  const seed = new Uint8Array(32);
  new DataView(seed.buffer).setUint32(0, i + 1000);
  return Identity.fromSeed(seed);
}

/** `perAuthor` pipeline updates from each of `authors` authors, interleaved round-robin. */
function makeOps(authors: number, perAuthor: number): Operation[] {
  const ids = Array.from({ length: authors }, (_, i) => identityFor(i));
  const heads: (string | null)[] = ids.map(() => null);
  const ops: Operation[] = [];
  let time = 0;
  for (let round = 0; round < perAuthor; round++) {
    for (let a = 0; a < authors; a++) {
      const op = signOperation({
        author: ids[a].nodeId,
        seq: round + 1,
        prev: heads[a],
        deps: [],
        time: ++time,
        mutation: {
          type: "update",
          path: ["items", `S-${a}-${round % 50}`],
          fields: { stage: STAGES[round % STAGES.length], retry_count: round, agent: `agent-${a}` },
        },
      }, ids[a]);
      heads[a] = op.id;
      ops.push(op);
    }
  }
  return ops;
}

/**
 * Signed pipeline updates, author after author (each chain contiguous), in
 * runs of `run` operations: a large store without holding it all in memory.
 */
function* authorRuns(authors: number, perAuthor: number, run: number): Generator<Operation[]> {
  let time = 0;
  for (let a = 0; a < authors; a++) {
    const id = identityFor(a);
    let head: string | null = null;
    let chunk: Operation[] = [];
    for (let seq = 1; seq <= perAuthor; seq++) {
      const op = signOperation({
        author: id.nodeId,
        seq,
        prev: head,
        deps: [],
        time: ++time,
        mutation: {
          type: "update",
          path: ["items", `S-${a}-${seq % 50}`],
          fields: { stage: STAGES[seq % STAGES.length], retry_count: seq, agent: `agent-${a}` },
        },
      }, id);
      head = op.id;
      chunk.push(op);
      if (chunk.length === run) {
        yield chunk;
        chunk = [];
      }
    }
    if (chunk.length > 0) yield chunk;
  }
}

/** Groups ops author by author (each author's chain contiguous), keeping chain order. */
function byAuthor(ops: Operation[]): Operation[] {
  const chains = new Map<string, Operation[]>();
  for (const op of ops) {
    let chain = chains.get(op.author);
    if (!chain) chains.set(op.author, chain = []);
    chain.push(op);
  }
  return [...chains.values()].flat();
}

async function tempDir(): Promise<string> {
  return await Deno.makeTempDir({ prefix: "huskies-bench-" });
}

/** Resolves after one turn of the event loop (a macrotask), as between two frames off a socket. */
function nextTurn(): Promise<void> {
  const { port1, port2 } = new MessageChannel();
  return new Promise((resolve) => {
    port1.onmessage = () => (port1.close(), resolve());
    port2.postMessage(0);
  });
}

/**
 * Receives `ops` into a fresh replica on SQLite, `batch` per call; returns the
 * ms taken. Each run gets the operations decoded from their wire text (not
 * timed), as a node receives them: nothing the signer computed is reused.
 * With `workers`, batches go through the queue a session's frames take
 * (`PrecheckedQueue`, signatures checked ahead on that many Workers, started
 * before the clock), one batch per turn of the event loop, as frames come off
 * a socket; with 0, each is received at once on this thread.
 */
async function ingest(
  signed: Operation[],
  dir: string,
  batch: number,
  amortise: boolean,
  workers: number,
): Promise<number> {
  const ops = signed.map((op) => decodeOperation(encodeOperation(op)));
  const verifier = new SignatureVerifier();
  const replica = Replica.open({
    identity: identityFor(99_999),
    store: SqliteStore.open(join(dir, "ops.db")),
    verifier,
  });
  const pool = new VerifyPool(verifier, workers);
  await pool.precheck(makeOps(POOLED_MIN_SIGNATURES, 1), false); // starts the Workers
  const done = Promise.withResolvers<void>();
  let left = Math.ceil(ops.length / batch);
  const receive = (part: Operation[]) => {
    replica.receive(part, { amortise });
    if (--left === 0) done.resolve();
  };
  const queue = new PrecheckedQueue(pool, receive);
  const started = performance.now();
  for (let i = 0; i < ops.length; i += batch) {
    const part = ops.slice(i, i + batch);
    if (workers === 0) receive(part);
    else {
      queue.push(part, part, amortise, part.reduce((sum, op) => sum + encodedSize(op), 0));
      await nextTurn();
    }
  }
  await done.promise;
  const elapsed = performance.now() - started;
  pool.close();
  if (replica.size !== ops.length) throw new Error(`ingested ${replica.size} of ${ops.length}`);
  replica.close();
  return elapsed;
}

/** Serves `node`'s sync endpoint on a new loopback listener. */
function serveNode(node: HuskiesNode): Deno.HttpServer<Deno.NetAddr> {
  return Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (req, info) => node.handleRequest(req, info) ?? new Response("not found", { status: 404 }),
  );
}

/**
 * The time a fresh node in its own process (`compare/huskies_clients.ts
 * cold`, SQLite store) takes to catch up `hub`'s `count` operations, as on a
 * second machine: the hub's process only serves.
 */
async function coldSyncApart(hub: HuskiesNode, count: number): Promise<number> {
  const server = serveNode(hub);
  try {
    const child = new JsonChild(new URL("./compare/huskies_clients.ts", import.meta.url), [
      "cold",
      `ws://127.0.0.1:${server.addr.port}/crdt-sync`,
      String(count),
      hub.replica.stateHash(),
      "sqlite",
    ]);
    try {
      await child.next(); // {"phase": "writing"}
      const { result } = await child.next<{ result: { ms: number } }>();
      return result.ms;
    } finally {
      await child.finish();
    }
  } finally {
    await server.shutdown();
  }
}

/**
 * One cold sync: a fresh node in `spokeDir` dials `hub` (served on a new
 * listener) until it holds `count` operations and the same state; returns
 * the time, the listener and the spoke, both still open (the caller may count
 * their sockets first) for the caller to close.
 */
async function coldSync(
  hub: HuskiesNode,
  spokeDir: string,
  count: number,
  compactBulk = true,
): Promise<{ ms: number; server: Deno.HttpServer<Deno.NetAddr>; spoke: HuskiesNode }> {
  const server = serveNode(hub);
  const spoke = await HuskiesNode.open({ dataDir: spokeDir, open: true, compactBulk });
  const synced = Promise.withResolvers<void>();
  spoke.replica.onApplied(() => {
    if (spoke.replica.size === count) synced.resolve();
  });
  const t = performance.now();
  spoke.connect(`ws://127.0.0.1:${server.addr.port}/crdt-sync`);
  await synced.promise;
  const ms = performance.now() - t;
  if (spoke.replica.stateHash() !== hub.replica.stateHash()) throw new Error("cold sync diverged");
  return { ms, server, spoke };
}

/** One fan-out run: a hub writing at `rate` ops/s to `peers` protocol peers in another process. */
async function fanoutRun(
  peers: number,
  rate: number,
  total: number,
  durable: boolean,
): Promise<{ p50: number; p99: number; count: number }> {
  const dir = await tempDir();
  cleanup.push(dir);
  // All bench peers come from 127.0.0.1: lift the per-address handshake rate limit.
  const hub = await HuskiesNode.open({
    ...(durable ? { dataDir: dir } : {}),
    open: true,
    admission: { attemptsPerMinutePerAddress: 10_000, maxUnauthenticated: 1000 },
  });
  const server = serveNode(hub);
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL("./bench_peers.ts", import.meta.url).pathname,
      `ws://127.0.0.1:${server.addr.port}/crdt-sync`,
      String(peers),
      String(total),
    ],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  const nextLine = async (): Promise<string> => {
    while (!buffer.includes("\n")) {
      const { value, done } = await lines.read();
      if (done) throw new Error("bench peers exited early");
      buffer += value;
    }
    const line = buffer.slice(0, buffer.indexOf("\n"));
    buffer = buffer.slice(buffer.indexOf("\n") + 1);
    return line;
  };
  await nextLine(); // {"ready": N}
  const now = () => performance.timeOrigin + performance.now();
  const start = now();
  let made = 0;
  while (made < total) {
    const due = Math.min(total, Math.floor((now() - start) * rate / 1000));
    while (made < due) {
      hub.replica.commit([{
        type: "update",
        path: ["items", `F-${made % 100}`],
        fields: { retry_count: made, value: stampedValue(now()) },
      }]);
      made++;
    }
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  const result = JSON.parse(await nextLine());
  await child.status;
  await hub.close();
  await server.shutdown();
  return result;
}

const cleanup: string[] = [];
try {
  const needOps = [
    "ingest_ops_per_s",
    "ingest_one_thread_ops_per_s",
    "ingest_chain_ops_per_s",
    "verify_100k_ms",
    "replay_100k_ms",
    "bytes_per_op",
    "cold_sync_100k_ms",
    "cold_sync_bytes_per_op",
  ].some(wanted);
  const started = performance.now();
  const ops = needOps ? makeOps(100, 1000) : [];
  if (needOps && !json) {
    console.log(
      `# signed ${ops.length} operations in ${Math.round(performance.now() - started)} ms`,
    );
  }

  if (wanted("bytes_per_op")) {
    const total = ops.reduce(
      (sum, op) => sum + new TextEncoder().encode(encodeOperation(op)).length,
      0,
    );
    report("bytes_per_op", total / ops.length, "bytes", "JSON wire form of a pipeline update");
  }

  if (wanted("verify_100k_ms")) {
    const verifier = new SignatureVerifier();
    const runs: number[] = [];
    for (let run = 0; run < 3; run++) {
      const t = performance.now();
      for (const op of ops) if (!verifyOperation(op, verifier)) throw new Error("bad op");
      runs.push(performance.now() - t);
    }
    report(
      "verify_100k_ms",
      median(runs),
      "ms",
      "id + Ed25519 signature of each op, node:crypto, median of 3",
    );
  }

  let replayDir: string | undefined;
  const ingestWorkers = 2;
  if (wanted("ingest_ops_per_s") || wanted("replay_100k_ms")) {
    const runs: number[] = [];
    for (let run = 0; run < 3; run++) {
      const dir = await tempDir();
      cleanup.push(dir);
      runs.push(await ingest(ops, dir, 100, false, ingestWorkers));
      replayDir = dir;
    }
    report(
      "ingest_ops_per_s",
      ops.length / (median(runs) / 1000),
      "ops/s",
      `100 authors interleaved, each op verified on its own (on ${ingestWorkers} Workers, ahead of the receive), 100 per transaction (received: synchronous=NORMAL), median of 3`,
    );
  }

  if (wanted("ingest_one_thread_ops_per_s")) {
    const runs: number[] = [];
    for (let run = 0; run < 3; run++) {
      const dir = await tempDir();
      cleanup.push(dir);
      runs.push(await ingest(ops, dir, 100, false, 0));
    }
    report(
      "ingest_one_thread_ops_per_s",
      ops.length / (median(runs) / 1000),
      "ops/s",
      "as ingest_ops_per_s, every signature verified inline on the event loop (verifyWorkers: 0)",
    );
  }

  if (wanted("ingest_chain_ops_per_s")) {
    const chains = byAuthor(ops);
    const runs: number[] = [];
    for (let run = 0; run < 3; run++) {
      const dir = await tempDir();
      cleanup.push(dir);
      runs.push(await ingest(chains, dir, 1000, true, ingestWorkers));
    }
    report(
      "ingest_chain_ops_per_s",
      ops.length / (median(runs) / 1000),
      "ops/s",
      "per-author runs of 1000, one signature per run, median of 3",
    );
  }

  if (wanted("replay_100k_ms") && replayDir) {
    const runs: number[] = [];
    for (let run = 0; run < 3; run++) {
      const t = performance.now();
      const replica = Replica.open({
        identity: identityFor(99_999),
        store: SqliteStore.open(join(replayDir, "ops.db")),
      });
      runs.push(performance.now() - t);
      if (replica.size !== ops.length) throw new Error("replay lost operations");
      replica.close();
    }
    report(
      "replay_100k_ms",
      median(runs),
      "ms",
      "open + quick_check + index load + saved document (ids re-hashed later, in the background), median of 3",
    );
  }

  if (wanted("ops_since_ms")) {
    const log = new OpLog({ verifier: new SignatureVerifier() });
    const authors = Array.from({ length: 100 }, (_, i) => identityFor(i).nodeId);
    const heads: (string | null)[] = authors.map(() => null);
    let time = 0;
    for (let round = 0; round < 10_000; round++) {
      for (let a = 0; a < authors.length; a++) {
        const unsigned: UnsignedOperation = {
          author: authors[a],
          seq: round + 1,
          prev: heads[a],
          deps: [],
          time: ++time,
          mutation: { type: "update", path: ["i"], fields: { n: round } },
        };
        const op = { ...unsigned, id: operationId(unsigned), sig: "" };
        log.applyTrusted(op);
        heads[a] = op.id;
      }
    }
    const peerClock = Object.fromEntries(Object.entries(log.clock()).map(([a, n]) => [a, n - 10]));
    const runs: number[] = [];
    for (let run = 0; run < 21; run++) {
      const t = performance.now();
      const missing = log.opsSince(peerClock);
      runs.push(performance.now() - t);
      if (missing.length !== 1000) throw new Error(`opsSince returned ${missing.length}`);
    }
    report(
      "ops_since_ms",
      median(runs),
      "ms",
      "1,000 missing of 1,000,000 held (100 authors), median of 21",
    );
  }

  if (wanted("cold_sync_100k_ms")) {
    const hubDir = await tempDir();
    const spokeDir = await tempDir();
    cleanup.push(hubDir, spokeDir);
    const hub = await HuskiesNode.open({ dataDir: hubDir, open: true });
    hub.replica.receive(byAuthor(ops), { amortise: true });
    const { ms: elapsed, server, spoke } = await coldSync(hub, spokeDir, ops.length);
    report(
      "cold_sync_100k_ms",
      elapsed,
      "ms",
      "empty node, SQLite on both ends, one process, loopback",
    );
    await spoke.close();
    await hub.close();
    await server.shutdown();
  }

  if (wanted("cold_sync_bytes_per_op")) {
    // TCP payload the kernel counted into a fresh node's sockets to the hub while it synced 100k
    // operations (the challenge request of §3.10, the handshake and clocks included), once
    // offering the compact bulk form and once not; a listener per run, so nothing else counts.
    const hubDir = await tempDir();
    cleanup.push(hubDir);
    const hub = await HuskiesNode.open({ dataDir: hubDir, open: true });
    hub.replica.receive(byAuthor(ops), { amortise: true });
    const figures: Record<string, { bytesPerOp: number; ms: number }> = {};
    for (const compactBulk of [false, true]) {
      const spokeDir = await tempDir();
      cleanup.push(spokeDir);
      const { ms, server, spoke } = await coldSync(hub, spokeDir, ops.length, compactBulk);
      const { received, connections } = await clientTcpBytes(server.addr.port);
      if (connections < 1 || connections > 2) throw new Error(`${connections} connections`);
      figures[compactBulk ? "cbulk" : "bulk"] = { bytesPerOp: received / ops.length, ms };
      await spoke.close();
      await server.shutdown();
    }
    const { bulk, cbulk } = figures;
    report(
      "cold_sync_bytes_per_op",
      cbulk.bytesPerOp,
      "bytes",
      `TCP payload into a fresh node's socket per operation, 100k cold sync, cbulk (PROTOCOL.md §6.9); ` +
        `bulk (JSON) ${bulk.bytesPerOp.toFixed(1)}; sync ${Math.round(cbulk.ms)} ms against ${
          Math.round(bulk.ms)
        } ms`,
    );
    await hub.close();
  }

  // Fan-out runs before the 1M-operation replay: writing that store leaves gigabytes of dirty pages
  // whose writeback would slow every fsync of the SQLite hub (p99 4-7x worse when measured after it).
  for (
    const [name, durable] of [["fanout_p99_ms", true], ["fanout_memory_p99_ms", false]] as const
  ) {
    if (!wanted(name)) continue;
    const runs = [];
    for (let run = 0; run < 3; run++) runs.push(await fanoutRun(100, 1000, 5000, durable));
    const p99s = runs.map((r) => r.p99);
    report(
      name,
      median(p99s),
      "ms",
      `1 writer at 1000 ops/s on the hub, 100 peers (a second process); hub store ${
        durable ? "SQLite, own ops fsynced" : "in memory"
      }; median of 3 runs (p99 range ${Math.min(...p99s).toFixed(1)}-${
        Math.max(...p99s).toFixed(1)
      } ms, median p50 ${median(runs.map((r) => r.p50)).toFixed(2)} ms, ${
        runs[0].count
      } deliveries each)`,
    );
  }

  if (
    [
      "replay_1m_ms",
      "rss_per_op_bytes",
      "replay_1m_unsaved_ms",
      "cold_sync_1m_ms",
      "cold_sync_1m_apart_ms",
    ].some(wanted)
  ) {
    const total = 1_000_000;
    const parent = await tempDir();
    cleanup.push(parent);
    const dataDir = join(parent, "hub");
    const t = performance.now();
    const hub = await HuskiesNode.open({ dataDir, open: true });
    for (const run of authorRuns(100, total / 100, 1000)) {
      hub.replica.receive(run, { amortise: true });
    }
    if (hub.replica.size !== total) throw new Error(`stored ${hub.replica.size} of ${total}`);
    await hub.close();
    if (!json) {
      console.log(
        `# signed and stored ${total} operations in ${Math.round(performance.now() - t)} ms`,
      );
    }
    const replayRun = async (...extra: string[]) => {
      const { stdout, success } = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          "--v8-flags=--expose-gc",
          new URL("./bench_replay.ts", import.meta.url).pathname,
          dataDir,
          String(total),
          ...extra,
        ],
        stdout: "piped",
        stderr: "inherit",
      }).output();
      if (!success) throw new Error("bench_replay.ts failed");
      return JSON.parse(new TextDecoder().decode(stdout));
    };
    const replay = await replayRun();
    if (wanted("replay_1m_ms")) {
      report(
        "replay_1m_ms",
        replay.replayMs,
        "ms",
        "HuskiesNode.open on a data folder of 1,000,000 operations (100 authors) closed cleanly " +
          "(its document saved), fresh process, one run",
      );
    }
    if (wanted("cold_sync_1m_ms")) {
      // The hub restarted on the 1M store (operations on disk, bodies read as it serves them).
      const hub = await HuskiesNode.open({ dataDir, open: true });
      const spokeDir = await tempDir();
      cleanup.push(spokeDir);
      const { ms, server, spoke } = await coldSync(hub, spokeDir, total);
      report(
        "cold_sync_1m_ms",
        ms,
        "ms",
        "empty node catching up 1,000,000 operations from a hub restarted on them (SQLite on " +
          "both ends, one process, loopback), one run",
      );
      await spoke.close();
      await hub.close();
      await server.shutdown();
    }
    if (wanted("cold_sync_1m_apart_ms")) {
      const hub = await HuskiesNode.open({ dataDir, open: true });
      try {
        report(
          "cold_sync_1m_apart_ms",
          await coldSyncApart(hub, total),
          "ms",
          "as cold_sync_1m_ms with the empty node in its own process (as on a second machine), " +
            "one run",
        );
      } finally {
        await hub.close();
      }
    }
    if (wanted("replay_1m_unsaved_ms")) {
      report(
        "replay_1m_unsaved_ms",
        (await replayRun("--drop-state")).replayMs,
        "ms",
        "the same without the saved document (as after a crash before the first save): " +
          "every body read and applied, one run",
      );
    }
    if (wanted("rss_per_op_bytes")) {
      report(
        "rss_per_op_bytes",
        replay.rssPerOpBytes,
        "bytes",
        `(RSS after replay - RSS of an empty node) / 1,000,000, after a full GC; RSS ${
          Math.round(replay.rssBytes / 2 ** 20)
        } MiB (${Math.round(replay.rssBeforeGcBytes / 2 ** 20)} MiB before the GC), empty node ${
          Math.round(replay.rssBaseBytes / 2 ** 20)
        } MiB`,
      );
    }
  }
} finally {
  for (const dir of cleanup) await Deno.remove(dir, { recursive: true }).catch(() => {});
}
