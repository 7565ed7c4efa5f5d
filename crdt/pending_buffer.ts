/**
 * The bounded causal buffer: verified operations that arrived before an
 * operation they need (their predecessor or a dependency), indexed by what
 * they wait for so that holding it releases them.
 *
 * Fairness: each author has a quota (a quarter of the buffer by default), so
 * one writer cannot fill it. When the buffer is full, room for a new
 * operation is made by evicting the newest operations of the author holding
 * the most, never those of an author holding less than the newcomer's; the
 * caller reports what was evicted so it is asked for again.
 * @module
 */
import type { NodeId } from "./identity.ts";
import { encodeOperation, type Operation, type OpId } from "./operation.ts";

/** Bounds of a buffer: the pending buffer, or the quarantine. */
export interface PendingLimits {
  /** Most operations held. @default 10000 */
  maxCount?: number;
  /** Most bytes (JSON wire form) held. @default 16 MiB */
  maxBytes?: number;
  /** Pending buffer only: most operations of one author. @default a quarter of maxCount */
  maxPerAuthor?: number;
  /** Pending buffer only: most bytes of one author. @default a quarter of maxBytes */
  maxBytesPerAuthor?: number;
}

/** Default {@link PendingLimits.maxCount}. */
export const DEFAULT_MAX_COUNT = 10_000;
/** Default {@link PendingLimits.maxBytes}. */
export const DEFAULT_MAX_BYTES = 16 * 1024 * 1024;

/** One parked operation. */
export interface PendingEntry {
  /** The operation. */
  readonly op: Operation;
  /** Its wire size in bytes. */
  readonly bytes: number;
  /** The id it waits for. */
  readonly waitingOn: OpId;
}

/** What {@link PendingBuffer.release} returns when nothing waited. */
const NONE_RELEASED: readonly PendingEntry[] = [];

/** What {@link PendingBuffer.park} did. */
export interface ParkResult {
  /** True when the operation is now parked. */
  parked: boolean;
  /** Operations evicted to make room (other authors' newest), to be asked for again. */
  evicted: PendingEntry[];
}

/** One author's share of the buffer, newest last. */
interface AuthorShare {
  ids: OpId[];
  bytes: number;
}

/** Operations waiting for another operation, within count and byte bounds and per-author quotas. */
export class PendingBuffer {
  readonly #entries = new Map<OpId, PendingEntry>();
  readonly #waiters = new Map<OpId, OpId[]>();
  readonly #authors = new Map<NodeId, AuthorShare>();
  #bytes = 0;
  readonly #maxCount: number;
  readonly #maxBytes: number;
  readonly #maxPerAuthor: number;
  readonly #maxBytesPerAuthor: number;

  /** Creates an empty buffer with these bounds. */
  constructor(limits: PendingLimits = {}) {
    this.#maxCount = limits.maxCount ?? DEFAULT_MAX_COUNT;
    this.#maxBytes = limits.maxBytes ?? DEFAULT_MAX_BYTES;
    this.#maxPerAuthor = limits.maxPerAuthor ?? Math.max(1, Math.floor(this.#maxCount / 4));
    this.#maxBytesPerAuthor = limits.maxBytesPerAuthor ?? Math.floor(this.#maxBytes / 4);
  }

  /** Number of operations parked. */
  get count(): number {
    return this.#entries.size;
  }

  /** Bytes of operations parked. */
  get bytes(): number {
    return this.#bytes;
  }

  /** True when the operation is parked. */
  has(id: OpId): boolean {
    // An empty Map still hashes the id: the log asks this of every operation it loads.
    return this.#entries.size > 0 && this.#entries.has(id);
  }

  /** The parked entry for `id`. */
  get(id: OpId): PendingEntry | undefined {
    return this.#entries.get(id);
  }

  /** Every parked entry. */
  entries(): IterableIterator<PendingEntry> {
    return this.#entries.values();
  }

  /** Number and bytes of `author`'s parked operations. */
  shareOf(author: NodeId): { count: number; bytes: number } {
    const share = this.#authors.get(author);
    return { count: share?.ids.length ?? 0, bytes: share?.bytes ?? 0 };
  }

  /**
   * Parks `op` until `waitingOn` is held, unless its author is at its quota.
   * When the buffer is full, evicts the newest operations of the author
   * holding the most (while that is not `op`'s author) to make room. With
   * `unbounded` (a store replay) no bound applies.
   */
  park(op: Operation, waitingOn: OpId, unbounded = false): ParkResult {
    const bytes = encodeOperation(op).length;
    const evicted: PendingEntry[] = [];
    if (!unbounded) {
      const own = this.shareOf(op.author);
      if (own.count >= this.#maxPerAuthor || own.bytes + bytes > this.#maxBytesPerAuthor) {
        return { parked: false, evicted };
      }
      while (this.#entries.size >= this.#maxCount || this.#bytes + bytes > this.#maxBytes) {
        const victim = this.#largestShare();
        if (victim === undefined || victim === op.author) return { parked: false, evicted };
        const ids = this.#authors.get(victim)!.ids;
        evicted.push(this.unpark(ids[ids.length - 1])!);
      }
    }
    this.#entries.set(op.id, { op, bytes, waitingOn });
    this.#bytes += bytes;
    let share = this.#authors.get(op.author);
    if (!share) this.#authors.set(op.author, share = { ids: [], bytes: 0 });
    share.ids.push(op.id);
    share.bytes += bytes;
    const list = this.#waiters.get(waitingOn);
    if (list) list.push(op.id);
    else this.#waiters.set(waitingOn, [op.id]);
    return { parked: true, evicted };
  }

  /** The author holding the most bytes (then the most operations). */
  #largestShare(): NodeId | undefined {
    let largest: NodeId | undefined;
    let best: AuthorShare | undefined;
    for (const [author, share] of this.#authors) {
      if (
        best === undefined || share.bytes > best.bytes ||
        (share.bytes === best.bytes && share.ids.length > best.ids.length)
      ) {
        largest = author;
        best = share;
      }
    }
    return largest;
  }

  /** Removes a parked operation; returns its entry, or undefined when it was not parked. */
  unpark(id: OpId): PendingEntry | undefined {
    const entry = this.#entries.get(id);
    if (!entry) return undefined;
    this.#entries.delete(id);
    this.#bytes -= entry.bytes;
    const share = this.#authors.get(entry.op.author)!;
    const at = share.ids.lastIndexOf(id);
    if (at >= 0) share.ids.splice(at, 1);
    share.bytes -= entry.bytes;
    if (share.ids.length === 0) this.#authors.delete(entry.op.author);
    const list = this.#waiters.get(entry.waitingOn);
    if (list) {
      const index = list.indexOf(id);
      if (index >= 0) list.splice(index, 1);
      if (list.length === 0) this.#waiters.delete(entry.waitingOn);
    }
    return entry;
  }

  /** Removes and returns every operation that waited for `id` (now held). */
  release(id: OpId): readonly PendingEntry[] {
    // Nothing waits (the common case): skip hashing `id`, about 0.4 µs for a string new to V8.
    if (this.#waiters.size === 0) return NONE_RELEASED;
    const waiting = this.#waiters.get(id);
    if (!waiting) return NONE_RELEASED;
    this.#waiters.delete(id);
    const released: PendingEntry[] = [];
    for (const pendingId of waiting.slice()) {
      const entry = this.unpark(pendingId);
      if (entry) released.push(entry);
    }
    return released;
  }
}
