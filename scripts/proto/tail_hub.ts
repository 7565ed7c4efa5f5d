/**
 * The harness's huskies hub (scripts/compare/huskies_server.ts) with a trace
 * of every stamped benchmark value it receives and sends, for
 * scripts/proto/tail_probe.ts: per frame, the time (ms since the epoch, the
 * clock the stamps use), the direction, the socket, and the stamps. Also the
 * event loop's stalls, seen by a 5 ms interval timer that notes how late each
 * firing was, and the time each SQLite `exec`/`run` call took when it took
 * longer than 1 ms. Written as JSON to `<trace file>` on SIGTERM. `TAIL_WAL_AUTOCHECKPOINT`
 * in the environment replaces the store's WAL auto-checkpoint mark (pages; 0 turns it off);
 * `TAIL_CHECKPOINT_WORKER=<ms>` instead checkpoints every `ms` from a worker thread
 * (scripts/proto/checkpoint_worker.ts). Both are experiments on the store, not fixes.
 *
 * Usage: deno run -A scripts/proto/tail_hub.ts <data dir|:memory:> <trace file> [live batch ms]
 */
import { DatabaseSync, StatementSync } from "node:sqlite";
import { openBenchHub } from "../compare/bench_hub.ts";
import { forEachStamp, nowMs } from "../compare/proc.ts";

const [dataDir, traceFile, liveBatchMs] = Deno.args;

/**
 * Per stamp seen: time, 0 received | 1 sent, socket number, stamp; in one preallocated array,
 * so the trace adds no garbage and no pointers for the hub's collector to scan.
 */
let frames = new Float64Array(4 * 256 * 1024);
let used = 0;
function note(at: number, direction: number, socket: number, stamp: number): void {
  if (used + 4 > frames.length) {
    const bigger = new Float64Array(frames.length * 2);
    bigger.set(frames);
    frames = bigger;
  }
  frames[used++] = at;
  frames[used++] = direction;
  frames[used++] = socket;
  frames[used++] = stamp;
}
/** [time the timer fired, ms late] */
const stalls: [number, number][] = [];
/** [start time, ms, what] */
const slowSql: [number, number, string][] = [];

let sockets = 0;
const socketIds = new WeakMap<WebSocket, number>();
const idOf = (socket: WebSocket) => {
  let id = socketIds.get(socket);
  if (id === undefined) socketIds.set(socket, id = sockets++);
  return id;
};

const upgrade = Deno.upgradeWebSocket;
Deno.upgradeWebSocket = (request, options) => {
  const upgraded = upgrade(request, options);
  const { socket } = upgraded;
  idOf(socket); // numbered in upgrade order: the probe's peers connect one after another
  // Registered before the channel sets `onmessage`, so it runs first: the time the frame reached JS.
  socket.addEventListener("message", (event) => {
    const at = nowMs();
    const data = typeof event.data === "string" ? event.data : new Uint8Array(event.data);
    forEachStamp(data, (stamp) => note(at, 0, idOf(socket), stamp));
  });
  return upgraded;
};
const send = WebSocket.prototype.send;
WebSocket.prototype.send = function (this: WebSocket, data) {
  const at = nowMs();
  if (typeof data === "string" || data instanceof Uint8Array) {
    forEachStamp(data, (stamp) => note(at, 1, idOf(this), stamp));
  }
  return send.call(this, data);
};

function timeSql<T extends object>(proto: T, name: keyof T & string): void {
  const original = proto[name] as (...args: unknown[]) => unknown;
  (proto as Record<string, unknown>)[name] = function (this: unknown, ...args: unknown[]) {
    const start = nowMs();
    try {
      return original.apply(this, args);
    } finally {
      const ms = nowMs() - start;
      const sql = this instanceof StatementSync ? this.sourceSQL : String(args[0]);
      if (ms > 1) slowSql.push([start, ms, `${name} ${sql.slice(0, 60)}`]);
    }
  };
}
// An experiment, not a fix: `TAIL_WAL_AUTOCHECKPOINT=N` replaces the store's auto-checkpoint mark.
const autocheckpoint = Deno.env.get("TAIL_WAL_AUTOCHECKPOINT");
if (autocheckpoint !== undefined) {
  const exec = DatabaseSync.prototype.exec;
  DatabaseSync.prototype.exec = function (this: DatabaseSync, sql: string) {
    return exec.call(
      this,
      sql.replace(/PRAGMA wal_autocheckpoint=\d+/, `PRAGMA wal_autocheckpoint=${autocheckpoint}`),
    );
  };
}
// The other experiment: `TAIL_CHECKPOINT_WORKER=<ms>` checkpoints from a worker thread (its own
// connection, so the store's exclusive locking mode is dropped) and none in the store's commits.
const checkpointEvery = Deno.env.get("TAIL_CHECKPOINT_WORKER");
const checkpoints: number[] = [];
if (checkpointEvery !== undefined) {
  const exec = DatabaseSync.prototype.exec;
  DatabaseSync.prototype.exec = function (this: DatabaseSync, sql: string) {
    return exec.call(
      this,
      sql.replace("PRAGMA locking_mode=EXCLUSIVE", "PRAGMA locking_mode=NORMAL")
        .replace(/PRAGMA wal_autocheckpoint=\d+/, "PRAGMA wal_autocheckpoint=0"),
    );
  };
}
timeSql(DatabaseSync.prototype, "exec");
timeSql(StatementSync.prototype, "run");

/** [time, bytes] of the store's write-ahead log, every 50 ms (sqlite hub only). */
const walSizes: [number, number][] = [];
if (dataDir !== ":memory:") {
  setInterval(() => {
    try {
      walSizes.push([nowMs(), Deno.statSync(`${dataDir}/ops.db-wal`).size]);
    } catch {
      // not there yet
    }
  }, 50);
}

const INTERVAL_MS = 5;
let expected = nowMs() + INTERVAL_MS;
setInterval(() => {
  const now = nowMs();
  const late = now - expected;
  if (late > 1) stalls.push([now, late]);
  expected = now + INTERVAL_MS;
}, INTERVAL_MS);

const { hub, server } = await openBenchHub(
  dataDir === ":memory:" ? undefined : dataDir,
  liveBatchMs,
);
if (checkpointEvery !== undefined && dataDir !== ":memory:") {
  const worker = new Worker(new URL("./checkpoint_worker.ts", import.meta.url), { type: "module" });
  worker.onmessage = (event) => checkpoints.push(event.data.ms);
  worker.postMessage({ path: `${dataDir}/ops.db`, everyMs: Number(checkpointEvery) });
}
console.log(JSON.stringify({ port: server.addr.port }));
Deno.addSignalListener("SIGTERM", async () => {
  Deno.writeTextFileSync(
    traceFile,
    JSON.stringify({
      frames: [...frames.subarray(0, used)],
      checkpoints,
      walSizes,
      stalls,
      slowSql,
      origin: performance.timeOrigin,
    }),
  );
  await hub.close();
  await server.shutdown();
  Deno.exit(0);
});
