/**
 * The rule for a peer's `clock` frames (`PROTOCOL.md` §6): each one asks for
 * a catch-up, which can be the whole history, so a peer must not be able to
 * start many. One catch-up is in flight per session; a clock that arrives
 * while one runs, or sooner than {@link CLOCK_MIN_INTERVAL_MS} after the last
 * one applied, waits, and a newer one replaces it (the newest wins); a peer
 * that sends more than {@link CLOCK_FLOOD_LIMIT} clocks within
 * {@link CLOCK_FLOOD_WINDOW_MS} is closed. Pure: the caller passes the time.
 * @module
 */

/** Least time between two catch-ups a peer's clocks start, ms. */
export const CLOCK_MIN_INTERVAL_MS = 1_000;
/** The window over which clocks are counted for {@link CLOCK_FLOOD_LIMIT}, ms. */
export const CLOCK_FLOOD_WINDOW_MS = 10_000;
/** Most clocks a peer may send within {@link CLOCK_FLOOD_WINDOW_MS}; more close the session. */
export const CLOCK_FLOOD_LIMIT = 30;
/** The close reason of a clock flood (fixed). */
export const CLOCK_FLOOD_REASON = "too many clock frames";

/** What to do with a clock just received. */
export type ClockVerdict = "apply" | "wait" | "flood";

/** Coalesces and rate-limits one peer's clocks; `T` is the clock frame. */
export class ClockGate<T> {
  #waiting: T | undefined;
  #lastApplied = -Infinity;
  /** Arrival times within the flood window, oldest first. */
  readonly #arrivals: number[] = [];

  /**
   * Records a clock received at `now` while a catch-up is (`busy`) or is not
   * running: `apply` it now, `wait` (kept as the newest waiting clock), or
   * `flood` (close the session).
   */
  offer(clock: T, now: number, busy: boolean): ClockVerdict {
    this.#arrivals.push(now);
    while (this.#arrivals[0] <= now - CLOCK_FLOOD_WINDOW_MS) this.#arrivals.shift();
    if (this.#arrivals.length > CLOCK_FLOOD_LIMIT) return "flood";
    if (busy || now < this.#lastApplied + CLOCK_MIN_INTERVAL_MS) {
      this.#waiting = clock;
      return "wait";
    }
    this.#waiting = undefined;
    this.#lastApplied = now;
    return "apply";
  }

  /** The waiting clock to apply now, if one is due (no catch-up running, interval passed). */
  due(now: number, busy: boolean): T | undefined {
    if (this.#waiting === undefined || busy || now < this.#lastApplied + CLOCK_MIN_INTERVAL_MS) {
      return undefined;
    }
    const clock = this.#waiting;
    this.#waiting = undefined;
    this.#lastApplied = now;
    return clock;
  }

  /** When a waiting clock becomes due (if no catch-up runs then), or `undefined`. */
  get dueAt(): number | undefined {
    return this.#waiting === undefined ? undefined : this.#lastApplied + CLOCK_MIN_INTERVAL_MS;
  }
}

/**
 * When to send our own clock again after the pending buffer dropped
 * operations: soon, but not sooner than {@link CLOCK_MIN_INTERVAL_MS} after
 * the last one (the peer would only coalesce it).
 */
export class ClockResend {
  #lastSent = -Infinity;
  /** When to re-send, if wanted. */
  dueAt: number | undefined;

  /** Our clock was sent at `now`. */
  sent(now: number): void {
    this.#lastSent = now;
    this.dueAt = undefined;
  }

  /** Asks for a re-send at the earliest allowed time from `now`. */
  want(now: number): void {
    this.dueAt ??= Math.max(now, this.#lastSent + CLOCK_MIN_INTERVAL_MS);
  }

  /** Whether the re-send is due at `now`. */
  isDue(now: number): boolean {
    return this.dueAt !== undefined && now >= this.dueAt;
  }
}
