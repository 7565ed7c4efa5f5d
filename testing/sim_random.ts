/**
 * Seeded randomness and the event queue of the simulated network.
 * @module
 */

/**
 * A seeded 32-bit generator (mulberry32) returning floats in [0, 1).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { mulberry32 } from "@huskies/sync/testing";
 *
 * const a = mulberry32(42);
 * const b = mulberry32(42);
 * const x = a();
 * assert.ok(x >= 0 && x < 1);
 * assert.equal(b(), x); // same seed, same sequence
 * ```
 */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Random choices drawn from one seeded {@link mulberry32} stream.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Rng } from "@huskies/sync/testing";
 *
 * const rng = new Rng(1);
 * const roll = rng.int(1, 6);
 * assert.ok(Number.isInteger(roll) && roll >= 1 && roll <= 6);
 * assert.equal(new Rng(1).int(1, 6), roll);
 * assert.equal(rng.chance(0), false);
 * ```
 */
export class Rng {
  readonly #next: () => number;

  /** Creates a generator; the same seed gives the same sequence. */
  constructor(seed: number) {
    this.#next = mulberry32(seed);
  }

  /** A float in [0, 1). */
  float(): number {
    return this.#next();
  }

  /** An integer in [min, max] (both inclusive). */
  int(min: number, max: number): number {
    return min + Math.floor(this.#next() * (max - min + 1));
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return this.#next() < p;
  }

  /** One element of a non-empty array. */
  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new RangeError("Cannot pick from an empty array");
    return items[Math.floor(this.#next() * items.length)];
  }

  /** A shuffled copy (Fisher-Yates). */
  shuffle<T>(items: readonly T[]): T[] {
    const out = [...items];
    for (let i = out.length - 1; i > 0; i--) {
      const j = Math.floor(this.#next() * (i + 1));
      [out[i], out[j]] = [out[j], out[i]];
    }
    return out;
  }

  /** Up to `count` distinct elements in random order. */
  sample<T>(items: readonly T[], count: number): T[] {
    return this.shuffle(items).slice(0, count);
  }
}

/** One scheduled event of a simulation. */
export interface SimEvent {
  /** Virtual time it runs at. */
  time: number;
  /** Tie-breaker: the order events were scheduled in. */
  seq: number;
  /** What it does. */
  run: () => void;
  /** True for a node's timer or a heartbeat (false: a frame, close, dial or harness action). */
  timer: boolean;
  /** A cancelled timer is skipped. */
  cancelled: boolean;
}

/** A binary min-heap of events ordered by (time, seq). */
export class EventQueue {
  readonly #heap: SimEvent[] = [];

  /** Events queued. */
  get size(): number {
    return this.#heap.length;
  }

  /** The earliest event, left in place. */
  peek(): SimEvent | undefined {
    return this.#heap[0];
  }

  /** Adds an event. */
  push(event: SimEvent): void {
    const heap = this.#heap;
    heap.push(event);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(heap[i], heap[parent])) break;
      [heap[i], heap[parent]] = [heap[parent], heap[i]];
      i = parent;
    }
  }

  /** Removes and returns the earliest event. */
  pop(): SimEvent | undefined {
    const heap = this.#heap;
    const top = heap[0];
    const last = heap.pop();
    if (heap.length > 0 && last !== undefined) {
      heap[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < heap.length && before(heap[l], heap[m])) m = l;
        if (r < heap.length && before(heap[r], heap[m])) m = r;
        if (m === i) break;
        [heap[i], heap[m]] = [heap[m], heap[i]];
        i = m;
      }
    }
    return top;
  }
}

function before(a: SimEvent, b: SimEvent): boolean {
  return a.time < b.time || (a.time === b.time && a.seq < b.seq);
}
