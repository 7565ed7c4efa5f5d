/**
 * A store whose disk writes sometimes fail, for fault simulations.
 * @module
 */
import type { Operation } from "../crdt/operation.ts";
import { MemoryStore } from "../crdt/store.ts";

/** The error a {@link FlakyStore} throws. */
export const DISK_ERROR = "simulated disk error";

/**
 * A {@link MemoryStore} whose `append` sometimes fails as a disk can: it
 * throws and stores nothing. Failures start once the store is armed.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { DISK_ERROR, FlakyStore, makeChain, testIdentity } from "@huskies/sync/testing";
 *
 * const store = new FlakyStore(() => true); // every armed append fails
 * const [first, second] = makeChain(testIdentity(1), 2);
 * store.append([first]);
 * store.arm();
 * assert.throws(() => store.append([second]), { message: DISK_ERROR });
 * assert.equal(store.count(), 1);
 * ```
 */
export class FlakyStore extends MemoryStore {
  readonly #fails: () => boolean;
  #armed = false;

  /** `fails` is asked once per non-empty append. */
  constructor(fails: () => boolean) {
    super();
    this.#fails = fails;
  }

  /** Lets appends fail from now on. */
  arm(): void {
    this.#armed = true;
  }

  /** Appends, unless this append is chosen to fail. */
  override append(ops: readonly Operation[]): void {
    if (this.#armed && ops.length > 0 && this.#fails()) throw new Error(DISK_ERROR);
    super.append(ops);
  }
}
