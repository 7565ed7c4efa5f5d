/**
 * The SQLite store's read paths for operations kept on disk: the index that
 * start-up loads instead of every body ({@link StoredOperation}s), bodies
 * read one at a time on demand, the saved replica state (the `state` table),
 * and the slice-by-slice check of every row's id that replaces the check at
 * open.
 * @module
 */
import type { DatabaseSync, StatementSync } from "node:sqlite";
import { touchesMembers } from "./membership_ops.ts";
import { utf8Length } from "../protocol/bytes.ts";
import { encodedSize, hasValidId, type Operation, type OpId } from "./operation.ts";
import { CORRUPT_ADVICE, decodeRow, StoreCorruptError } from "./sqlite_file.ts";
import { type BodyReader, StoredOperation } from "./stored_operation.ts";

/** `setReturnArrays` exists in node:sqlite (Node 24, Deno 2.9) but not in Deno's types yet. */
type ArrayRowStatement = StatementSync & { setReturnArrays(enabled: boolean): void };

function arrays(statement: StatementSync): StatementSync {
  (statement as ArrayRowStatement).setReturnArrays(true);
  return statement;
}

/** A row of the index query, as an array. */
type IndexRow = [
  row: number,
  id: OpId,
  author: string,
  seq: number,
  time: number,
  prev: OpId | null,
  deps: string | null,
  bytes: number,
  members: number,
];

/** Rows read per index query. */
const INDEX_CHUNK_ROWS = 4096;

/** Rows read at once when bodies are read in sequence (about 120 KB of text). */
const READ_AHEAD_ROWS = 256;

/** The state row the replica saves (one per store). */
const STATE_NAME = "replica";

/** Reads a version 2 store's index, bodies and saved state (see the module doc). */
export class SqliteIndex implements BodyReader {
  /** The store's path, for messages. */
  readonly path: string;
  readonly #selectIndex: StatementSync;
  readonly #selectBody: StatementSync;
  readonly #selectBodies: StatementSync;
  /** Bodies of the rows from `#aheadFrom` on, read ahead. */
  #ahead: string[] = [];
  #aheadFrom = 0;
  #lastRead = -1;
  readonly #selectRows: StatementSync;
  readonly #selectState: StatementSync;
  readonly #upsertState: StatementSync;
  readonly #lastRow: StatementSync;
  readonly #ensureOpen: () => void;

  /** Prepares the statements on `db`; `ensureOpen` throws once the store is closed. */
  constructor(db: DatabaseSync, path: string, ensureOpen: () => void) {
    this.path = path;
    this.#ensureOpen = ensureOpen;
    this.#selectIndex = arrays(db.prepare(
      "SELECT seq_no, id, author, seq, time, prev, deps, bytes, members FROM ops " +
        "WHERE seq_no > ? ORDER BY seq_no LIMIT ?",
    ));
    this.#selectBody = arrays(db.prepare("SELECT body FROM ops WHERE seq_no = ?"));
    this.#selectBodies = arrays(
      db.prepare("SELECT seq_no, body FROM ops WHERE seq_no >= ? AND seq_no < ? ORDER BY seq_no"),
    );
    this.#selectRows = arrays(db.prepare(
      "SELECT seq_no, id, author, seq, time, prev, deps, bytes, members, body FROM ops " +
        "WHERE seq_no > ? ORDER BY seq_no LIMIT ?",
    ));
    this.#selectState = db.prepare("SELECT up_to, body FROM state WHERE name = ?");
    this.#upsertState = db.prepare(
      "INSERT INTO state (name, up_to, body) VALUES (?, ?, ?) " +
        "ON CONFLICT (name) DO UPDATE SET up_to = excluded.up_to, body = excluded.body",
    );
    this.#lastRow = db.prepare("SELECT coalesce(max(seq_no), 0) AS n FROM ops");
  }

  /**
   * The body of row `row`, or `undefined` when there is none. Reads in
   * sequence (a catch-up serving stored operations) are answered from one
   * range query per {@link READ_AHEAD_ROWS} rows (forgotten at every append, see
   * {@link forgetReadAhead}).
   */
  readBody(row: number): string | undefined {
    this.#ensureOpen();
    const ahead = this.#ahead;
    if (row >= this.#aheadFrom && row < this.#aheadFrom + ahead.length) {
      return ahead[row - this.#aheadFrom];
    }
    const sequential = row === this.#lastRead + 1;
    this.#lastRead = row;
    if (!sequential) {
      const found = this.#selectBody.get(row) as unknown as [string] | undefined;
      return found?.[0];
    }
    const rows = this.#selectBodies.all(row, row + READ_AHEAD_ROWS) as unknown as [
      number,
      string,
    ][];
    // Only the rows present from `row` on, in a run: a row missing now may be written later.
    const run: string[] = [];
    for (const [at, body] of rows) {
      if (at !== row + run.length) break;
      run.push(body);
    }
    this.#aheadFrom = row;
    this.#ahead = run;
    return run[0];
  }

  /** Drops the bodies read ahead (rows of an append that may yet be rolled back). */
  forgetReadAhead(): void {
    this.#ahead = [];
    this.#lastRead = -1;
  }

  /** Every stored operation in insertion order, as {@link StoredOperation}s. */
  *operations(): Generator<StoredOperation, void, undefined> {
    const authors = new Map<string, string>();
    let after = 0;
    while (true) {
      this.#ensureOpen();
      const rows = this.#selectIndex.all(after, INDEX_CHUNK_ROWS) as unknown as IndexRow[];
      for (const [row, id, rawAuthor, seq, time, prev, depsText, bytes, members] of rows) {
        let author = authors.get(rawAuthor);
        if (author === undefined) authors.set(rawAuthor, author = rawAuthor);
        yield new StoredOperation(
          { row, id, author, seq, time, prev, depsText, bytes, members: members === 1 },
          this,
        );
      }
      if (rows.length < INDEX_CHUNK_ROWS) return;
      after = rows[rows.length - 1][0];
    }
  }

  /** A reference to `op`, just stored at row `row`. */
  reference(op: Operation, row: number): StoredOperation {
    const { id, author, seq, prev, time } = op;
    const depsText = op.deps.length === 0 ? null : JSON.stringify(op.deps);
    const members = touchesMembers(op.mutation);
    return new StoredOperation(
      { row, id, author, seq, prev, time, depsText, bytes: encodedSize(op), members },
      this,
    );
  }

  /** The saved replica state, or null. */
  loadState(): { upTo: number; body: string } | null {
    this.#ensureOpen();
    const row = this.#selectState.get(STATE_NAME) as { up_to: number; body: string } | undefined;
    return row === undefined ? null : { upTo: row.up_to, body: row.body };
  }

  /**
   * Saves the replica state as describing every row stored so far (in the
   * caller's transaction, if any); returns that row count's position.
   */
  saveState(body: string): number {
    this.#ensureOpen();
    const upTo = (this.#lastRow.get() as { n: number }).n;
    this.#upsertState.run(STATE_NAME, upTo, body);
    return upTo;
  }

  /**
   * Checks up to `limit` rows after position `after`: each body decodes, its
   * id is the hash of its content, and its index columns agree with it.
   * Returns the position to go on from, or `null` at the end.
   *
   * @throws {StoreCorruptError} the first row that fails.
   */
  checkRows(after: number, limit: number): number | null {
    this.#ensureOpen();
    const rows = this.#selectRows.all(after, limit) as unknown as CheckedRow[];
    for (const row of rows) {
      const problem = rowProblem(this.path, row, true);
      if (problem !== undefined) {
        throw new StoreCorruptError(
          this.path,
          `Cannot vouch for store at ${this.path}: stored operation at row seq_no ${row[0]} ` +
            `(${row[1]}) ${problem}; the store is corrupt or was altered. ${CORRUPT_ADVICE}`,
        );
      }
    }
    return rows.length < limit ? null : rows[rows.length - 1][0];
  }

  /**
   * Every row whose index columns disagree with its body, in order (`huskies
   * verify`, which checks ids and signatures itself).
   *
   * @throws {StoreCorruptError} a body that does not decode.
   */
  *indexProblems(): Generator<{ row: number; id: OpId; problem: string }, void, undefined> {
    for (let after: number | null = 0; after !== null;) {
      this.#ensureOpen();
      const rows = this.#selectRows.all(after, INDEX_CHUNK_ROWS) as unknown as CheckedRow[];
      for (const row of rows) {
        const problem = rowProblem(this.path, row, false);
        if (problem !== undefined) yield { row: row[0], id: row[1], problem };
      }
      after = rows.length < INDEX_CHUNK_ROWS ? null : rows[rows.length - 1][0];
    }
  }
}

/** An index row with its body. */
type CheckedRow = [...IndexRow, string];

/** What is wrong with a stored row (its id, when `checkId`, or its index columns), if anything. */
function rowProblem(path: string, checked: CheckedRow, checkId: boolean): string | undefined {
  const [row, id, author, seq, time, prev, depsText, bytes, members, body] = checked;
  const op = decodeRow(path, [row, id, body]);
  if (checkId && !hasValidId(op)) return "does not match its id";
  // The body is the wire text, so its UTF-8 length is the operation's encoded size.
  const agrees = op.author === author && op.seq === seq && op.time === time && op.prev === prev &&
    depsText === (op.deps.length === 0 ? null : JSON.stringify(op.deps)) &&
    bytes === utf8Length(body) && members === (touchesMembers(op.mutation) ? 1 : 0);
  return agrees
    ? undefined
    : "disagrees with its index columns (id, author, seq, time, prev, deps)";
}
