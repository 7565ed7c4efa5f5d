/**
 * A durable {@link Store} in one SQLite file, using the runtime's built-in
 * `node:sqlite` (no native add-on, only read/write permission on the file).
 *
 * The file is marked as ours: `PRAGMA application_id` is
 * {@link SQLITE_STORE_APPLICATION_ID} (`0x4875736b`, the ASCII bytes "Husk")
 * and `PRAGMA user_version` is the schema version
 * ({@link SQLITE_STORE_SCHEMA_VERSION}). A file that does not carry both is
 * never written to, repaired or replaced: opening it throws
 * {@link StoreCorruptError}.
 *
 * The file is created (and an existing one tightened to) mode 0600, owner
 * only; SQLite gives its `-wal` file the same mode.
 *
 * Schema (version 1):
 *
 * ```sql
 * CREATE TABLE ops (
 *   seq_no INTEGER PRIMARY KEY AUTOINCREMENT, -- insertion order
 *   id     TEXT NOT NULL,                     -- operation id (the log keeps ids unique)
 *   author TEXT NOT NULL,
 *   seq    INTEGER NOT NULL,
 *   body   TEXT NOT NULL                      -- encodeOperation(op)
 * );
 * CREATE TABLE forks (
 *   author TEXT PRIMARY KEY,
 *   proof  TEXT NOT NULL  -- JSON {author, seq, a, b}, a and b in wire form
 * );
 * ```
 * @module
 */
import { DatabaseSync, type StatementSync } from "node:sqlite";
import type { Operation } from "./operation.ts";
import { OwnHeadFile, readOwnHead } from "./own_head_file.ts";
import type { AppendOptions, ForkProof, OwnHead, Store } from "./store.ts";
import {
  checkHeader,
  decodeForkProof,
  decodeRow,
  encodeForkProof,
  encodeForStore,
  exists,
  identifyStoreFile,
  immutableUri,
  messageOf,
  openError,
  type OpRow,
  readError,
  restrictMode,
  StoreCorruptError,
} from "./sqlite_file.ts";
import { GroupCommit } from "./sqlite_group.ts";

export { StoreCorruptError, StoreLockedError } from "./sqlite_file.ts";

/**
 * The `PRAGMA application_id` of a huskies-sync store: `0x4875736b`, the
 * ASCII bytes "Husk" read as a big-endian 32-bit integer (1215656811). It
 * sits at byte offset 68 of the file header, where tools such as `file(1)`
 * show it, and tells a huskies-sync store apart from other SQLite databases.
 */
export const SQLITE_STORE_APPLICATION_ID = 0x4875736b;

/** The schema version this code writes and reads (`PRAGMA user_version`). */
export const SQLITE_STORE_SCHEMA_VERSION = 1;

/** Options for {@link SqliteStore.open}. */
export interface SqliteStoreOptions {
  /**
   * How long to wait for a lock held by another connection before failing
   * with {@link StoreLockedError}, in milliseconds. Kept short so a second
   * process fails fast instead of hanging.
   * @default 50
   */
  busyTimeoutMs?: number;
  /**
   * Run `PRAGMA quick_check` when opening an existing store, so a damaged
   * file is reported at start-up rather than halfway through a replay. It
   * reads the whole file once: about 60 ms per 100k operations (77 MB) on a
   * 2-vCPU VM.
   * @default true
   */
  quickCheck?: boolean;
  /**
   * Open for reading only (`huskies verify`): nothing in the file or its
   * folder is created or changed, so a read-only folder works; writes throw.
   * A missing or empty file is refused with {@link StoreCorruptError}.
   * @default false
   */
  readOnly?: boolean;
  /**
   * Group commit of non-durable appends (operations received from peers):
   * they share one transaction, committed this many ms after the first of
   * them (or before the next durable append, fork proof or close): one commit
   * per window, not per operation. A crash or kill can lose the last window
   * (peers send it again); durable appends are unchanged. 0: each at once. @default 0
   */
  groupCommitMs?: number;
}

/** Rows {@link SqliteStore.load} reads per query. */
const LOAD_CHUNK_ROWS = 2048;

/** Page cache per connection, in KiB (SQLite's default is 2 MiB). */
const CACHE_SIZE_KIB = 16384;

/**
 * WAL pages between automatic checkpoints: SQLite's default, 1000. A checkpoint runs inside the
 * commit that crosses the mark and stalls the event loop for its fsync. 8192 pages (32 MiB) gave
 * bulk ingest 5-10 % more throughput but made each stall 8x longer: fan-out p99 with own writes on
 * SQLite went from 468 to 2,313 ms (`scripts/RESULTS.md`). Durability is `synchronous`'s either way.
 */
const WAL_AUTOCHECKPOINT_PAGES = 1000;

/** Rows per multi-row INSERT (4 parameters each, well under SQLite's 32,766 limit). */
const INSERT_ROWS = 64;

/** `setReturnArrays` exists in node:sqlite (Node 24, Deno 2.9) but not in Deno's types yet. */
type ArrayRowStatement = StatementSync & { setReturnArrays(enabled: boolean): void };

const SCHEMA_V1 = `
  CREATE TABLE ops (
    seq_no INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL,
    author TEXT NOT NULL,
    seq INTEGER NOT NULL,
    body TEXT NOT NULL
  );
  CREATE TABLE forks (
    author TEXT PRIMARY KEY,
    proof TEXT NOT NULL
  );
  PRAGMA application_id = ${SQLITE_STORE_APPLICATION_ID};
  PRAGMA user_version = ${SQLITE_STORE_SCHEMA_VERSION};
`;

/**
 * A {@link Store} kept in one SQLite file.
 *
 * Durability: the database runs in WAL mode. A durable append (the default,
 * used for a node's own operations) commits with `synchronous=FULL`: it is on
 * disk, even after a power loss, when `append` returns, at the cost of one
 * fsync (about 0.27 ms here, with spikes of tens of ms). A non-durable append
 * (`{ durable: false }`, used for operations received from peers) commits with
 * `synchronous=NORMAL`: it survives a crash or kill of the process; a power
 * loss can roll back the last ones, which the next clock exchange fetches
 * again. Each append is one transaction, so callers batch every received
 * frame into one call (or set {@link SqliteStoreOptions.groupCommitMs}).
 *
 * Exclusive use: the file is opened with `locking_mode=EXCLUSIVE` and the
 * write lock is taken at open and held until {@link SqliteStore.close}, so a
 * second process opening the same data folder fails within
 * {@link SqliteStoreOptions.busyTimeoutMs} with {@link StoreLockedError}
 * instead of both writing.
 *
 * Safety: a file that is not a huskies-sync store, is corrupt, or was written
 * by a newer schema fails with {@link StoreCorruptError} and is left as it is.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { HuskiesNode, SqliteStore, StoreLockedError } from "@huskies/sync";
 *
 * const dir = Deno.makeTempDirSync();
 * {
 *   await using node = await HuskiesNode.open({ store: SqliteStore.open(`${dir}/ops.db`) });
 *   node.pipeline.put("S-1", { stage: "qa" });
 *   // One process at a time: a second open of the same file is refused.
 *   assert.throws(() => SqliteStore.open(`${dir}/ops.db`), StoreLockedError);
 * }
 * const store = SqliteStore.open(`${dir}/ops.db`);
 * assert.equal(store.count(), 2); // the item and its stage event
 * store.close();
 * Deno.removeSync(dir, { recursive: true });
 * ```
 */
export class SqliteStore implements Store {
  /** The path the store was opened from. */
  readonly path: string;
  readonly #db: DatabaseSync;
  readonly #begin: StatementSync;
  #durable = true;
  readonly #commit: StatementSync;
  readonly #rollback: StatementSync;
  readonly #insertOp: StatementSync;
  /** Inserts {@link INSERT_ROWS} operations in one statement (fewer calls into SQLite). */
  readonly #insertMany: StatementSync;
  readonly #countOps: StatementSync;
  readonly #selectOps: StatementSync;
  readonly #insertFork: StatementSync;
  readonly #selectForks: StatementSync;
  #count: number | undefined;
  #closed = false;
  /** The own-head record file: opened at the first record; never when read-only. */
  #headFile: OwnHeadFile | null = null;
  readonly #readOnly: boolean;
  #head: OwnHead | null;
  /** Non-durable appends' shared transaction; undefined without group commit. */
  readonly #group: GroupCommit | undefined;

  private constructor(
    path: string,
    db: DatabaseSync,
    readOnly: boolean,
    head: OwnHead | null,
    groupCommitMs = 0,
  ) {
    this.path = path;
    if (groupCommitMs > 0) this.#group = new GroupCommit(db, path, groupCommitMs);
    this.#db = db;
    this.#readOnly = readOnly;
    this.#head = head;
    this.#begin = db.prepare("BEGIN IMMEDIATE");
    this.#commit = db.prepare("COMMIT");
    this.#rollback = db.prepare("ROLLBACK");
    this.#insertOp = db.prepare("INSERT INTO ops (id, author, seq, body) VALUES (?, ?, ?, ?)");
    this.#insertMany = db.prepare(
      "INSERT INTO ops (id, author, seq, body) VALUES " +
        Array.from({ length: INSERT_ROWS }, () => "(?, ?, ?, ?)").join(", "),
    );
    this.#countOps = db.prepare("SELECT count(*) AS n FROM ops");
    this.#selectOps = db.prepare(
      "SELECT seq_no, id, body FROM ops WHERE seq_no > ? ORDER BY seq_no LIMIT ?",
    );
    (this.#selectOps as ArrayRowStatement).setReturnArrays(true);
    this.#insertFork = db.prepare("INSERT OR IGNORE INTO forks (author, proof) VALUES (?, ?)");
    this.#selectForks = db.prepare("SELECT author, proof FROM forks ORDER BY rowid");
  }

  /**
   * Opens the store at `path`, creating it when the file is missing or empty.
   *
   * @throws {StoreLockedError} another process has the store open.
   * @throws {StoreCorruptError} the file is not a huskies-sync store, fails
   * its integrity check, or was written by a newer version.
   * @throws {Error} the file cannot be opened at all (missing folder, no
   * permission).
   */
  static open(path: string, options: SqliteStoreOptions = {}): SqliteStore {
    if (typeof path !== "string" || path.length === 0) {
      throw new TypeError("Cannot open store: path must be a non-empty string");
    }
    if (path === ":memory:" || path.startsWith("file:")) {
      throw new TypeError(
        `Cannot open store at ${path}: give a file path (use MemoryStore for an in-memory store)`,
      );
    }
    const busyTimeoutMs = options.busyTimeoutMs ?? 50;
    if (!Number.isSafeInteger(busyTimeoutMs) || busyTimeoutMs < 0) {
      throw new RangeError(
        "Cannot open store: busyTimeoutMs must be a non-negative integer",
      );
    }
    const readOnly = options.readOnly ?? false;
    checkHeader(path);
    // Read-only with no write-ahead log: the file is complete (the node closed it), so read it as
    // immutable, which needs no lock or -shm/-wal file and so works in a read-only folder. With a
    // log present (a running node, or one that did not close the store), only a connection that
    // may write can read it correctly: a normal one, made query-only.
    const immutable = readOnly && !exists(`${path}-wal`);
    if (!readOnly) restrictMode(path);
    let db: DatabaseSync;
    try {
      db = immutable
        ? new DatabaseSync(immutableUri(path), { readOnly: true })
        : new DatabaseSync(path, { timeout: busyTimeoutMs });
    } catch (error) {
      throw openError(path, error);
    }
    try {
      // Before the first read, so no shared-memory index is ever created and
      // every lock, once taken, is kept until close.
      db.exec("PRAGMA locking_mode=EXCLUSIVE");
      // Identify the file before changing anything in it.
      const { fresh } = identifyStoreFile(db, path, {
        applicationId: SQLITE_STORE_APPLICATION_ID,
        schemaVersion: SQLITE_STORE_SCHEMA_VERSION,
        quickCheck: options.quickCheck ?? true,
      });
      if (readOnly && fresh) {
        throw new StoreCorruptError(
          path,
          `Cannot open store at ${path} read-only: the file is empty, not yet a huskies-sync store`,
        );
      }
      const head = readOwnHead(path);
      if (immutable) return new SqliteStore(path, db, true, head);
      const mode = db.prepare("PRAGMA journal_mode=WAL").get() as { journal_mode: string };
      if (mode.journal_mode !== "wal") {
        throw new Error(`journal mode is ${mode.journal_mode}, WAL is required`);
      }
      db.exec("PRAGMA synchronous=FULL");
      // Room for the id index during a large batch (about 10-30% faster at 100k).
      db.exec(`PRAGMA cache_size=-${CACHE_SIZE_KIB}`);
      db.exec(`PRAGMA wal_autocheckpoint=${WAL_AUTOCHECKPOINT_PAGES}`);
      // Create the schema (or do nothing) under the write lock, which
      // locking_mode=EXCLUSIVE then keeps until close.
      db.exec("BEGIN IMMEDIATE");
      try {
        if (fresh) db.exec(SCHEMA_V1);
        db.exec("COMMIT");
      } catch (error) {
        if (db.isTransaction) db.exec("ROLLBACK");
        throw error;
      }
      if (readOnly) {
        db.exec("PRAGMA query_only=ON");
        return new SqliteStore(path, db, true, head);
      }
      return new SqliteStore(path, db, false, head, options.groupCommitMs ?? 0);
    } catch (error) {
      try {
        db.close();
      } catch {
        // Already failing; the first error is the one to report.
      }
      throw openError(path, error);
    }
  }

  #ensureOpen(): void {
    if (this.#closed) throw new Error(`Cannot use store at ${this.path}: it is closed`);
  }

  #rollbackQuietly(): void {
    try {
      if (this.#db.isTransaction) this.#rollback.run();
    } catch {
      // SQLite may already have rolled back (for example on a full disk).
    }
  }

  /**
   * Appends operations in order in one transaction: all are stored, or none
   * is and the error is thrown. An empty batch does nothing. See the class
   * comment for what `durable` means.
   *
   * @throws {TypeError} an operation is malformed (it would not load back).
   */
  append(ops: readonly Operation[], options: AppendOptions = {}): void {
    this.#ensureOpen();
    if (ops.length === 0) {
      if (options.ownHead) this.#recordHead(options.ownHead);
      return;
    }
    const durable = options.durable ?? true;
    const group = durable ? undefined : this.#group;
    if (group === undefined) this.#group?.commit();
    if (durable !== this.#durable && !this.#group?.isOpen) {
      this.#db.exec(durable ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
      this.#durable = durable;
    }
    try {
      if (group !== undefined) group.run(() => this.#insert(ops));
      else {
        this.#begin.run();
        this.#insert(ops);
        this.#commit.run();
      }
    } catch (error) {
      if (group === undefined) this.#rollbackQuietly();
      if (error instanceof TypeError) throw error;
      throw new Error(
        `Cannot append to store at ${this.path}: ${messageOf(error)}; nothing from this ` +
          "batch was stored",
        { cause: error },
      );
    }
    if (this.#count !== undefined) this.#count += ops.length;
    if (options.ownHead) this.#recordHead(options.ownHead);
  }

  /** Inserts `ops` in the open transaction. */
  #insert(ops: readonly Operation[]): void {
    let index = 0;
    const values: (string | number)[] = [];
    for (; index + INSERT_ROWS <= ops.length; index += INSERT_ROWS) {
      values.length = 0;
      for (let k = index; k < index + INSERT_ROWS; k++) {
        const op = ops[k];
        values.push(op.id, op.author, op.seq, encodeForStore(op, k));
      }
      this.#insertMany.run(...values);
    }
    for (; index < ops.length; index++) {
      const op = ops[index];
      this.#insertOp.run(op.id, op.author, op.seq, encodeForStore(op, index));
    }
  }

  /**
   * Writes the own-head record after the operations it vouches for are
   * committed. A failure here is not the caller's: the operations are stored,
   * and the record may lag them (the next own append writes it again), which
   * only weakens the lost-history check, never makes it refuse wrongly.
   */
  #recordHead(head: OwnHead): void {
    if (this.#readOnly) {
      throw new Error(`Cannot record the own chain head in store at ${this.path}: it is read-only`);
    }
    this.#head = { ...head };
    try {
      this.#headFile ??= OwnHeadFile.open(this.path);
      this.#headFile.write(head);
    } catch {
      // See above: lagging is safe.
    }
  }

  /** The last recorded own chain head (from `ops.db-head`), or null. */
  loadOwnHead(): OwnHead | null {
    this.#ensureOpen();
    return this.#head === null ? null : { ...this.#head };
  }

  /**
   * Every stored operation in insertion order, read in chunks of 2048 rows (about 1 MB)
   * and decoded lazily, so a large log is never held in memory at once. Each call reads independently. Operations
   * appended while an iteration is under way may or may not be included.
   *
   * @throws {StoreCorruptError} (while iterating) a row does not decode, or
   * its id column disagrees with its body.
   */
  load(): Iterable<Operation> {
    this.#ensureOpen();
    return this.#decodeRows();
  }

  *#decodeRows(): Generator<Operation, void, undefined> {
    // Keyset pagination with all() rather than iterate(), and rows as arrays:
    // in node:sqlite each saves about 1 us per row, most of the fetch time.
    let after = 0;
    while (true) {
      let rows: OpRow[];
      try {
        this.#ensureOpen();
        rows = this.#selectOps.all(after, LOAD_CHUNK_ROWS) as unknown as OpRow[];
      } catch (error) {
        throw this.#closed ? error : readError(this.path, error);
      }
      for (const row of rows) yield decodeRow(this.path, row);
      if (rows.length < LOAD_CHUNK_ROWS) return;
      after = rows[rows.length - 1][0];
    }
  }

  /** Number of stored operations (counted once, then kept up to date). */
  count(): number {
    this.#ensureOpen();
    if (this.#count === undefined) {
      this.#count = Number((this.#countOps.get() as { n: number | bigint }).n);
    }
    return this.#count;
  }

  /**
   * Records a fork proof; a proof for an author who already has one is
   * ignored, so the first proof per author is kept.
   *
   * @throws {TypeError} the proof is malformed (it would not load back).
   */
  saveFork(proof: ForkProof): void {
    this.#ensureOpen();
    this.#group?.commit();
    this.#insertFork.run(proof.author, encodeForkProof(proof));
  }

  /**
   * Every recorded fork proof, in the order they were first saved.
   *
   * @throws {StoreCorruptError} a stored proof does not decode.
   */
  loadForks(): ForkProof[] {
    this.#ensureOpen();
    const proofs: ForkProof[] = [];
    for (const row of this.#selectForks.all() as { author: string; proof: string }[]) {
      proofs.push(decodeForkProof(this.path, row.author, row.proof));
    }
    return proofs;
  }

  /**
   * Closes the database and releases its lock. Safe to call twice; every
   * other method throws afterwards.
   */
  close(): void {
    if (this.#closed) return;
    try {
      this.#group?.commit();
    } catch {
      // Received operations only: peers send them again.
    }
    this.#closed = true;
    this.#headFile?.close();
    this.#db.close();
  }
}
