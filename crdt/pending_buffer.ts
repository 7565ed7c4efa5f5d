/**
 * The bounded causal buffer: verified operations that arrived before an
 * operation they need (their predecessor or a dependency), indexed by what
 * they wait for so that holding it releases them.
 * @module
 */
import { encodeOperation, type Operation, type OpId } from "./operation.ts";

/** Bounds of a buffer: the pending buffer, or the quarantine. */
export interface PendingLimits {
  /** Most operations held. @default 10000 */
  maxCount?: number;
  /** Most bytes (JSON wire form) held. @default 16 MiB */
  maxBytes?: number;
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

/** Operations waiting for another operation, within count and byte bounds. */
export class PendingBuffer {
  readonly #entries = new Map<OpId, PendingEntry>();
  readonly #waiters = new Map<OpId, OpId[]>();
  #bytes = 0;
  readonly #maxCount: number;
  readonly #maxBytes: number;

  /** Creates an empty buffer with these bounds. */
  constructor(limits: PendingLimits = {}) {
    this.#maxCount = limits.maxCount ?? DEFAULT_MAX_COUNT;
    this.#maxBytes = limits.maxBytes ?? DEFAULT_MAX_BYTES;
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
    return this.#entries.has(id);
  }

  /** The parked entry for `id`. */
  get(id: OpId): PendingEntry | undefined {
    return this.#entries.get(id);
  }

  /** Every parked entry. */
  entries(): IterableIterator<PendingEntry> {
    return this.#entries.values();
  }

  /**
   * Parks `op` until `waitingOn` is held. Returns false (and parks nothing)
   * when the buffer is full, unless `unbounded` (a store replay).
   */
  park(op: Operation, waitingOn: OpId, unbounded = false): boolean {
    const bytes = encodeOperation(op).length;
    if (
      !unbounded &&
      (this.#entries.size >= this.#maxCount || this.#bytes + bytes > this.#maxBytes)
    ) return false;
    this.#entries.set(op.id, { op, bytes, waitingOn });
    this.#bytes += bytes;
    const list = this.#waiters.get(waitingOn);
    if (list) list.push(op.id);
    else this.#waiters.set(waitingOn, [op.id]);
    return true;
  }

  /** Removes a parked operation; returns its entry, or undefined when it was not parked. */
  unpark(id: OpId): PendingEntry | undefined {
    const entry = this.#entries.get(id);
    if (!entry) return undefined;
    this.#entries.delete(id);
    this.#bytes -= entry.bytes;
    const list = this.#waiters.get(entry.waitingOn);
    if (list) {
      const at = list.indexOf(id);
      if (at >= 0) list.splice(at, 1);
      if (list.length === 0) this.#waiters.delete(entry.waitingOn);
    }
    return entry;
  }

  /** Removes and returns every operation that waited for `id` (now held). */
  release(id: OpId): PendingEntry[] {
    const waiting = this.#waiters.get(id);
    if (!waiting) return [];
    this.#waiters.delete(id);
    const released: PendingEntry[] = [];
    for (const pendingId of waiting.slice()) {
      const entry = this.unpark(pendingId);
      if (entry) released.push(entry);
    }
    return released;
  }
}
