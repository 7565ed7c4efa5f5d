/**
 * The clock and timers a node runs on, injectable so that a simulation can
 * run every timer of a real node on virtual time.
 * @module
 */

/** An opaque handle returned by {@link Timers.setTimeout}. */
export type TimerHandle = unknown;

/** A clock and one-shot timers. Every timer of a node goes through one of these. */
export interface Timers {
  /** Current time in ms (wall clock for real timers, virtual time in a simulation). */
  now(): number;
  /** Runs `callback` once after `delayMs` ms; returns a handle for {@link Timers.clearTimeout}. */
  setTimeout(callback: () => void, delayMs: number): TimerHandle;
  /** Cancels a timer; unknown or fired handles are ignored. */
  clearTimeout(handle: TimerHandle): void;
}

/** Real time: `Date.now` and the global timers. */
export const realTimers: Timers = {
  now: () => Date.now(),
  setTimeout: (callback, delayMs) => setTimeout(callback, Math.max(0, delayMs)),
  clearTimeout: (handle) => clearTimeout(handle as number),
};

/**
 * Resolves after `delayMs` on `timers`, or at once when `signal` aborts
 * (never rejects).
 */
export function sleep(timers: Timers, delayMs: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const done = () => {
      timers.clearTimeout(handle);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const handle = timers.setTimeout(done, delayMs);
    signal?.addEventListener("abort", done, { once: true });
  });
}
