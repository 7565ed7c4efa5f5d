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
 * only; SQLite gives its `-wal` and `-shm` files the same mode.
 *
 * The schema (three tables: `ops`, `forks`, `state`) is described in
 * `sqlite_schema.ts`.
 * @module
 */
import { DatabaseSync, type StatementSync } from "node:sqlite";
import type { Operation } from "./operation.ts";
import { OwnHeadFile, readOwnHead } from "./own_head_file.ts";
import type { AppendOptions, ForkProof, OwnHead, Store } from "./store.ts";
import {
  checkHeader,
  checkOpenArguments,
  decodeForkProof,
  decodeRows,
  encodeForkProof,
  encodeForStore,
  exists,
  identifyStoreFile,
  immutableUri,
  messageOf,
  openError,
  prereadFile,
  restrictMode,
  StoreCorruptError,
} from "./sqlite_file.ts";
import { claimStoreFile, type StoreClaim } from "./sqlite_lock.ts";
import { Checkpointer } from "./sqlite_checkpointer.ts";
import { GroupCommit } from "./sqlite_group.ts";
import type { SqliteStoreOptions } from "./sqlite_options.ts";
import { SqliteIndex } from "./sqlite_index.ts";
import {
  APPLICATION_ID,
  configureConnection,
  createOrUpgrade,
  INSERT_COLUMNS,
  ROW_PLACEHOLDERS,
  rowValues,
  SCHEMA_VERSION,
} from "./sqlite_schema.ts";

export { StoreCorruptError, StoreLockedError } from "./sqlite_file.ts";
export type { SqliteStoreOptions } from "./sqlite_options.ts";

/**
 * The `PRAGMA application_id` of a huskies-sync store: `0x4875736b`, the
 * ASCII bytes "Husk" read as a big-endian 32-bit integer (1215656811). It
 * sits at byte offset 68 of the file header, where tools such as `file(1)`
 * show it, and tells a huskies-sync store apart from other SQLite databases.
 */
export const SQLITE_STORE_APPLICATION_ID = APPLICATION_ID;

/** The schema version this code writes (`PRAGMA user_version`); it also reads version 1. */
export const SQLITE_STORE_SCHEMA_VERSION = SCHEMA_VERSION;

/** Rows {@link SqliteStore.load} reads per query. */
const LOAD_CHUNK_ROWS = 2048;

/** Rows per multi-row INSERT (9 parameters each, well under SQLite's 32,766 limit). */
const INSERT_ROWS = 64;

/** `setReturnArrays` exists in node:sqlite (Node 24, Deno 2.9) but not in Deno's types yet. */
type ArrayRowStatement = StatementSync & { setReturnArrays(enabled: boolean): void };

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
 * Exclusive use: a store opened for writing holds an exclusive `flock` on
 * the file until {@link SqliteStore.close}, so a second process opening the
 * same data folder fails at once with {@link StoreLockedError} instead of
 * both writing. Its log is checkpointed by a Worker thread with a second
 * connection (`sqlite_checkpointer.ts`), off the event loop. A read-only
 * open uses `locking_mode=EXCLUSIVE`, so it too is refused while a node has
 * the store open (where no `flock` can be taken, on Windows or a file system
 * without it, the writer does the same and checkpoints on its own connection).
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
  /** The row the last insert wrote (rows of one append are consecutive: one writer). */
  #lastRow = 0;
  #closed = false;
  /** The own-head record file: opened at the first record; never when read-only. */
  #headFile: OwnHeadFile | null = null;
  readonly #readOnly: boolean;
  #head: OwnHead | null;
  /** The index and state reader; undefined for a version 1 file opened read-only. */
  readonly #index: SqliteIndex | undefined;
  /** Non-durable appends' shared transaction; undefined without group commit. */
  readonly #group: GroupCommit | undefined;
  /** The writer's lock on the file (see the class doc); undefined when read-only. */
  readonly #claim: StoreClaim | undefined;
  /** Checkpoints on a Worker; undefined when read-only or without an `flock`. */
  readonly #checkpointer: Checkpointer | undefined;
  #integrity: Promise<void> = Promise.resolve();

  private constructor(
    path: string,
    db: DatabaseSync,
    readOnly: boolean,
    head: OwnHead | null,
    version: number,
    groupCommitMs = 0,
    claim?: StoreClaim,
  ) {
    this.path = path;
    this.#claim = claim;
    if (claim?.flocked) this.#checkpointer = new Checkpointer(db, path);
    if (groupCommitMs > 0) {
      const lost = () => this.#index?.forgetReadAhead(); // rows the read-ahead may hold
      const committed = () => this.#checkpointer?.committed();
      this.#group = new GroupCommit(db, path, groupCommitMs, lost, committed);
    }
    this.#db = db;
    this.#readOnly = readOnly;
    this.#head = head;
    this.#begin = db.prepare("BEGIN IMMEDIATE");
    this.#commit = db.prepare("COMMIT");
    this.#rollback = db.prepare("ROLLBACK");
    this.#insertOp = db.prepare(`INSERT INTO ops ${INSERT_COLUMNS} VALUES ${ROW_PLACEHOLDERS}`);
    this.#insertMany = db.prepare(
      `INSERT INTO ops ${INSERT_COLUMNS} VALUES ` +
        Array.from({ length: INSERT_ROWS }, () => ROW_PLACEHOLDERS).join(", "),
    );
    this.#countOps = db.prepare("SELECT count(*) AS n FROM ops");
    this.#selectOps = db.prepare(
      "SELECT seq_no, id, body FROM ops WHERE seq_no > ? ORDER BY seq_no LIMIT ?",
    );
    (this.#selectOps as ArrayRowStatement).setReturnArrays(true);
    this.#insertFork = db.prepare("INSERT OR IGNORE INTO forks (author, proof) VALUES (?, ?)");
    this.#selectForks = db.prepare("SELECT author, proof FROM forks ORDER BY rowid");
    if (version >= 2) this.#index = new SqliteIndex(db, path, () => this.#ensureOpen());
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
    const busyTimeoutMs = options.busyTimeoutMs ?? 50;
    checkOpenArguments(path, busyTimeoutMs);
    const readOnly = options.readOnly ?? false;
    const claim = claimStoreFile(path, readOnly); // first: see its doc
    // Read-only with no write-ahead log: the file is complete (the node closed it), so read it as
    // immutable, which needs no lock or -shm/-wal file and so works in a read-only folder. With a
    // log present (a running node, or one that did not close the store), only a connection that
    // may write can read it correctly: a normal one, made query-only.
    const immutable = readOnly && !exists(`${path}-wal`);
    let db: DatabaseSync;
    try {
      checkHeader(path);
      prereadFile(path);
      if (!readOnly) restrictMode(path);
      db = immutable
        ? new DatabaseSync(immutableUri(path), { readOnly: true })
        : new DatabaseSync(path, { timeout: busyTimeoutMs });
    } catch (error) {
      claim?.release();
      throw openError(path, error);
    }
    try {
      // Before the first read, so no shared-memory index is ever created and
      // every lock, once taken, is kept until close.
      if (!claim?.flocked) db.exec("PRAGMA locking_mode=EXCLUSIVE");
      // Identify the file before changing anything in it.
      const quickCheck = options.quickCheck ?? true;
      const inBackground = quickCheck === "background" && claim?.flocked === true;
      const { fresh, version } = identifyStoreFile(db, path, {
        applicationId: SQLITE_STORE_APPLICATION_ID,
        schemaVersion: SQLITE_STORE_SCHEMA_VERSION,
        quickCheck: quickCheck !== false && !inBackground,
      });
      if (readOnly && fresh) {
        throw new StoreCorruptError(
          path,
          `Cannot open store at ${path} read-only: the file is empty, not yet a huskies-sync store`,
        );
      }
      const head = readOwnHead(path);
      if (immutable) return new SqliteStore(path, db, true, head, version);
      configureConnection(db);
      createOrUpgrade(db, fresh, version, !readOnly);
      if (readOnly) {
        db.exec("PRAGMA query_only=ON");
        return new SqliteStore(path, db, true, head, version);
      }
      const groupMs = options.groupCommitMs ?? 0;
      const store = new SqliteStore(path, db, false, head, SCHEMA_VERSION, groupMs, claim);
      if (inBackground && !fresh) store.#integrity = store.#checkpointer!.integrity();
      store.#integrity.catch(() => {}); // reported through integrity()
      return store;
    } catch (error) {
      try {
        db.close();
      } catch {
        // Already failing; the first error is the one to report.
      }
      claim?.release();
      throw openError(path, error);
    }
  }

  /**
   * Resolves once the store passed the integrity check that an open with
   * `quickCheck: "background"` runs on its Worker (at once after any other
   * open); rejects with {@link StoreCorruptError} when the file is damaged.
   */
  integrity(): Promise<void> {
    return this.#integrity;
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
        this.#checkpointer?.committed(durable);
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

  /**
   * Appends like {@link SqliteStore.append} and returns light references to
   * the rows just written, in order (see {@link Store.appendLazy}).
   */
  appendLazy(ops: readonly Operation[], options: AppendOptions = {}): Operation[] {
    const index = this.#indexOf("append");
    this.append(ops, options);
    const first = this.#lastRow - ops.length + 1;
    return ops.map((op, i) => index.reference(op, first + i));
  }

  /** Inserts `ops` in the open transaction. */
  #insert(ops: readonly Operation[]): void {
    let index = 0;
    const values: (string | number | null)[] = [];
    for (; index + INSERT_ROWS <= ops.length; index += INSERT_ROWS) {
      values.length = 0;
      for (let k = index; k < index + INSERT_ROWS; k++) {
        const op = ops[k];
        values.push(...rowValues(op, this.#body(op, k)));
      }
      this.#lastRow = Number(this.#insertMany.run(...values).lastInsertRowid);
    }
    for (; index < ops.length; index++) {
      const op = ops[index];
      this.#lastRow = Number(
        this.#insertOp.run(...rowValues(op, this.#body(op, index))).lastInsertRowid,
      );
    }
  }

  /** The `body` column of `op`, counted toward the log's next checkpoint. */
  #body(op: Operation, index: number): string {
    const body = encodeForStore(op, index);
    this.#checkpointer?.wrote(body.length);
    return body;
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
    return decodeRows(this.path, this.#selectOps, LOAD_CHUNK_ROWS, () => this.#ensureOpen());
  }

  /**
   * Every stored operation in insertion order as a light reference whose
   * body is read from the file when asked for (see `stored_operation.ts`).
   */
  loadLazy(): Iterable<Operation> {
    return this.#indexOf("load the index").operations();
  }

  /** Checks rows after `after` (see {@link Store.checkRows}). */
  checkRows(after: number, limit: number): number | null {
    return this.#indexOf("check rows").checkRows(after, limit);
  }

  /** Rows whose index columns disagree with their body (`huskies verify`); none for schema 1. */
  indexProblems(): Iterable<{ row: number; id: string; problem: string }> {
    this.#ensureOpen();
    return this.#index?.indexProblems() ?? [];
  }

  /** The replica state last saved, or null. */
  loadState(): { upTo: number; body: string } | null {
    return this.#indexOf("load the saved state").loadState();
  }

  /** Saves the replica state as covering every row stored so far (pending group rows first). */
  saveState(body: string): void {
    const index = this.#indexOf("save the state");
    if (this.#readOnly) {
      throw new Error(`Cannot save the state in store at ${this.path}: it is read-only`);
    }
    this.#group?.commit();
    index.saveState(body);
    this.#checkpointer?.committed();
  }

  #indexOf(action: string): SqliteIndex {
    this.#ensureOpen();
    if (this.#index === undefined) {
      throw new Error(
        `Cannot ${action} of store at ${this.path}: it has schema version 1 (read-only)`,
      );
    }
    return this.#index;
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
    this.#checkpointer?.close(); // first, so that this connection is the last and cleans up
    this.#db.close();
    this.#claim?.release();
  }
}
