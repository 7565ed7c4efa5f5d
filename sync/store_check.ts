/**
 * The background check of a store on disk: a node that opened from light
 * references (`crdt/stored_operation.ts`) re-hashes every stored operation
 * after it starts, a slice at a time between other work, instead of before
 * it starts. A row that does not match its id (a damaged or altered store)
 * stops the node, as it would have stopped the open.
 * @module
 */
import type { Store } from "../crdt/store.ts";
import type { Logger } from "./logger.ts";
import type { Timers } from "./timers.ts";

/** Rows checked per slice: about 4-6 ms of work, so live traffic waits at most about that long. */
export const CHECK_SLICE_ROWS = 500;

/** How long the check waits while `busy()` (a catch-up is being served or received), ms. */
export const CHECK_BUSY_WAIT_MS = 50;

/**
 * Checks every row of `store` (when it can: {@link Store.checkRows}) in
 * slices on `timers`, logging the first corrupt row and handing its error to
 * `onCorrupt`; logs at debug level when every row checked out. While
 * `busy()`, it waits: a catch-up goes first. Returns the function that stops the check.
 */
export function watchStoreCheck(
  store: Store | undefined,
  timers: Timers,
  logger: Logger,
  onCorrupt: (error: Error) => void,
  busy: () => boolean = () => false,
): () => void {
  if (store?.checkRows === undefined) return () => {};
  const started = timers.now();
  let stopped = false;
  let handle: ReturnType<Timers["setTimeout"]> | undefined;
  let after: number | null = 0;
  const slice = () => {
    handle = undefined;
    if (stopped || after === null) return;
    if (busy()) {
      handle = timers.setTimeout(slice, CHECK_BUSY_WAIT_MS);
      return;
    }
    try {
      const from: number = after;
      after = store.checkRows!(from, CHECK_SLICE_ROWS);
    } catch (error) {
      if (stopped) return; // the store closed under the check
      stopped = true;
      logger.log("error", "the store is corrupt or was altered; stopping", {
        error: (error as Error).message,
      });
      onCorrupt(error as Error);
      return;
    }
    if (after !== null) handle = timers.setTimeout(slice, 0);
    else logger.log("debug", "store checked", { rows: store.count(), ms: timers.now() - started });
  };
  handle = timers.setTimeout(slice, 0);
  return () => {
    stopped = true;
    if (handle !== undefined) timers.clearTimeout(handle);
  };
}
