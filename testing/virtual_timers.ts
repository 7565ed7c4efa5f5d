/**
 * Timers on a manual clock, for tests of anything that takes a
 * {@link Timers}: nothing fires until {@link VirtualTimers.advance}.
 * @module
 */
import type { TimerHandle, Timers } from "../sync/timers.ts";

interface Pending {
  at: number;
  seq: number;
  callback: () => void;
}

/**
 * A manual clock with one-shot timers.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { VirtualTimers } from "@huskies/sync/testing";
 * const timers = new VirtualTimers();
 * let fired = 0;
 * timers.setTimeout(() => fired++, 100);
 * await timers.advance(99);
 * assert.equal(fired, 0);
 * await timers.advance(1);
 * assert.equal(fired, 1);
 * ```
 */
export class VirtualTimers implements Timers {
  #now: number;
  #seq = 0;
  readonly #pending = new Set<Pending>();

  /** Starts the clock at `start` ms. */
  constructor(start = 0) {
    this.#now = start;
  }

  /** The current virtual time. */
  now(): number {
    return this.#now;
  }

  /** Schedules `callback` at now + `delayMs`. */
  setTimeout(callback: () => void, delayMs: number): TimerHandle {
    const entry = { at: this.#now + Math.max(0, delayMs), seq: this.#seq++, callback };
    this.#pending.add(entry);
    return entry;
  }

  /** Cancels a timer. */
  clearTimeout(handle: TimerHandle): void {
    this.#pending.delete(handle as Pending);
  }

  /** Timers not yet fired. */
  get pending(): number {
    return this.#pending.size;
  }

  /** When the next timer fires, if any. */
  nextAt(): number | undefined {
    let next: number | undefined;
    for (const entry of this.#pending) if (next === undefined || entry.at < next) next = entry.at;
    return next;
  }

  /**
   * Moves the clock forward by `ms`, firing every timer due on the way in
   * time order and letting promises settle after each.
   */
  async advance(ms: number): Promise<void> {
    const end = this.#now + ms;
    for (;;) {
      await settle();
      let next: Pending | undefined;
      for (const entry of this.#pending) {
        if (
          entry.at <= end &&
          (!next || entry.at < next.at || (entry.at === next.at && entry.seq < next.seq))
        ) {
          next = entry;
        }
      }
      if (next === undefined) break;
      this.#pending.delete(next);
      this.#now = Math.max(this.#now, next.at);
      next.callback();
    }
    this.#now = end;
    await settle();
  }
}

async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await Promise.resolve();
}
