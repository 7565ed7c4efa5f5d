/**
 * Wake-ups of many sessions on one {@link Timers}, with one timer per due
 * time: a hub whose K sessions all wait for the same millisecond (a live
 * frame still buffered on each) sets one timer, not K. Wake-ups further
 * ahead than {@link FAR_MS} (heartbeats, grace times) share one timer, set
 * for the earliest of them: a session that batches swaps its heartbeat
 * wake-up for a 1 ms one and back on every batch, which would otherwise
 * clear and set a timer of its own each time (at K=300, most of the hub's
 * timer work).
 * @module
 */
import type { TimerHandle, Timers } from "./timers.ts";

interface Group {
  readonly handle: TimerHandle;
  readonly callbacks: Set<() => void>;
}

/** Wake-ups at least this far ahead (ms) wait on the one timer of the far ones. */
export const FAR_MS = 64;

/** See the module doc. */
export class SharedWakeups {
  readonly #timers: Timers;
  readonly #groups = new Map<number, Group>();
  /** Far wake-ups by due time. */
  readonly #far = new Map<number, Set<() => void>>();
  /** The timer of the far wake-ups, for the earliest of them (it may find none due and re-arm). */
  #farTimer: { readonly at: number; readonly handle: TimerHandle } | undefined;

  /** Shares the timers of `timers`. */
  constructor(timers: Timers) {
    this.#timers = timers;
  }

  /** Runs `callback` once at time `at` (ms on the timers' clock); returns the cancel function. */
  schedule(at: number, callback: () => void): () => void {
    let group = this.#groups.get(at);
    if (group === undefined) {
      // The clock is read only for a time no wake-up waits for yet (it costs a call into the runtime).
      if (this.#far.has(at)) return this.#scheduleFar(at, callback);
      const delay = at - this.#timers.now();
      if (delay >= FAR_MS) return this.#scheduleFar(at, callback);
      const callbacks = new Set<() => void>();
      const handle = this.#timers.setTimeout(() => {
        this.#groups.delete(at);
        for (const due of callbacks) due();
      }, Math.max(0, delay));
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

  #scheduleFar(at: number, callback: () => void): () => void {
    let callbacks = this.#far.get(at);
    if (callbacks === undefined) this.#far.set(at, callbacks = new Set());
    const entry = () => callback();
    callbacks.add(entry);
    if (this.#farTimer === undefined || at < this.#farTimer.at) this.#armFar(at);
    return () => {
      if (!callbacks.delete(entry) || callbacks.size > 0) return;
      if (this.#far.get(at) === callbacks) this.#far.delete(at);
      if (this.#far.size === 0 && this.#farTimer !== undefined) {
        this.#timers.clearTimeout(this.#farTimer.handle);
        this.#farTimer = undefined;
      }
    };
  }

  #armFar(at: number): void {
    if (this.#farTimer !== undefined) this.#timers.clearTimeout(this.#farTimer.handle);
    const handle = this.#timers.setTimeout(
      () => this.#fireFar(),
      Math.max(0, at - this.#timers.now()),
    );
    this.#farTimer = { at, handle };
  }

  /** Runs the far wake-ups that are due, then sets the timer for the earliest left. */
  #fireFar(): void {
    this.#farTimer = undefined;
    const now = this.#timers.now();
    const due: Set<() => void>[] = [];
    for (const [at, callbacks] of this.#far) {
      if (at > now) continue;
      this.#far.delete(at);
      due.push(callbacks);
    }
    for (const callbacks of due) for (const callback of callbacks) callback();
    // A callback may have set a far wake-up (and the timer) later than one still waiting.
    let earliest = Infinity;
    for (const at of this.#far.keys()) earliest = Math.min(earliest, at);
    const armed = this.#farTimer as { readonly at: number } | undefined; // callbacks may set it
    if (earliest < (armed?.at ?? Infinity)) this.#armFar(earliest);
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
