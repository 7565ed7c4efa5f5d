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

/** A far wake-up (its own object, so the same callback may be scheduled twice). */
interface FarEntry {
  readonly callback: () => void;
}

function heapPush(heap: number[], value: number): void {
  let i = heap.push(value) - 1;
  while (i > 0) {
    const parent = (i - 1) >> 1;
    if (heap[parent] <= value) break;
    heap[i] = heap[parent];
    i = parent;
  }
  heap[i] = value;
}

function heapPop(heap: number[]): number {
  const top = heap[0];
  const last = heap.pop()!;
  if (heap.length > 0) {
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= heap.length) break;
      const child = left + 1 < heap.length && heap[left + 1] < heap[left] ? left + 1 : left;
      if (heap[child] >= last) break;
      heap[i] = heap[child];
      i = child;
    }
    heap[i] = last;
  }
  return top;
}

/** Wake-ups at least this far ahead (ms) wait on the one timer of the far ones. */
export const FAR_MS = 64;

/** See the module doc. */
export class SharedWakeups {
  readonly #timers: Timers;
  readonly #groups = new Map<number, Group>();
  /** Far wake-ups by due time; a time's set stays (maybe empty) until it is due. */
  readonly #far = new Map<number, Set<FarEntry>>();
  /** The due times of {@link #far}, each once, as a binary min-heap. */
  #heap: number[] = [];
  /** Far wake-ups neither run nor cancelled. */
  #farLive = 0;
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
    let entries = this.#far.get(at);
    if (entries === undefined) {
      this.#far.set(at, entries = new Set());
      heapPush(this.#heap, at);
    }
    const entry: FarEntry = { callback };
    entries.add(entry);
    this.#farLive++;
    if (this.#farTimer === undefined || at < this.#farTimer.at) this.#armFar(at);
    return () => {
      if (!entries.delete(entry)) return; // ran, or cancelled before
      if (--this.#farLive === 0) this.#clearFar();
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

  /** No far wake-up is left: drop the timer and the times that only cancelled ones waited for. */
  #clearFar(): void {
    if (this.#farTimer !== undefined) this.#timers.clearTimeout(this.#farTimer.handle);
    this.#farTimer = undefined;
    this.#far.clear();
    this.#heap = [];
  }

  /** Runs the far wake-ups that are due, then sets the timer for the earliest left. */
  #fireFar(): void {
    this.#farTimer = undefined;
    const now = this.#timers.now();
    while (this.#heap.length > 0 && this.#heap[0] <= now) {
      const at = heapPop(this.#heap);
      const entries = this.#far.get(at);
      this.#far.delete(at); // a wake-up set for this time while it runs gets a timer of its own
      // Each runs once, and not when cancelled by one that ran before it.
      for (const entry of entries ?? []) {
        entries!.delete(entry);
        this.#farLive--;
        entry.callback();
      }
    }
    if (this.#farLive === 0) return this.#clearFar();
    // A callback may have set the timer, for a time later than one still waiting.
    const armed = this.#farTimer as { readonly at: number } | undefined;
    if (this.#heap[0] < (armed?.at ?? Infinity)) this.#armFar(this.#heap[0]);
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
