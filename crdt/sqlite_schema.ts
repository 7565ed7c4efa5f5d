/**
 * The SQLite store's schema and connection settings: creating the schema,
 * bringing a version 1 file up to version 2 in place (one transaction, at
 * the first read-write open), and the pragmas of a connection that writes.
 *
 * Version 2 adds to each `ops` row the fields start-up needs (`time`, `prev`,
 * `deps`, `bytes`, `members`), so a replica can hold light references to
 * stored operations and read a body only when it needs it, and a `state`
 * table for the replica's saved document (see `replica_state.ts`).
 *
 * Schema (version 2):
 *
 * ```sql
 * CREATE TABLE ops (
 *   seq_no  INTEGER PRIMARY KEY AUTOINCREMENT, -- insertion order
 *   id      TEXT NOT NULL,    -- operation id (the log keeps ids unique)
 *   author  TEXT NOT NULL,
 *   seq     INTEGER NOT NULL,
 *   body    TEXT NOT NULL,    -- encodeOperation(op)
 *   time    INTEGER NOT NULL, -- version 2: what start-up needs without reading body
 *   prev    TEXT,             -- null at seq 1
 *   deps    TEXT,             -- JSON array of ids, null when empty
 *   bytes   INTEGER NOT NULL, -- UTF-8 bytes of body
 *   members INTEGER NOT NULL  -- 1 when the mutation touches ["members"]
 * );
 * CREATE TABLE forks (
 *   author TEXT PRIMARY KEY,
 *   proof  TEXT NOT NULL  -- JSON {author, seq, a, b}, a and b in wire form
 * );
 * CREATE TABLE state (    -- version 2: the replica's saved document
 *   name  TEXT PRIMARY KEY,
 *   up_to INTEGER NOT NULL, -- the last ops row it covers
 *   body  TEXT NOT NULL
 * );
 * ```
 * @module
 */
import type { DatabaseSync } from "node:sqlite";
import { MEMBERS_ROOT, touchesMembers } from "./membership_ops.ts";
import { encodedSize, type Operation } from "./operation.ts";

/** `PRAGMA application_id` of a huskies-sync store ("Husk"). */
export const APPLICATION_ID = 0x4875736b;

/** The schema version this code writes (`PRAGMA user_version`); it also reads version 1. */
export const SCHEMA_VERSION = 2;

const OPS_V2_COLUMNS = `
    time INTEGER NOT NULL,
    prev TEXT,
    deps TEXT,
    bytes INTEGER NOT NULL,
    members INTEGER NOT NULL`;

const STATE_TABLE = `
  CREATE TABLE state (
    name TEXT PRIMARY KEY,
    up_to INTEGER NOT NULL,
    body TEXT NOT NULL
  );`;

/** The schema of a new store. */
export const SCHEMA = `
  CREATE TABLE ops (
    seq_no INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL,
    author TEXT NOT NULL,
    seq INTEGER NOT NULL,
    body TEXT NOT NULL,${OPS_V2_COLUMNS}
  );
  CREATE TABLE forks (
    author TEXT PRIMARY KEY,
    proof TEXT NOT NULL
  );${STATE_TABLE}
  PRAGMA application_id = ${APPLICATION_ID};
  PRAGMA user_version = ${SCHEMA_VERSION};
`;

/**
 * Upgrades a version 1 store (in the caller's transaction): adds the
 * version 2 columns, filled from each row's body by SQLite's JSON functions,
 * and the `state` table. About 2 s per million operations, once.
 */
export function migrateFromV1(db: DatabaseSync): void {
  db.exec(`
    ALTER TABLE ops ADD COLUMN time INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE ops ADD COLUMN prev TEXT;
    ALTER TABLE ops ADD COLUMN deps TEXT;
    ALTER TABLE ops ADD COLUMN bytes INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE ops ADD COLUMN members INTEGER NOT NULL DEFAULT 0;
    UPDATE ops SET
      time = body ->> '$.time',
      prev = body ->> '$.prev',
      deps = CASE WHEN json_array_length(body, '$.deps') > 0 THEN body -> '$.deps' END,
      bytes = length(CAST(body AS BLOB)),
      members = (body ->> '$.mutation.path[0]') IS '${MEMBERS_ROOT}';
    ${STATE_TABLE}
    PRAGMA user_version = ${SCHEMA_VERSION};
  `);
}

/** Page cache per connection, in KiB (SQLite's default is 2 MiB). */
const CACHE_SIZE_KIB = 16384;

/**
 * WAL pages between automatic checkpoints (SQLite's default is 1000), where no checkpoint Worker
 * runs (`sqlite_checkpointer.ts`: on Windows, or once the Worker failed). Such a checkpoint runs
 * inside the commit that crosses the mark and stalls the event loop for as long as it copies and
 * fsyncs: about 11-13 ms at 1000 pages, 2 ms at 100 (of 4 KiB then). That stall was the largest
 * part of the fan-out tail: K=10 p99 6.1-7.6 ms at 1000 pages, 4.1-4.8 at 100; it costs 10-15 % of
 * chain ingest (cold sync unchanged). A checkpoint every 8192 pages made fan-out p99 five times
 * worse.
 * `scripts/RESULTS.md` has the runs. Durability is `synchronous`'s either way.
 */
const WAL_AUTOCHECKPOINT_PAGES = 100;

/**
 * Page size of a new store, in bytes (SQLite's default is 4096). A row is
 * about 700 bytes; with 8 KiB pages inserting a catch-up's rows took 25-35 %
 * less time (the whole cold sync 5 %), the file of 1M operations was 9 %
 * smaller and opening it 8 % faster, and a live stream's commits were no
 * slower (`scripts/RESULTS.md`, "Pages of 8 KiB"). 16 KiB gained no more and
 * doubles again what each small commit writes to the log.
 */
export const PAGE_SIZE_BYTES = 8192;

/**
 * Sets up a connection that writes: the page size (which takes effect only
 * in a new, empty file, before WAL mode writes its first page: an existing
 * store keeps its own), WAL (required), full sync by default, cache,
 * checkpoints.
 */
export function configureConnection(db: DatabaseSync): void {
  db.exec(`PRAGMA page_size=${PAGE_SIZE_BYTES}`);
  const mode = db.prepare("PRAGMA journal_mode=WAL").get() as { journal_mode: string };
  if (mode.journal_mode !== "wal") {
    throw new Error(`journal mode is ${mode.journal_mode}, WAL is required`);
  }
  db.exec("PRAGMA synchronous=FULL");
  // Room for the id index during a large batch (about 10-30% faster at 100k).
  db.exec(`PRAGMA cache_size=-${CACHE_SIZE_KIB}`);
  db.exec(`PRAGMA wal_autocheckpoint=${WAL_AUTOCHECKPOINT_PAGES}`);
}

/**
 * Creates the schema in a fresh file, or (with `upgrade`) brings a version 1
 * file to version 2, in one write transaction; nothing for a current file.
 */
export function createOrUpgrade(
  db: DatabaseSync,
  fresh: boolean,
  version: number,
  upgrade: boolean,
): void {
  db.exec("BEGIN IMMEDIATE");
  try {
    if (fresh) db.exec(SCHEMA);
    else if (version === 1 && upgrade) migrateFromV1(db);
    db.exec("COMMIT");
  } catch (error) {
    if (db.isTransaction) db.exec("ROLLBACK");
    throw error;
  }
}

/** The columns of one `ops` row, in the order `INSERT_COLUMNS` names them. */
export function rowValues(op: Operation, body: string): (string | number | null)[] {
  return [
    op.id,
    op.author,
    op.seq,
    body,
    op.time,
    op.prev,
    op.deps.length === 0 ? null : JSON.stringify(op.deps),
    encodedSize(op),
    touchesMembers(op.mutation) ? 1 : 0,
  ];
}

/** The columns {@link rowValues} gives, for an INSERT. */
export const INSERT_COLUMNS = "(id, author, seq, body, time, prev, deps, bytes, members)";

/** Placeholders for one row of {@link INSERT_COLUMNS}. */
export const ROW_PLACEHOLDERS = "(?, ?, ?, ?, ?, ?, ?, ?, ?)";
