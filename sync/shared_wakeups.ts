/**
 * Wake-ups of many sessions on one {@link Timers}, with one timer per due
 * time: a hub whose K sessions all wait for the same millisecond (a live
 * frame still buffered on each) sets one timer, not K.
 * @module
 */
import type { TimerHandle, Timers } from "./timers.ts";

interface Group {
  readonly handle: TimerHandle;
  readonly callbacks: Set<() => void>;
}

/** See the module doc. */
export class SharedWakeups {
  readonly #timers: Timers;
  readonly #groups = new Map<number, Group>();

  /** Shares the timers of `timers`. */
  constructor(timers: Timers) {
    this.#timers = timers;
  }

  /** Runs `callback` once at time `at` (ms on the timers' clock); returns the cancel function. */
  schedule(at: number, callback: () => void): () => void {
    let group = this.#groups.get(at);
    if (group === undefined) {
      const callbacks = new Set<() => void>();
      const handle = this.#timers.setTimeout(() => {
        this.#groups.delete(at);
        for (const due of callbacks) due();
      }, Math.max(0, at - this.#timers.now()));
      group = { handle, callbacks };
      this.#groups.set(at, group);
    }
    const { callbacks, handle } = group;
    const entry = () => callback();
    callbacks.add(entry);
    return () => {
      if (!callbacks.delete(entry) || callbacks.size > 0) return;
      if (this.#groups.get(at)?.callbacks !== callbacks) return; // already fired
      this.#groups.delete(at);
      this.#timers.clearTimeout(handle);
    };
  }
}

const shared = new WeakMap<Timers, SharedWakeups>();

/** The {@link SharedWakeups} of `timers` (one per timers object, so per node). */
export function sharedWakeups(timers: Timers): SharedWakeups {
  let wakeups = shared.get(timers);
  if (wakeups === undefined) {
    wakeups = new SharedWakeups(timers);
    shared.set(timers, wakeups);
  }
  return wakeups;
}
