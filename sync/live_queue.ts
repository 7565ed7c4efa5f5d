/**
 * A session's queue of live operations not yet handed to the transport, with
 * their encoded size (what counts against the peer's outbound limit together
 * with the transport's unsent bytes) and the time of the last send (for
 * batching, `live_batch.ts`).
 * @module
 */
import { utf8Length } from "../protocol/bytes.ts";
import { encodedSize, type Operation } from "../crdt/operation.ts";

/** See the module doc. */
export class LiveQueue {
  #ops: Operation[] = [];
  /** The caller's array when the queue holds exactly it, whose frames every peer shares. */
  #batch: readonly Operation[] | undefined;
  /** Frames sent ahead of the operations (fork proofs), already encoded. */
  #frames: string[] = [];
  #bytes = 0;
  /** When the queue was last taken for sending (ms). */
  lastSend = -Infinity;

  /** Operations and frames queued. */
  get length(): number {
    return this.#ops.length + this.#frames.length;
  }

  /** UTF-8 bytes the queued operations take encoded (one separator each). */
  get bytes(): number {
    return this.#bytes;
  }

  /** Queues the operations of `ops` that `wanted` keeps, in order. */
  push(ops: readonly Operation[], wanted: (op: Operation) => boolean): void {
    if (ops.length === 0) return;
    const wasEmpty = this.#ops.length === 0;
    for (const op of ops) {
      if (!wanted(op)) continue;
      this.#ops.push(op);
      this.#bytes += encodedSize(op) + 1;
    }
    this.#batch = wasEmpty && this.#ops.length === ops.length ? ops : undefined;
  }

  /** Queues an encoded frame (a fork proof), sent before the operations. */
  pushFrame(frame: string): void {
    this.#frames.push(frame);
    this.#bytes += utf8Length(frame);
  }

  /** Drops everything queued (a catch-up covers it, or the session ended). */
  clear(): void {
    this.#ops = [];
    this.#batch = undefined;
    this.#frames = [];
    this.#bytes = 0;
  }

  /**
   * Takes everything queued, for sending at `now`. `ops` is the array given to
   * {@link push} when the queue held exactly it (so its encoding is shared).
   */
  take(now: number): { frames: string[]; ops: readonly Operation[] } {
    const taken = { frames: this.#frames, ops: this.#batch ?? this.#ops };
    this.clear();
    this.lastSend = now;
    return taken;
  }
}

/** How long a peer may stay over its outbound limit before it is dropped as too slow, ms. */
export const SLOW_CONSUMER_GRACE_MS = 2_000;

/**
 * Whether a peer is too slow: what it has not read yet (our queue plus the
 * transport's unsent bytes) stays over the limit for
 * {@link SLOW_CONSUMER_GRACE_MS}, or passes four times the limit. A healthy peer
 * behind a burst catches up within the grace time; one that stopped reading
 * does not.
 */
export class SlowConsumerCheck {
  #overSince: number | undefined;

  /** Creates the check for a limit in bytes. */
  constructor(readonly limit: number) {}

  /** True when the peer must be dropped, given `unread` bytes at `now`. */
  tooSlow(unread: number, now: number): boolean {
    if (unread <= this.limit) {
      this.#overSince = undefined;
      return false;
    }
    this.#overSince ??= now;
    return unread > 4 * this.limit || now - this.#overSince >= SLOW_CONSUMER_GRACE_MS;
  }

  /** When to look again (the end of the grace time), while over the limit. */
  get wakeAt(): number {
    return this.#overSince === undefined ? Infinity : this.#overSince + SLOW_CONSUMER_GRACE_MS;
  }
}
