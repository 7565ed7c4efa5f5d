/**
 * Admission limits for connections that have not authenticated yet: a cap on
 * concurrent unauthenticated connections overall, and a sliding-minute cap
 * per source address on handshakes that failed or have not finished yet.
 * Handshakes that authenticated stop counting, so many honest nodes behind
 * one address (NAT, one host) can all reconnect after a hub restart. Pure:
 * the clock is injected and memory is bounded (idle addresses are pruned,
 * tracked addresses capped).
 *
 * @example Admit a connection, release it once the handshake ends
 * ```ts
 * import { AdmissionLimiter } from "./limits.ts";
 * const limiter = new AdmissionLimiter();
 * const admission = limiter.tryAdmit("203.0.113.7");
 * if (admission.ok) {
 *   const authenticated = true; // ... the outcome of the handshake ...
 *   admission.release(authenticated);
 * }
 * ```
 * @module
 */

/** Length of the per-address sliding window, in seconds. */
export const ATTEMPT_WINDOW_SECS = 60;

const ATTEMPT_WINDOW_MS = ATTEMPT_WINDOW_SECS * 1000;

/** Options for {@link AdmissionLimiter}. */
export interface AdmissionLimiterOptions {
  /** Most connections admitted and not yet released at once. @default {64} */
  maxUnauthenticated?: number;
  /**
   * An address's fair share of those (IPv6: one /64). An address may go over
   * its share only while less than half of the pool is in use, so one address
   * cannot hold most of the pool, yet many honest nodes behind one address
   * can use idle capacity. @default {max(2, floor(maxUnauthenticated / 8))}
   */
  maxUnauthenticatedPerAddress?: number;
  /**
   * Most handshakes per address in any 60 s window that failed or are still
   * running; authenticated ones do not count. @default {30}
   */
  attemptsPerMinutePerAddress?: number;
  /** Most addresses remembered; the least recently seen are forgotten first. @default {10000} */
  maxTrackedAddresses?: number;
  /** Clock in ms. @default {Date.now} */
  now?: () => number;
}

/** Why an admission was refused. */
export type AdmissionRefusal =
  | "too many unauthenticated connections"
  | "too many unauthenticated connections from this address"
  | "too many attempts";

/** Result of {@link AdmissionLimiter.tryAdmit}. */
export type Admission =
  | {
    ok: true;
    /**
     * Frees the slot once the handshake ended: `authenticated` true when the
     * peer authenticated (the attempt then stops counting against its
     * address), false when it failed, timed out or closed. Later calls do nothing.
     */
    release(authenticated: boolean): void;
  }
  | { ok: false; reason: AdmissionRefusal; retryAfterMs: number };

function checkCount(name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new RangeError(`Cannot create admission limiter: ${name} must be a whole number >= 1`);
  }
}

/**
 * The key an address is counted under: IPv4 addresses (also IPv4-mapped
 * IPv6) as they are, IPv6 addresses by their /64 prefix (one host usually
 * owns a whole /64), anything else verbatim (pure).
 */
export function addressKey(address: string): string {
  let text = address.trim().toLowerCase();
  if (text.startsWith("[") && text.endsWith("]")) text = text.slice(1, -1);
  const zone = text.indexOf("%");
  if (zone >= 0) text = text.slice(0, zone);
  if (!text.includes(":")) return text;
  const halves = text.split("::");
  if (halves.length > 2) return text;
  const head = halves[0] === "" ? [] : halves[0].split(":");
  const tail = halves.length === 2 && halves[1] !== "" ? halves[1].split(":") : [];
  let ipv4: string | undefined;
  const last = halves.length === 2 ? tail : head;
  if (last.length > 0 && last[last.length - 1].includes(".")) {
    ipv4 = last.pop();
    if (!/^\d{1,3}(?:\.\d{1,3}){3}$/.test(ipv4!)) return text;
    last.push("0", "0");
  }
  const missing = 8 - head.length - tail.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return text;
  const groups = [...head, ...Array<string>(missing).fill("0"), ...tail];
  if (!groups.every((g) => /^[0-9a-f]{1,4}$/.test(g))) return text;
  const values = groups.map((g) => parseInt(g, 16));
  if (ipv4 !== undefined && values.slice(0, 5).every((v) => v === 0) && values[5] === 0xffff) {
    return ipv4;
  }
  return values.slice(0, 4).map((v) => v.toString(16)).join(":") + "::/64";
}

/** Bounds unauthenticated connections and handshake attempts per address. */
export class AdmissionLimiter {
  readonly #maxUnauthenticated: number;
  readonly #maxPerAddress: number;
  readonly #perAddress: number;
  readonly #maxTracked: number;
  readonly #now: () => number;
  #active = 0;
  /** Admitted, unreleased connections per address key (keys with 0 are removed). */
  readonly #activeByAddress = new Map<string, number>();
  /** Admission times per address key, oldest first; map order = least recently seen first. */
  readonly #attempts = new Map<string, number[]>();

  /** Creates a limiter; every limit has a default. */
  constructor(options: AdmissionLimiterOptions = {}) {
    const {
      maxUnauthenticated = 64,
      attemptsPerMinutePerAddress = 30,
      maxTrackedAddresses = 10_000,
      now = Date.now,
    } = options;
    checkCount("maxUnauthenticated", maxUnauthenticated);
    const maxPerAddress = options.maxUnauthenticatedPerAddress ??
      Math.max(2, Math.floor(maxUnauthenticated / 8));
    checkCount("maxUnauthenticatedPerAddress", maxPerAddress);
    this.#maxPerAddress = maxPerAddress;
    checkCount("attemptsPerMinutePerAddress", attemptsPerMinutePerAddress);
    checkCount("maxTrackedAddresses", maxTrackedAddresses);
    this.#maxUnauthenticated = maxUnauthenticated;
    this.#perAddress = attemptsPerMinutePerAddress;
    this.#maxTracked = maxTrackedAddresses;
    this.#now = now;
  }

  /** Connections admitted and not yet released. */
  get active(): number {
    return this.#active;
  }

  /** Addresses currently remembered. */
  get trackedAddresses(): number {
    return this.#attempts.size;
  }

  /** Stops counting one attempt made at `at` by `key` (it authenticated). */
  #forgetAttempt(key: string, at: number): void {
    const times = this.#attempts.get(key);
    if (!times) return;
    const index = times.indexOf(at);
    if (index >= 0) times.splice(index, 1);
    if (times.length === 0) this.#attempts.delete(key);
  }

  /** Forgets addresses whose last counted attempt left the window. */
  #prune(now: number): void {
    for (const [key, times] of this.#attempts) {
      if (now - times[times.length - 1] < ATTEMPT_WINDOW_MS) break;
      this.#attempts.delete(key);
    }
  }

  /**
   * Admits one connection from `address` unless the overall or per-address
   * limit is reached. A refused attempt is not counted. On success call
   * `release(authenticated)` when the handshake ends.
   */
  tryAdmit(address: string): Admission {
    const now = this.#now();
    this.#prune(now);
    const key = addressKey(address);
    const times = (this.#attempts.get(key) ?? []).filter((t) => now - t < ATTEMPT_WINDOW_MS);
    if (times.length >= this.#perAddress) {
      this.#attempts.set(key, times);
      return {
        ok: false,
        reason: "too many attempts",
        retryAfterMs: Math.max(1, times[0] + ATTEMPT_WINDOW_MS - now),
      };
    }
    if (this.#active >= this.#maxUnauthenticated) {
      return { ok: false, reason: "too many unauthenticated connections", retryAfterMs: 1000 };
    }
    const fromAddress = this.#activeByAddress.get(key) ?? 0;
    if (fromAddress >= this.#maxPerAddress && this.#active * 2 >= this.#maxUnauthenticated) {
      return {
        ok: false,
        reason: "too many unauthenticated connections from this address",
        retryAfterMs: 1000,
      };
    }
    this.#activeByAddress.set(key, fromAddress + 1);
    times.push(now);
    this.#attempts.delete(key);
    this.#attempts.set(key, times);
    while (this.#attempts.size > this.#maxTracked) {
      this.#attempts.delete(this.#attempts.keys().next().value!);
    }
    this.#active++;
    let released = false;
    return {
      ok: true,
      release: (authenticated: boolean) => {
        if (released) return;
        released = true;
        this.#active--;
        const left = this.#activeByAddress.get(key)! - 1;
        if (left === 0) this.#activeByAddress.delete(key);
        else this.#activeByAddress.set(key, left);
        if (authenticated) this.#forgetAttempt(key, now);
      },
    };
  }
}
