/**
 * The options of `SqliteStore.open`.
 * @module
 */

/** Options for `SqliteStore.open`. */
export interface SqliteStoreOptions {
  /**
   * How long to wait for a lock held by another connection before failing
   * with `StoreLockedError`, in milliseconds. Kept short so a second
   * process fails fast instead of hanging.
   * @default 50
   */
  busyTimeoutMs?: number;
  /**
   * Run `PRAGMA quick_check` when opening an existing store, so a damaged
   * file is reported at start-up rather than when a damaged page is first
   * read. It reads the whole file once: about 0.6 s per million operations
   * (856 MB) on a 2-vCPU VM. `"background"`: run it on the store's
   * checkpoint Worker while the caller goes on (a node loads its operations
   * meanwhile), and report it through `SqliteStore.integrity()`; the caller
   * must wait for that before it writes. Inline where there is no Worker
   * (read-only, or no `flock`: see `SqliteStore`).
   * @default true
   */
  quickCheck?: boolean | "background";
  /**
   * Open for reading only (`huskies verify`): nothing in the file or its
   * folder is created or changed, so a read-only folder works; writes throw.
   * A missing or empty file is refused with `StoreCorruptError`.
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
