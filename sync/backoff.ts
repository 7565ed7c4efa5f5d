/**
 * Reconnect backoff: a pure formula, separate from timers so it tests without
 * waiting.
 * @module
 */

/** Options for {@link backoffDelay}. */
export interface BackoffOptions {
  /** First delay, ms. @default 1000 */
  initialMs?: number;
  /** Largest delay, ms. @default 30000 */
  maxMs?: number;
  /** Fraction of the delay randomised away (0 to 1), so peers do not reconnect in step. @default 0.2 */
  jitter?: number;
  /** Random source in [0, 1). @default Math.random */
  random?: () => number;
}

/**
 * Delay before reconnect attempt number `failures` (1 after the first
 * failure): `initialMs * 2^(failures-1)` capped at `maxMs`, minus up to
 * `jitter` of itself.
 *
 * @example
 * ```ts
 * import { backoffDelay } from "./backoff.ts";
 * backoffDelay(1, { jitter: 0 }); // 1000
 * backoffDelay(10, { jitter: 0 }); // 30000
 * ```
 */
export function backoffDelay(failures: number, options: BackoffOptions = {}): number {
  const initial = options.initialMs ?? 1000;
  const max = options.maxMs ?? 30_000;
  const jitter = options.jitter ?? 0.2;
  const random = options.random ?? Math.random;
  const exponent = Math.min(Math.max(failures, 1) - 1, 30);
  const base = Math.min(max, initial * 2 ** exponent);
  return Math.round(base * (1 - jitter * random()));
}
