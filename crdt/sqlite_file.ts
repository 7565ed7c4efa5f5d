/**
 * The named errors of the SQLite store and the checks that raise them when a
 * file is opened: a locked store, and a file that is not a huskies-sync store
 * (or is corrupt). Nothing is ever deleted or rewritten to recover.
 * @module
 */
import { resolve } from "node:path";
import type { DatabaseSync, StatementSync } from "node:sqlite";
import { isHex64 } from "../protocol/bytes.ts";
import {
  decodeOperation,
  encodedSize,
  encodeOperation,
  type Operation,
  OPERATION_LIMITS,
  operationToWire,
  parseOperation,
} from "./operation.ts";
import type { ForkProof } from "./store.ts";

/**
 * Thrown by {@link SqliteStore.open} when another process (or another
 * connection in this process) has the store open. Only one huskies-sync
 * process may use a data folder at a time.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { SqliteStore, StoreLockedError } from "@huskies/sync";
 *
 * const dir = Deno.makeTempDirSync();
 * const store = SqliteStore.open(`${dir}/ops.db`);
 * assert.throws(() => SqliteStore.open(`${dir}/ops.db`), StoreLockedError);
 * store.close();
 * Deno.removeSync(dir, { recursive: true });
 * ```
 */
export class StoreLockedError extends Error {
  /** The path of the store file. */
  readonly path: string;

  /** Creates the error; `message` is the whole message. */
  constructor(path: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "StoreLockedError";
    this.path = path;
  }
}

/**
 * Thrown when the file is not a huskies-sync store, is corrupt, or was written
 * by a newer schema version: by {@link SqliteStore.open}, and by
 * {@link SqliteStore.load} / {@link SqliteStore.loadForks} for a row that does
 * not decode. Nothing is ever deleted or rewritten to recover.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { SqliteStore, StoreCorruptError } from "@huskies/sync";
 *
 * const dir = Deno.makeTempDirSync();
 * Deno.writeTextFileSync(`${dir}/ops.db`, "not a database");
 * assert.throws(() => SqliteStore.open(`${dir}/ops.db`), StoreCorruptError);
 * assert.equal(Deno.readTextFileSync(`${dir}/ops.db`), "not a database"); // left as it was
 * Deno.removeSync(dir, { recursive: true });
 * ```
 */
export class StoreCorruptError extends Error {
  /** The path of the store file. */
  readonly path: string;

  /** Creates the error; `message` is the whole message. */
  constructor(path: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "StoreCorruptError";
    this.path = path;
  }
}

// SQLite primary result codes (the low byte of an extended code).
const SQLITE_BUSY = 5;
const SQLITE_LOCKED = 6;
export const SQLITE_CORRUPT = 11;
export const SQLITE_NOTADB = 26;

/** Advice appended to every corruption message. */
export const CORRUPT_ADVICE = "Restore the file from a backup, or move it aside and let the node " +
  "resync from its peers (nothing was changed or deleted).";

/** The SQLite result code of an error from node:sqlite, if any. */
export function sqliteCode(error: unknown): number | undefined {
  const code = (error as { errcode?: unknown } | null)?.errcode;
  return typeof code === "number" ? code : undefined;
}

/** The message of any thrown value. */
export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** The {@link StoreLockedError} for `path`, `holder` saying who has it open. */
export function lockedError(path: string, holder: string, cause?: unknown): StoreLockedError {
  return new StoreLockedError(
    path,
    `Cannot open store at ${path}: ${holder}. ` +
      "Only one huskies-sync process may use a data folder at a time: stop the other " +
      "process, or give this one its own data folder.",
    cause === undefined ? undefined : { cause },
  );
}

/**
 * Checks the `path` given to `SqliteStore.open` (a file path, not SQLite's
 * `:memory:` or a `file:` URI) and its `busyTimeoutMs` option.
 */
export function checkOpenArguments(path: unknown, busyTimeoutMs: number): void {
  if (typeof path !== "string" || path.length === 0) {
    throw new TypeError("Cannot open store: path must be a non-empty string");
  }
  if (path === ":memory:" || path.startsWith("file:")) {
    throw new TypeError(
      `Cannot open store at ${path}: give a file path (use MemoryStore for an in-memory store)`,
    );
  }
  if (!Number.isSafeInteger(busyTimeoutMs) || busyTimeoutMs < 0) {
    throw new RangeError("Cannot open store: busyTimeoutMs must be a non-negative integer");
  }
}

/** Translates an error raised while opening into one of the named errors where it fits. */
export function openError(path: string, error: unknown): Error {
  if (error instanceof StoreLockedError || error instanceof StoreCorruptError) return error;
  const code = sqliteCode(error);
  const primary = code === undefined ? undefined : code & 0xff;
  const prefix = `Cannot open store at ${path}`;
  if (primary === SQLITE_BUSY || primary === SQLITE_LOCKED) {
    return lockedError(path, `another process has it open (SQLite: ${messageOf(error)})`, error);
  }
  if (primary === SQLITE_NOTADB || primary === SQLITE_CORRUPT) {
    return new StoreCorruptError(
      path,
      `${prefix}: the file is not a huskies-sync store or is corrupt ` +
        `(SQLite: ${messageOf(error)}). ${CORRUPT_ADVICE}`,
      { cause: error },
    );
  }
  return new Error(
    `${prefix}: ${
      messageOf(error)
    }. Check that the path names a file in an existing, writable folder.`,
    { cause: error },
  );
}

const SQLITE_HEADER = new TextEncoder().encode("SQLite format 3\0");

/**
 * Refuses a non-empty file that does not start with the SQLite header before
 * SQLite sees it: SQLite treats some very short files (one byte, say) as an
 * empty database and would write over them.
 */
export function checkHeader(path: string): void {
  let file: Deno.FsFile;
  try {
    file = Deno.openSync(path, { read: true });
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return; // SQLite creates it
    throw openError(path, error);
  }
  try {
    const head = new Uint8Array(SQLITE_HEADER.length);
    let filled = 0;
    try {
      while (filled < head.length) {
        const n = file.readSync(head.subarray(filled));
        if (n === null) break;
        filled += n;
      }
    } catch (error) {
      throw openError(path, error);
    }
    if (filled === 0) return; // an empty file becomes a new store
    if (filled < head.length || !head.every((byte, i) => byte === SQLITE_HEADER[i])) {
      throw new StoreCorruptError(
        path,
        `Cannot open store at ${path}: the file is not a SQLite database, so not a ` +
          "huskies-sync store. Point huskies-sync at its own data folder, or move this " +
          "file aside.",
      );
    }
  } finally {
    file.close();
  }
}

function pragmaNumber(db: DatabaseSync, name: string): number {
  const row = db.prepare(`PRAGMA ${name}`).get() as Record<string, unknown> | undefined;
  return Number(row?.[name] ?? 0);
}

/** What a store file must carry, for {@link identifyStoreFile}. */
export interface StoreFileIdentity {
  /** The expected `PRAGMA application_id`. */
  applicationId: number;
  /** The newest schema version this code reads. */
  schemaVersion: number;
  /** Run `PRAGMA quick_check` on an existing file. */
  quickCheck: boolean;
}

/**
 * Identifies an open database before anything is changed in it: a fresh
 * (empty) file, or a huskies-sync store of a schema this code reads, intact.
 * Returns whether it is fresh and its schema version.
 *
 * @throws {StoreCorruptError} another application's database, a newer or
 * unknown schema, or a failed integrity check.
 */
export function identifyStoreFile(
  db: DatabaseSync,
  path: string,
  expected: StoreFileIdentity,
): { fresh: boolean; version: number } {
  const applicationId = pragmaNumber(db, "application_id");
  const version = pragmaNumber(db, "user_version");
  const objects = (db.prepare("SELECT count(*) AS n FROM sqlite_schema").get() as {
    n: number;
  }).n;
  const fresh = applicationId === 0 && version === 0 && objects === 0;
  if (!fresh) {
    const prefix = `Cannot open store at ${path}`;
    if (applicationId !== expected.applicationId) {
      throw new StoreCorruptError(
        path,
        `${prefix}: the file is a SQLite database of another application ` +
          `(application_id ${applicationId}, expected ${expected.applicationId}). ` +
          "Point huskies-sync at its own data folder, or move this file aside.",
      );
    }
    if (version > expected.schemaVersion) {
      throw new StoreCorruptError(
        path,
        `${prefix}: it was written by a newer version of huskies-sync (schema ` +
          `${version}; this version reads schema ${expected.schemaVersion}). ` +
          "Upgrade huskies-sync to open it.",
      );
    }
    if (version < 1) {
      throw new StoreCorruptError(
        path,
        `${prefix}: it has unknown schema version ${version}. ${CORRUPT_ADVICE}`,
      );
    }
    if (expected.quickCheck) {
      const rows = db.prepare(QUICK_CHECK).all() as { quick_check: string }[];
      const failed = quickCheckFailure(path, rows.map((row) => row.quick_check));
      if (failed) throw failed;
    }
  }
  return { fresh, version };
}

/** SQLite's structural check of a whole file, at most three problems listed. */
export const QUICK_CHECK = "PRAGMA quick_check(3)";

/** The error for the answer of {@link QUICK_CHECK} (its rows), or undefined when it is "ok". */
export function quickCheckFailure(path: string, problems: string[]): StoreCorruptError | undefined {
  if (problems.length === 1 && problems[0] === "ok") return undefined;
  let summary = problems.join("; ").replaceAll("\n", "; ");
  if (summary.length > 300) summary = `${summary.slice(0, 300)}...`;
  return new StoreCorruptError(
    path,
    `Cannot open store at ${path}: the integrity check failed (${summary}). ${CORRUPT_ADVICE}`,
  );
}

/**
 * A fork proof as the `forks.proof` column stores it: JSON
 * `{author, seq, a, b}` with `a` and `b` in wire form.
 *
 * @throws {TypeError} the proof is malformed (it would not load back).
 */
export function encodeForkProof(proof: ForkProof): string {
  if (!isHex64(proof.author) || !Number.isSafeInteger(proof.seq) || proof.seq < 1) {
    throw new TypeError("Cannot save fork proof: author or seq is malformed");
  }
  let a: Operation, b: Operation;
  try {
    a = operationToWire(parseOperation(proof.a));
    b = operationToWire(parseOperation(proof.b));
  } catch (error) {
    throw new TypeError(`Cannot save fork proof: ${messageOf(error)}`, { cause: error });
  }
  return JSON.stringify({ author: proof.author, seq: proof.seq, a, b });
}

/**
 * Decodes a stored fork proof of `author` from the store at `path`.
 *
 * @throws {StoreCorruptError} it does not decode.
 */
export function decodeForkProof(path: string, author: string, json: string): ForkProof {
  try {
    const value = JSON.parse(json) as Record<string, unknown>;
    if (value.author !== author || !Number.isSafeInteger(value.seq)) {
      throw new SyntaxError("author or seq is malformed");
    }
    return {
      author,
      seq: value.seq as number,
      // Unchecked size: a proof stored by an older version stays loadable; the log refuses it.
      a: parseOperation(value.a, { checkSize: false }),
      b: parseOperation(value.b, { checkSize: false }),
    };
  } catch (error) {
    throw new StoreCorruptError(
      path,
      `Cannot load store at ${path}: the fork proof of author ${author} does ` +
        `not decode: ${messageOf(error)}. ${CORRUPT_ADVICE}`,
      { cause: error },
    );
  }
}

/** True when `path` exists. */
export function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/** Owner-only access for the store and the files SQLite makes beside it. */
export const STORE_FILE_MODE = 0o600;

/**
 * Makes `path` (created empty when missing) and its `-wal` and `-shm` files,
 * when present, readable and writable by the owner only. SQLite gives the
 * files it creates beside a database the database file's mode, so they are
 * 0600 from the start too.
 */
export function restrictMode(path: string): void {
  if (Deno.build.os === "windows") return; // no POSIX modes; the folder's ACL applies
  try {
    Deno.openSync(path, { create: true, write: true, mode: STORE_FILE_MODE }).close();
    for (const file of [path, `${path}-wal`, `${path}-shm`]) {
      const mode = exists(file) ? Deno.statSync(file).mode : null;
      if (mode !== null && (mode & 0o077) !== 0) Deno.chmodSync(file, STORE_FILE_MODE);
    }
  } catch (error) {
    throw openError(path, error);
  }
}

/** A `file:` URI that opens `path` as immutable (no locks, no -wal or -shm files). */
export function immutableUri(path: string): string {
  const absolute = resolve(path).split("/").map(encodeURIComponent).join("/");
  return `file:${absolute}?immutable=1`;
}

/** Checks an operation before storing it; returns its encoded body (the `body` column). */
export function encodeForStore(op: Operation, index: number): string {
  if (encodedSize(op) > OPERATION_LIMITS.maxBytes) {
    throw new TypeError(
      `Cannot append operation at index ${index}: its encoding is larger than ` +
        `${OPERATION_LIMITS.maxBytes} bytes`,
    );
  }
  return encodeOperation(op);
}

/** A row of `SELECT seq_no, id, body FROM ops`, read as an array. */
export type OpRow = [seqNo: number, id: string, body: string];

/** Decodes a row of the `ops` table of the store at `path`. */
export function decodeRow(path: string, row: OpRow): Operation {
  const [seqNo, id, body] = row;
  let op: Operation;
  try {
    op = decodeOperation(body, { checkSize: false });
  } catch (error) {
    throw new StoreCorruptError(
      path,
      `Cannot load store at ${path}: row seq_no ${seqNo} (id ${id}) does ` +
        `not decode: ${messageOf(error)}. ${CORRUPT_ADVICE}`,
      { cause: error },
    );
  }
  if (op.id !== id) {
    throw new StoreCorruptError(
      path,
      `Cannot load store at ${path}: row seq_no ${seqNo} has id ${id} but ` +
        `its body is operation ${op.id}. ${CORRUPT_ADVICE}`,
    );
  }
  return op;
}

/**
 * Every row `select` (`SELECT seq_no, id, body ... WHERE seq_no > ? ORDER BY
 * seq_no LIMIT ?`, rows as arrays) gives, `chunk` rows per query, decoded
 * lazily. Keyset pagination with all() rather than iterate(): in node:sqlite
 * it saves about 1 us per row, most of the fetch time.
 */
export function* decodeRows(
  path: string,
  select: StatementSync,
  chunk: number,
  ensureOpen: () => void,
): Generator<Operation, void, undefined> {
  let after = 0;
  while (true) {
    let rows: OpRow[];
    ensureOpen();
    try {
      rows = select.all(after, chunk) as unknown as OpRow[];
    } catch (error) {
      throw readError(path, error);
    }
    for (const row of rows) yield decodeRow(path, row);
    if (rows.length < chunk) return;
    after = rows[rows.length - 1][0];
  }
}

/** Bytes read per call by {@link prereadFile}. */
const PREREAD_CHUNK = 4 << 20;

/**
 * Reads the file at `path` once from start to end and discards it, so that
 * the page cache holds it before SQLite walks it page by page. After a
 * reboot, SQLite's single-page reads of a 1M-operation store (856 MB) took
 * 117 s here, a sequential read 0.7 s; from the cache, reading costs about
 * 0.3 ms per MB. A missing or unreadable file is left to the open to report.
 */
export function prereadFile(path: string): void {
  let file: Deno.FsFile;
  try {
    file = Deno.openSync(path, { read: true });
  } catch {
    return;
  }
  try {
    const buffer = new Uint8Array(PREREAD_CHUNK);
    while ((file.readSync(buffer) ?? 0) > 0) {
      // discard: the point is the page cache
    }
  } catch {
    // The open reports whatever is wrong with the file.
  } finally {
    file.close();
  }
}

/** Names an error raised while reading the store at `path`. */
export function readError(path: string, error: unknown): Error {
  const primary = (sqliteCode(error) ?? 0) & 0xff;
  if (primary === SQLITE_CORRUPT || primary === SQLITE_NOTADB) {
    return new StoreCorruptError(
      path,
      `Cannot load store at ${path}: ${messageOf(error)}. ${CORRUPT_ADVICE}`,
      { cause: error },
    );
  }
  return new Error(`Cannot load store at ${path}: ${messageOf(error)}`, {
    cause: error,
  });
}
