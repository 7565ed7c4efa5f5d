/**
 * Group commit for a SQLite connection: appends that need no fsync of their
 * own (operations received from peers) share one open transaction, each in a
 * savepoint, committed one window after the first of them, or earlier when
 * the store needs a transaction of its own.
 * @module
 */
import type { DatabaseSync, StatementSync } from "node:sqlite";
import { messageOf } from "./sqlite_file.ts";

/** One connection's group transaction; see the module doc. */
export class GroupCommit {
  readonly #db: DatabaseSync;
  readonly #path: string;
  readonly #windowMs: number;
  readonly #begin: StatementSync;
  readonly #commit: StatementSync;
  readonly #savepoint: StatementSync;
  readonly #release: StatementSync;
  readonly #rollbackTo: StatementSync;
  #timer: ReturnType<typeof setTimeout> | undefined;
  readonly #onLost: () => void;
  readonly #onCommitted: () => void;
  #failure: Error | undefined;

  /**
   * Prepares the statements; `windowMs` is how long the transaction stays
   * open; `onLost` is called when rows of earlier appends were rolled back,
   * `onCommitted` after each commit (outside any transaction).
   */
  constructor(
    db: DatabaseSync,
    path: string,
    windowMs: number,
    onLost: () => void = () => {},
    onCommitted: () => void = () => {},
  ) {
    this.#onLost = onLost;
    this.#onCommitted = onCommitted;
    this.#db = db;
    this.#path = path;
    this.#windowMs = windowMs;
    this.#begin = db.prepare("BEGIN IMMEDIATE");
    this.#commit = db.prepare("COMMIT");
    this.#savepoint = db.prepare("SAVEPOINT append_batch");
    this.#release = db.prepare("RELEASE append_batch");
    this.#rollbackTo = db.prepare("ROLLBACK TO append_batch");
  }

  /** True while a group transaction is open. */
  get isOpen(): boolean {
    return this.#timer !== undefined;
  }

  /**
   * Runs `write` inside the group transaction (opened if needed), as one
   * savepoint: when it throws, only its own rows are undone and the error
   * is rethrown. A failure of an earlier timed commit is thrown first.
   */
  run(write: () => void): void {
    if (this.#failure !== undefined) {
      const failure = this.#failure;
      this.#failure = undefined;
      throw failure;
    }
    if (this.#timer === undefined) {
      this.#begin.run();
      const timer = setTimeout(() => {
        try {
          this.commit();
        } catch (error) {
          this.#failure = error as Error;
        }
      }, this.#windowMs);
      Deno.unrefTimer(timer);
      this.#timer = timer;
    }
    this.#savepoint.run();
    try {
      write();
      this.#release.run();
    } catch (error) {
      try {
        if (this.#db.isTransaction) {
          this.#rollbackTo.run();
          this.#release.run();
        } else {
          this.#stop();
          this.#onLost(); // SQLite rolled back the whole group
        }
      } catch {
        // SQLite may already have rolled back the whole transaction.
      }
      throw error;
    }
  }

  /**
   * Commits the open group transaction, if any.
   * @throws {Error} the commit failed: what the group held is rolled back.
   */
  commit(): void {
    if (this.#timer === undefined) return;
    this.#stop();
    try {
      this.#commit.run();
    } catch (error) {
      try {
        if (this.#db.isTransaction) this.#db.exec("ROLLBACK");
      } catch {
        // Already failing; the first error is the one to report.
      }
      this.#onLost();
      throw new Error(
        `Cannot commit received operations to store at ${this.#path}: ${messageOf(error)}; ` +
          "the last window of them was not stored (peers send them again)",
        { cause: error },
      );
    }
    this.#onCommitted();
  }

  #stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}
