/**
 * Reconnect backoff: a pure formula, separate from timers so it tests without
 * waiting. By default the delay is drawn uniformly over the whole backoff
 * window ("full jitter"), so peers that lost the same hub at the same moment
 * come back spread over the window instead of in step.
 * @module
 */

/** Options for {@link backoffDelay}. */
export interface BackoffOptions {
  /** First window, ms. @default 1000 */
  initialMs?: number;
  /** Largest window, ms. @default 30000 */
  maxMs?: number;
  /**
   * Fraction of the window randomised away (0 to 1): 1 draws the delay
   * uniformly from [0, window] (full jitter); 0 always waits the whole window.
   * @default 1
   */
  jitter?: number;
  /** Random source in [0, 1). @default Math.random */
  random?: () => number;
}

/**
 * Delay before reconnect attempt number `failures` (1 after the first
 * failure). The window is `initialMs * 2^(failures-1)` capped at `maxMs`; the
 * delay is the window minus a random share of up to `jitter` of it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { backoffDelay } from "./backoff.ts";
 * assert.equal(backoffDelay(1, { jitter: 0 }), 1000);
 * assert.equal(backoffDelay(10, { jitter: 0 }), 30000);
 * const delay = backoffDelay(3); // full jitter: anywhere in [0, 4000]
 * assert.ok(delay >= 0 && delay <= 4000);
 * ```
 */
export function backoffDelay(failures: number, options: BackoffOptions = {}): number {
  const initial = options.initialMs ?? 1000;
  const max = options.maxMs ?? 30_000;
  const jitter = options.jitter ?? 1;
  const random = options.random ?? Math.random;
  const exponent = Math.min(Math.max(failures, 1) - 1, 30);
  const window = Math.min(max, initial * 2 ** exponent);
  return Math.round(window * (1 - jitter * random()));
}
