/**
 * An outbound connection that keeps itself alive: it runs attempts (dial,
 * handshake, session) one after another with exponential backoff between
 * failures, resets the backoff after a healthy session, logs WARN on
 * failures and ERROR from the 10th in a row, and stops on a permanent
 * refusal or when stopped. Its timers are injectable, and it reports why it
 * stopped ({@link RendezvousOutcome}).
 * @module
 */
import { CloseCode, isPermanentClose } from "../protocol/close_codes.ts";
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

/** The host (and port) of a URL for messages; the text itself when it is not a URL. */
function hostOf(url: string): string {
  try {
    return new URL(url).host || url;
  } catch {
    return url;
  }
}

/**
 * What failed when a dial (or a handshake) did not get a session (pure):
 * the transport's reason read as a cause an operator can act on: refused,
 * name not resolved, an HTTP status at the upgrade, TLS, a timeout; the
 * transport's own words follow in brackets. Unknown reasons pass through.
 */
export function describeDialFailure(url: string, code: number, reason: string): string {
  const raw = reason.trim();
  const host = hostOf(url);
  const words = raw && raw !== "unreachable" ? ` [${raw}]` : "";
  if (/refused|ECONNREFUSED|tcp connect error/i.test(raw)) {
    return `connection refused by ${host}: nothing accepts connections there (is the peer ` +
      `running, and is the port right?)${words}`;
  }
  if (/dns|lookup|not known|ENOTFOUND|no such host|resolv/i.test(raw)) {
    return `host name of ${host} not resolved (check the name, or use an IP address)${words}`;
  }
  const status = /(?:status(?: code)?|HTTP)\D{0,3}([1-5]\d\d)\b/i.exec(raw)?.[1];
  if (status !== undefined) {
    const hint = status === "404"
      ? " (nothing serves the sync endpoint at this path; huskies serves it at /crdt-sync)"
      : status === "429" || status === "503"
      ? " (the peer is busy or starting)"
      : status === "401" || status === "403"
      ? " (refused before the handshake)"
      : "";
    return `HTTP ${status} from ${host} at the WebSocket upgrade${hint}${words}`;
  }
  if (/tls|ssl|certificate|InvalidContentType|corrupt message/i.test(raw)) {
    return `TLS failed with ${host} (wss:// to a plain ws:// server, or a certificate this ` +
      `host does not trust?)${words}`;
  }
  if (code === CloseCode.HANDSHAKE_TIMEOUT || /not open after|timed? ?out/i.test(raw)) {
    return `timed out reaching ${host}${words}`;
  }
  return `${code} ${raw || "unreachable (the transport gave no reason)"}`;
}

/**
 * The operator's fix for a permanent refusal by the peer (pure): what to run
 * where. `self` is this node's id, for `huskies trust add`.
 */
export function refusalFix(code: number, self: string | undefined): string {
  const id = self ?? "<this node's id>";
  switch (code) {
    case CloseCode.NOT_TRUSTED:
      return `the peer does not trust this node's key: on the peer run \`huskies trust add ${id}\`` +
        ", or join with a token from `huskies token create` there (`serve --join TOKEN`)";
    case CloseCode.TOKEN_REFUSED:
      return "the join token was refused (unknown, expired, used up or revoked): make a new " +
        "one with `huskies token create` on the hub, or have the hub trust this key " +
        `(\`huskies trust add ${id}\`)`;
    case CloseCode.HUB_KEY_MISMATCH:
      return "the peer's key is not the pinned one: check the URL points at the right hub, or " +
        "use a join token made by that hub";
    case CloseCode.BAD_PROOF:
      return "the handshake proof was refused: check that this node.key is intact " +
        "(`huskies keys show`)";
    case CloseCode.INCOMPATIBLE_VERSION:
      return "the peer speaks an incompatible protocol version: upgrade one of the two";
    default:
      return "fix the cause named above, then restart this node";
  }
}

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
  state: "connecting" | "connected" | "waiting" | "stopped";
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
  readonly #self: string | undefined;

  /**
   * Starts the loop at once.
   * @throws {RangeError} an option is out of range (see {@link checkRendezvousOptions}).
   */
  constructor(
    url: string,
    attempt: RendezvousAttempt,
    options: RendezvousOptions & { timers?: Timers; logger?: Logger; self?: string } = {},
  ) {
    checkRendezvousOptions(options);
    this.url = url;
    this.#timers = options.timers ?? realTimers;
    this.#logger = options.logger ?? silentLogger;
    this.#self = options.self;
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
        this.#logger.log(
          "error",
          `rendezvous refused permanently; not retrying: ${refusalFix(result.code, this.#self)}`,
          { url: this.url, code: result.code, reason: result.reason },
        );
        return { code: result.code, reason: result.reason, permanent: true };
      }
      if (!healthy) this.#failures++;
      this.#lastError = authenticated
        ? `session ended: ${result.code} ${result.reason}`
        : `could not connect: ${describeDialFailure(this.url, result.code, result.reason)}`;
      const delay = backoffDelay(Math.max(1, this.#failures), options);
      const nextRetryAt = this.#timers.now() + delay;
      this.#logger.log(
        this.#failures >= RENDEZVOUS_ERROR_THRESHOLD ? "error" : "warn",
        authenticated ? "rendezvous connection lost; retrying" : "rendezvous dial failed; retrying",
        {
          url: this.url,
          failures: this.#failures,
          retryInMs: delay,
          nextRetryAt: new Date(nextRetryAt).toISOString(),
          last: this.#lastError,
        },
      );
      this.#state = "waiting";
      this.#nextRetryAt = nextRetryAt;
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
