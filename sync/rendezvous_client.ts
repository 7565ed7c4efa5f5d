/**
 * An outbound connection that keeps itself alive: it runs attempts (dial,
 * handshake, session) one after another with exponential backoff between
 * failures, resets the backoff after a healthy session, logs WARN on
 * failures and ERROR from the 10th in a row, and stops on a permanent
 * refusal or when stopped. Its timers are injectable, and it reports why it
 * stopped ({@link RendezvousOutcome}).
 * @module
 */
import { isPermanentClose } from "../protocol/close_codes.ts";
import { backoffDelay, type BackoffOptions } from "./backoff.ts";
import { type Logger, silentLogger } from "./logger.ts";
import { realTimers, sleep, type Timers } from "./timers.ts";

/** Consecutive rendezvous failures after which failures log at ERROR instead of WARN. */
export const RENDEZVOUS_ERROR_THRESHOLD = 10;

/** State of a {@link RendezvousClient}. */
export type RendezvousState = "connecting" | "connected" | "waiting" | "stopped";

/** Why a {@link RendezvousClient} stopped for good. */
export interface RendezvousOutcome {
  /** The close code of the last attempt (1000 when stopped by the caller). */
  code: number;
  /** The close reason. */
  reason: string;
  /** True when the peer refused us permanently (see `isPermanentClose`); false when stopped. */
  permanent: boolean;
}

/** How one attempt ended. */
export interface AttemptResult {
  /** Close code (of the refusal, the failed dial, or the session's end). */
  code: number;
  /** Close reason. */
  reason: string;
  /** When the handshake succeeded (ms on the client's timers); absent when it did not. */
  authenticatedAt?: number;
}

/**
 * Runs one attempt: dial, handshake, session. Calls `onAuthenticated` when
 * the handshake succeeds; resolves (never rejects) when the attempt is over.
 * When `signal` aborts, the attempt ends promptly.
 */
export type RendezvousAttempt = (
  signal: AbortSignal,
  onAuthenticated: () => void,
) => Promise<AttemptResult>;

/** Options of a {@link RendezvousClient} (and of `HuskiesNode.connect`). */
export interface RendezvousOptions extends BackoffOptions {
  /** Stops the client when aborted. */
  signal?: AbortSignal;
  /** A session that lasted this long counts as healthy and resets the backoff, ms. @default 10000 */
  healthyAfterMs?: number;
}

/** A status snapshot of a {@link RendezvousClient}. */
export interface RendezvousInfo {
  /** The peer URL. */
  url: string;
  /** Current state. */
  state: RendezvousState;
  /** Consecutive failures. */
  failures: number;
  /** The last failure, as text. */
  lastError?: string;
  /** While waiting: when the next attempt starts (ms on the client's timers). */
  nextRetryAt?: number;
  /** Once stopped: why. */
  outcome?: RendezvousOutcome;
}

function checkNumber(name: string, value: number | undefined, min: number, max = Infinity): void {
  if (value === undefined) return;
  if (typeof value !== "number" || !Number.isFinite(value) || value < min || value > max) {
    const range = max === Infinity ? `>= ${min}` : `between ${min} and ${max}`;
    throw new RangeError(`Cannot connect: ${name} must be a number ${range}, got ${value}`);
  }
}

/**
 * Checks rendezvous options up front.
 * @throws {RangeError} "Cannot connect: ..." naming the bad option.
 */
export function checkRendezvousOptions(options: RendezvousOptions): void {
  checkNumber("initialMs", options.initialMs, 1);
  checkNumber("maxMs", options.maxMs, 1);
  checkNumber("jitter", options.jitter, 0, 1);
  checkNumber("healthyAfterMs", options.healthyAfterMs, 0);
  const initial = options.initialMs ?? 1000;
  const max = options.maxMs ?? 30_000;
  if (max < initial) {
    throw new RangeError(`Cannot connect: maxMs (${max}) must not be below initialMs (${initial})`);
  }
}

/**
 * See the module doc. Created by `HuskiesNode.connect`, or directly with any attempt function.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { CloseCode, HuskiesNode } from "@huskies/sync";
 *
 * await using node = await HuskiesNode.open();
 * const client = node.connect("ws://127.0.0.1:9/crdt-sync", { initialMs: 50, maxMs: 100 });
 * assert.ok(["connecting", "waiting"].includes(client.info().state));
 * const outcome = await client.stop();
 * assert.deepEqual(outcome, { code: CloseCode.NORMAL, reason: outcome.reason, permanent: false });
 * assert.equal((await client.stopped).permanent, false);
 * ```
 */
export class RendezvousClient {
  /** The peer URL. */
  readonly url: string;
  #state: RendezvousState = "connecting";
  #failures = 0;
  #lastError: string | undefined;
  #nextRetryAt: number | undefined;
  #outcome: RendezvousOutcome | undefined;
  readonly #stopped: Promise<RendezvousOutcome>;
  readonly #abort = new AbortController();
  readonly #timers: Timers;
  readonly #logger: Logger;

  /**
   * Starts the loop at once.
   * @throws {RangeError} an option is out of range (see {@link checkRendezvousOptions}).
   */
  constructor(
    url: string,
    attempt: RendezvousAttempt,
    options: RendezvousOptions & { timers?: Timers; logger?: Logger } = {},
  ) {
    checkRendezvousOptions(options);
    this.url = url;
    this.#timers = options.timers ?? realTimers;
    this.#logger = options.logger ?? silentLogger;
    const signal = options.signal
      ? AbortSignal.any([options.signal, this.#abort.signal])
      : this.#abort.signal;
    this.#stopped = this.#run(attempt, options, signal).then((outcome) => {
      this.#state = "stopped";
      this.#nextRetryAt = undefined;
      this.#outcome = outcome;
      return outcome;
    });
  }

  async #run(
    attempt: RendezvousAttempt,
    options: RendezvousOptions,
    signal: AbortSignal,
  ): Promise<RendezvousOutcome> {
    const stopped: RendezvousOutcome = { code: 1000, reason: "client stopped", permanent: false };
    const healthyAfter = options.healthyAfterMs ?? 10_000;
    while (!signal.aborted) {
      this.#state = "connecting";
      let result: AttemptResult;
      try {
        result = await attempt(signal, () => (this.#state = "connected"));
      } catch (error) {
        result = { code: 1011, reason: (error as Error).message };
      }
      if (signal.aborted) return stopped;
      const authenticated = result.authenticatedAt !== undefined;
      const healthy = authenticated &&
        this.#timers.now() - result.authenticatedAt! >= healthyAfter;
      if (healthy) this.#failures = 0;
      if (isPermanentClose(result.code)) {
        this.#lastError = `${result.code} ${result.reason}`;
        this.#logger.log("error", "rendezvous refused permanently; not retrying", {
          url: this.url,
          code: result.code,
          reason: result.reason,
        });
        return { code: result.code, reason: result.reason, permanent: true };
      }
      if (!healthy) this.#failures++;
      this.#lastError = authenticated
        ? `session ended: ${result.code} ${result.reason}`
        : `connection failed: ${result.code} ${result.reason || "unreachable"}`;
      const delay = backoffDelay(Math.max(1, this.#failures), options);
      this.#logger.log(
        this.#failures >= RENDEZVOUS_ERROR_THRESHOLD ? "error" : "warn",
        "rendezvous connection lost; retrying",
        { url: this.url, failures: this.#failures, retryInMs: delay, last: this.#lastError },
      );
      this.#state = "waiting";
      this.#nextRetryAt = this.#timers.now() + delay;
      await sleep(this.#timers, delay, signal);
      this.#nextRetryAt = undefined;
    }
    return stopped;
  }

  /** Current state, consecutive failures, the last error, the next retry time and the outcome. */
  info(): RendezvousInfo {
    return {
      url: this.url,
      state: this.#state,
      failures: this.#failures,
      ...(this.#lastError === undefined ? {} : { lastError: this.#lastError }),
      ...(this.#nextRetryAt === undefined ? {} : { nextRetryAt: this.#nextRetryAt }),
      ...(this.#outcome === undefined ? {} : { outcome: this.#outcome }),
    };
  }

  /** Resolves, with why, when the client has stopped for good. */
  get stopped(): Promise<RendezvousOutcome> {
    return this.#stopped;
  }

  /** Stops reconnecting and ends the current attempt; resolves with the outcome. */
  stop(): Promise<RendezvousOutcome> {
    this.#abort.abort();
    return this.#stopped;
  }
}
