/**
 * WAL checkpoints off the node's thread. SQLite's automatic checkpoint runs
 * inside the commit that crosses its mark and stops the event loop while it
 * copies the log into the database and fsyncs both (2 ms at 100 pages, 11-13
 * ms at 1000, far more when other writes share the disk), and took about half
 * of chain ingest's time (`scripts/RESULTS.md`). Here a Worker thread holds a
 * second connection to the store and runs `PRAGMA wal_checkpoint(PASSIVE)`
 * when asked, which never blocks the writer.
 *
 * The writer and the Worker share two words of memory: whether a request is
 * pending, and whether the Worker has closed its connection. So the writer
 * asks, and learns that it is done, without waiting for its own event loop:
 * a long run of commits with no turn of the loop between them is
 * checkpointed too.
 *
 * A passive checkpoint copies what was committed when it started; the log is
 * reused from its start only when a write begins after a checkpoint that
 * copied all of it. The writer learns that this happened from the log's
 * header, whose restart count SQLite raises each time ({@link walRestarts},
 * read once per {@link CHECKPOINT_BURST_BYTES} of rows). Under a steady
 * stream of writes it may never happen, so once {@link MAX_UNCHECKED_BYTES}
 * of rows were written since the log last started over, the writer
 * checkpoints on its own connection (then the log starts over): at the
 * first commit after the Worker finished one, when what is left to copy is
 * least, or past twice that, after waiting up to
 * {@link OWN_CHECKPOINT_WAIT_MS} for a checkpoint the Worker has in progress,
 * which bounds the log whatever the Worker's pace. Commits of half that or
 * more (a catch-up's frames) are the exception below twice the mark: the
 * Worker copies one while the next frame is decoded, so the log starts over
 * without the writer's help ({@link checkpointStep}).
 *
 * A node's own operations are committed with an `fsync` each, which costs
 * more when the log file grows than when it is written over (0.5 against 0.3
 * ms on the development VM's disk). Under a stream of them the log never
 * starts over on its own, so once two durable commits in a row leave the log
 * file past {@link LOG_FILE_LIMIT_BYTES} the writer checkpoints it itself:
 * the log then starts over inside the space already on disk (one-mutation
 * commits ran 3-36 % faster, 14 % at the median, `scripts/RESULTS.md`). A
 * durable commit between a catch-up's frames leaves the log to the Worker,
 * as the frames do.
 *
 * Durability is unchanged: a checkpoint only moves committed pages from the
 * log into the database, and fsyncs both as SQLite's own does. When the
 * Worker fails, the connection goes back to automatic checkpoints.
 * @module
 */
import { Worker } from "node:worker_threads";
import type { DatabaseSync, StatementSync } from "node:sqlite";
import { openError, QUICK_CHECK, quickCheckFailure } from "./sqlite_file.ts";

/**
 * Fewest milliseconds between two checkpoint requests: each costs the disk
 * two fsyncs, so a live stream of small commits is checkpointed up to ten
 * times a second, not once per commit.
 */
export const CHECKPOINT_INTERVAL_MS = 100;

/**
 * Bytes of rows written since the last request past which the Worker is
 * asked again without waiting {@link CHECKPOINT_INTERVAL_MS}: a burst
 * (catch-up, bulk ingest) writes its 4 MiB in well under 100 ms, and what the
 * Worker has not copied by then the writer copies itself, on its own thread.
 * With this, the writer's own checkpoints in chain ingest took 5-10 ms
 * instead of 9-23 (`scripts/RESULTS.md`, "Checkpoints during a burst").
 */
export const CHECKPOINT_BURST_BYTES = 2 ** 20;

/**
 * What the log's file is cut back to when the log starts over, and past
 * which a durable commit has the writer checkpoint (see the module doc): 4 MiB.
 */
export const LOG_FILE_LIMIT_BYTES = 4 * 2 ** 20;

/**
 * Bytes of rows written since the log last started over at which the writer
 * checkpoints itself (see the module doc): the log then holds about twice
 * this (the table's pages and their rewrites), at most about 24 MiB, and
 * needs that much room beside the database.
 */
export const MAX_UNCHECKED_BYTES = 4 * 2 ** 20;

/** What SQLite's automatic checkpoint is set back to when the Worker fails. */
const FALLBACK_AUTOCHECKPOINT_PAGES = 100;

/** How long {@link Checkpointer.close} waits for the Worker to close its connection. */
const CLOSE_WAIT_MS = 10_000;

/**
 * How long the writer waits for the Worker's checkpoint to end before its
 * own, once the log holds twice {@link MAX_UNCHECKED_BYTES} (SQLite runs one
 * checkpoint at a time): the log then grows no further, for a stall that
 * only a writer outpacing the Worker meets.
 */
const OWN_CHECKPOINT_WAIT_MS = 250;

/** The shared words: 1 while a request is pending; 1 once the Worker's connection is closed. */
const PENDING = 0;
const CLOSED = 1;

/**
 * The Worker's source (CommonJS, evaluated): a connection that checkpoints on
 * each message (one that fails is tried again at the next) and then clears
 * the pending word; on "quick_check" answers with that check's rows; and on
 * "close" (or a failure to open) closes and sets the closed word.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require("node:worker_threads");
const { DatabaseSync } = require("node:sqlite");
const shared = new Int32Array(workerData.shared);
const closed = () => {
  Atomics.store(shared, ${CLOSED}, 1);
  Atomics.notify(shared, ${CLOSED});
};
let db;
try {
  db = new DatabaseSync(workerData.path, { timeout: 1000 });
  db.exec("PRAGMA synchronous=FULL");
  db.exec("PRAGMA wal_autocheckpoint=0");
} catch (error) {
  closed();
  throw error;
}
const checkpoint = db.prepare("PRAGMA wal_checkpoint(PASSIVE)");
parentPort.on("message", (message) => {
  if (message === "close") {
    db.close();
    closed();
    return;
  }
  if (message === "quick_check") {
    let answer;
    try {
      answer = { problems: db.prepare("${QUICK_CHECK}").all().map((row) => row.quick_check) };
    } catch (error) {
      answer = { error: String(error && error.message || error), errcode: error && error.errcode };
    }
    parentPort.postMessage(answer);
    return;
  }
  try {
    checkpoint.get();
  } catch {
    // A failed checkpoint (a full disk) loses nothing; the next request tries again.
  }
  Atomics.store(shared, ${PENDING}, 0);
  Atomics.notify(shared, ${PENDING});
});
`;

/** What the writer knows after a commit (see {@link checkpointStep}). */
export interface CheckpointState {
  /** A request to the Worker is pending. */
  pending: boolean;
  /** Bytes of rows written since the log last started over (at most: see the class). */
  unchecked: number;
  /** Bytes of rows in the commit just made. */
  commitBytes: number;
  /** Bytes of rows written since the last request to the Worker. */
  sinceRequest: number;
  /** Milliseconds since the last request to the Worker. */
  msSinceRequest: number;
  /** The commit just made and the one before it were fsynced (a stream of a node's own writes). */
  durableRun: boolean;
  /** Bytes of the log's file after that commit (read only in a durable run, else 0). */
  logFileBytes: number;
}

/**
 * THE checkpoint rule, pure. When durable commits in a row leave the log's
 * file over {@link LOG_FILE_LIMIT_BYTES}, the writer checkpoints `"here"`
 * (after a Worker's checkpoint in progress), so that the next ones write
 * over the file rather than grow it. Once {@link MAX_UNCHECKED_BYTES} were
 * written since the log last started over, the writer checkpoints `"here"`,
 * on its own connection, when the Worker is idle (what is left to copy is
 * then least), or at twice that whatever the Worker does. But after a commit of
 * at least half that much (a catch-up frame's), it asks the idle Worker
 * instead: the Worker copies that commit while the next is written, and the
 * next transaction starts the log over. Below the mark, the idle Worker is
 * asked when the last request is {@link CHECKPOINT_INTERVAL_MS} old or
 * {@link CHECKPOINT_BURST_BYTES} were written since; else `"none"`.
 */
export function checkpointStep(state: CheckpointState): "here" | "ask" | "none" {
  if (state.unchecked >= 2 * MAX_UNCHECKED_BYTES) return "here";
  if (state.durableRun && state.logFileBytes > LOG_FILE_LIMIT_BYTES) return "here";
  if (state.pending) return "none";
  if (state.unchecked >= MAX_UNCHECKED_BYTES) {
    return state.commitBytes >= MAX_UNCHECKED_BYTES / 2 ? "ask" : "here";
  }
  return state.msSinceRequest >= CHECKPOINT_INTERVAL_MS ||
      state.sinceRequest >= CHECKPOINT_BURST_BYTES
    ? "ask"
    : "none";
}

/**
 * The checkpoint sequence number in a WAL file's header (big-endian, bytes
 * 12-15): SQLite adds one each time the log starts over. Undefined when the
 * header cannot be read.
 */
export function walRestarts(file: Deno.FsFile): number | undefined {
  const header = new Uint8Array(16);
  try {
    file.seekSync(0, Deno.SeekMode.Start);
    let read = 0;
    while (read < header.length) {
      const n = file.readSync(header.subarray(read));
      if (n === null || n === 0) return undefined;
      read += n;
    }
  } catch {
    return undefined;
  }
  return new DataView(header.buffer).getUint32(12);
}

/** SQLite's answer to `wal_checkpoint`: frames in the log, and how many are in the database. */
interface CheckpointCounts {
  log: number;
  checkpointed: number;
}

/** Checkpoints of one store's log on a Worker thread; see the module doc. */
export class Checkpointer {
  readonly #db: DatabaseSync;
  readonly #path: string;
  readonly #worker: Worker;
  readonly #shared = new Int32Array(new SharedArrayBuffer(2 * 4));
  readonly #checkpointHere: StatementSync;
  #lastRequest = -Infinity;
  /** Bytes of rows written since the last request to the Worker. */
  #sinceRequest = 0;
  #failed = false;
  /** A pending {@link Checkpointer.integrity} check, until the Worker answers. */
  #checking: PromiseWithResolvers<string[]> | undefined;
  /** Bytes of rows written since the log last started over, at most. */
  #unchecked = 0;
  /** Bytes of rows written since the log's header was last read. */
  #sinceHeader = 0;
  /** The log's restart count when its header was last read. */
  #restarts: number | undefined;
  /** The log file, opened read-only at its first reading. */
  #log: Deno.FsFile | undefined;
  /** Bytes of rows written since the last commit. */
  #sinceCommit = 0;
  /** The last commit was fsynced. */
  #lastDurable = false;

  /**
   * Takes over the checkpoints of the store at `path`, whose writing
   * connection is `db` (its automatic checkpoints are turned off), and starts
   * the Worker now: creating it holds this thread for 25-60 ms, which at the
   * first commit of a live stream would be a stall of its own.
   */
  constructor(db: DatabaseSync, path: string) {
    this.#db = db;
    this.#path = path;
    this.#checkpointHere = db.prepare("PRAGMA wal_checkpoint(PASSIVE)");
    db.exec("PRAGMA wal_autocheckpoint=0");
    // When the log starts over, its file is cut back to 4 MiB: a burst does not keep its space.
    db.exec(`PRAGMA journal_size_limit=${LOG_FILE_LIMIT_BYTES}`);
    this.#worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { path, shared: this.#shared.buffer },
    });
    this.#worker.on("error", () => this.#fail());
    this.#worker.unref();
  }

  /** Counts `bytes` of rows written in the open transaction (see {@link MAX_UNCHECKED_BYTES}). */
  wrote(bytes: number): void {
    this.#unchecked += bytes;
    this.#sinceRequest += bytes;
    this.#sinceHeader += bytes;
    this.#sinceCommit += bytes;
  }

  /**
   * Called after each commit on the writing connection, outside any
   * transaction (`durable`: it was fsynced): checkpoints here or asks the
   * Worker as {@link checkpointStep} says.
   */
  committed(durable = false): void {
    if (this.#failed) return;
    if (this.#sinceHeader >= CHECKPOINT_BURST_BYTES) this.#readHeader();
    const now = performance.now();
    const durableRun = durable && this.#lastDurable;
    this.#lastDurable = durable;
    const commitBytes = this.#sinceCommit;
    this.#sinceCommit = 0;
    const step = checkpointStep({
      pending: Atomics.load(this.#shared, PENDING) === 1,
      unchecked: this.#unchecked,
      commitBytes,
      sinceRequest: this.#sinceRequest,
      msSinceRequest: now - this.#lastRequest,
      durableRun,
      logFileBytes: durableRun ? this.#logFileBytes() : 0,
    });
    if (step === "here") {
      // Busy (nothing done) while the Worker is in one: wait for it, a bounded time.
      Atomics.wait(this.#shared, PENDING, 1, OWN_CHECKPOINT_WAIT_MS);
      try {
        // Still busy if the Worker's took longer: then again at the next commit.
        const { log, checkpointed } = this.#checkpointHere.get() as unknown as CheckpointCounts;
        if (log === checkpointed) this.#unchecked = 0;
      } catch {
        // A checkpoint that fails loses nothing: the pages stay in the log for the next one.
      }
    } else if (step === "ask") {
      this.#lastRequest = now;
      this.#sinceRequest = 0;
      Atomics.store(this.#shared, PENDING, 1);
      this.#worker.postMessage("checkpoint");
    }
  }

  /** The log file, opened read-only at its first use; undefined while there is none. */
  #logFile(): Deno.FsFile | undefined {
    try {
      this.#log ??= Deno.openSync(`${this.#path}-wal`, { read: true });
    } catch {
      // No log yet: tried again next time.
    }
    return this.#log;
  }

  /** The log file's size in bytes, 0 when it cannot be read. */
  #logFileBytes(): number {
    try {
      return this.#logFile()?.statSync().size ?? 0;
    } catch {
      return 0;
    }
  }

  /**
   * Reads the log's restart count: when it moved, the log started over since
   * the last reading, so it holds at most the rows written since then.
   */
  #readHeader(): void {
    const log = this.#logFile();
    if (log === undefined) return; // read again after the next rows
    const restarts = walRestarts(log);
    if (restarts === undefined) return;
    if (this.#restarts !== undefined && restarts !== this.#restarts) {
      this.#unchecked = Math.min(this.#unchecked, this.#sinceHeader);
    }
    this.#restarts = restarts;
    this.#sinceHeader = 0;
  }

  /**
   * Runs SQLite's quick check of the store on the Worker's
   * connection (on this one if the Worker fails); rejects with
   * `StoreCorruptError` when the file is damaged.
   */
  integrity(): Promise<void> {
    const answer = Promise.withResolvers<string[]>();
    this.#checking = answer;
    this.#worker.ref(); // until it answers
    this.#worker.once(
      "message",
      (reply: { problems?: string[]; error?: string; errcode?: number }) => {
        this.#worker.unref();
        this.#checking = undefined;
        if (reply.problems !== undefined) answer.resolve(reply.problems);
        else answer.reject(openError(this.#path, Object.assign(new Error(reply.error), reply)));
      },
    );
    this.#worker.postMessage("quick_check");
    return answer.promise.then((problems) => {
      const failure = quickCheckFailure(this.#path, problems);
      if (failure) throw failure;
    });
  }

  /**
   * Closes the Worker's connection and waits for it (up to 10 s), so that
   * the writer's connection, closed next, is the last one: SQLite then
   * checkpoints the whole log and removes the `-wal` and `-shm` files.
   */
  close(): void {
    this.#checking?.reject(new Error("Cannot check the store: it was closed first"));
    if (!this.#failed) {
      this.#worker.postMessage("close");
      Atomics.wait(this.#shared, CLOSED, 0, CLOSE_WAIT_MS);
    }
    this.#failed = true;
    void this.#worker.terminate();
    this.#log?.close();
    this.#log = undefined;
  }

  #fail(): void {
    if (this.#failed) return;
    this.#failed = true;
    void this.#worker.terminate();
    try {
      this.#db.exec(`PRAGMA wal_autocheckpoint=${FALLBACK_AUTOCHECKPOINT_PAGES}`);
    } catch {
      // The connection is closed or failing; its own errors report that.
    }
    const checking = this.#checking;
    this.#checking = undefined;
    try {
      checking?.resolve(this.#db.prepare(QUICK_CHECK).all().map((row) => String(row.quick_check)));
    } catch (error) {
      checking?.reject(openError(this.#path, error));
    }
  }
}
