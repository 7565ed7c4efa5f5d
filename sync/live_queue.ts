/**
 * A session's queue of live operations not yet handed to the transport, with
 * their encoded size (what counts against the peer's outbound limit together
 * with the transport's unsent bytes) and the time of the last send (for
 * batching, `live_batch.ts`).
 * @module
 */
import { utf8Length } from "../protocol/bytes.ts";
import { encodedSize, type Operation } from "../crdt/operation.ts";
import { LIVE_BATCH_WATERMARK } from "./live_batch.ts";

/** Merged queues by their last chunk: sessions that queued the same chunks share one array. */
const merges = new WeakMap<
  readonly Operation[],
  { readonly chunks: readonly (readonly Operation[])[]; readonly ops: readonly Operation[] }
>();

/**
 * The operations of `chunks` in order, as one array that every caller with
 * the same chunks (the same arrays, in the same order) gets too: a hub's
 * sessions that batched the same live operations since their last sends
 * then share one array, so `liveFrames` encodes their frame once.
 */
export function mergeChunks(chunks: readonly (readonly Operation[])[]): readonly Operation[] {
  if (chunks.length === 0) return [];
  if (chunks.length === 1) return chunks[0];
  const last = chunks[chunks.length - 1];
  const known = merges.get(last);
  if (
    known !== undefined && known.chunks.length === chunks.length &&
    known.chunks.every((chunk, i) => chunk === chunks[i])
  ) {
    return known.ops;
  }
  const ops = chunks.flat();
  merges.set(last, { chunks: [...chunks], ops });
  return ops;
}

/** See the module doc. */
export class LiveQueue {
  /**
   * The queued operations, as the arrays given to {@link push} (each kept
   * whole when every operation in it is wanted, so peers given the same
   * arrays share their encoding) or the wanted part of one.
   */
  #chunks: (readonly Operation[])[] = [];
  #count = 0;
  /** Frames sent ahead of the operations (fork proofs), already encoded. */
  #frames: string[] = [];
  #bytes = 0;
  /** When the queue was last taken for sending (ms). */
  lastSend = -Infinity;

  /** Operations and frames queued. */
  get length(): number {
    return this.#count + this.#frames.length;
  }

  /** UTF-8 bytes the queued operations take encoded (one separator each). */
  get bytes(): number {
    return this.#bytes;
  }

  /** Queues the operations of `ops` that `wanted` keeps, in order. */
  push(ops: readonly Operation[], wanted: (op: Operation) => boolean): void {
    this.#push(ops, wanted, Infinity);
  }

  /**
   * Queues what {@link push} would, behind a send already due, if the queue
   * then stays under {@link LIVE_BATCH_WATERMARK} (so the send need not come
   * sooner); returns whether it did.
   */
  pushBehind(ops: readonly Operation[], wanted: (op: Operation) => boolean): boolean {
    return this.#push(ops, wanted, LIVE_BATCH_WATERMARK);
  }

  #push(ops: readonly Operation[], wanted: (op: Operation) => boolean, limit: number): boolean {
    const kept = ops.every(wanted) ? ops : ops.filter(wanted);
    let bytes = 0;
    for (const op of kept) bytes += encodedSize(op) + 1;
    if (this.#bytes + bytes >= limit) return false;
    if (kept.length === 0) return true;
    this.#chunks.push(kept);
    this.#count += kept.length;
    this.#bytes += bytes;
    return true;
  }

  /** Queues an encoded frame (a fork proof), sent before the operations. */
  pushFrame(frame: string): void {
    this.#frames.push(frame);
    this.#bytes += utf8Length(frame);
  }

  /** Drops everything queued (a catch-up covers it, or the session ended). */
  clear(): void {
    this.#chunks = [];
    this.#count = 0;
    this.#frames = [];
    this.#bytes = 0;
  }

  /**
   * Takes everything queued, for sending at `now`. `ops` is shared with every
   * queue that holds the same chunks (see {@link mergeChunks}), so its
   * encoding is too.
   */
  take(now: number): { frames: string[]; ops: readonly Operation[] } {
    const taken = { frames: this.#frames, ops: mergeChunks(this.#chunks) };
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
