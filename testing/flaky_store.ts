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
