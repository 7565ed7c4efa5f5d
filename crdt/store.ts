/**
 * The storage adapter interface for a replica's operation log, and an
 * in-memory implementation for tests and ephemeral nodes.
 * @module
 */
import type { NodeId } from "./identity.ts";
import type { Operation } from "./operation.ts";

/** Proof that an author signed two different operations at the same position. */
export interface ForkProof {
  /** The equivocating author. */
  author: NodeId;
  /** The sequence number both operations claim. */
  seq: number;
  /** The first of the two signed operations (the one with the smaller id). */
  a: Operation;
  /** The second signed operation. */
  b: Operation;
}

/**
 * Where a replica keeps its operations. Implementations are synchronous: each
 * call has finished (and, for durable stores, reached the disk) when it returns.
 */
export interface Store {
  /**
   * Appends operations, in order, in one transaction. Either all are stored or
   * none is: an id already stored, or repeated in the batch, throws and stores
   * nothing.
   */
  append(ops: readonly Operation[]): void;
  /** Every stored operation in insertion order (an order in which they apply). */
  load(): Iterable<Operation>;
  /** Number of stored operations. */
  count(): number;
  /** Records a fork proof (one per author; later proofs for the same author are ignored). */
  saveFork(proof: ForkProof): void;
  /** Every recorded fork proof. */
  loadForks(): ForkProof[];
  /** Releases the store; later calls throw. Safe to call twice. */
  close(): void;
}

/**
 * A {@link Store} that keeps everything in memory. Nothing survives the
 * process, which is what tests and throwaway nodes want.
 *
 * @example
 * ```ts
 * import { MemoryStore } from "./store.ts";
 * const store = new MemoryStore();
 * store.count(); // 0
 * ```
 */
export class MemoryStore implements Store {
  #ops: Operation[] = [];
  #ids = new Set<string>();
  #forks = new Map<NodeId, ForkProof>();
  #closed = false;

  #open(): void {
    if (this.#closed) throw new Error("Cannot use store: it is closed");
  }

  /** Appends operations in order; all or nothing. */
  append(ops: readonly Operation[]): void {
    this.#open();
    const fresh = new Set<string>();
    for (const op of ops) {
      if (this.#ids.has(op.id) || fresh.has(op.id)) {
        throw new Error(`Cannot append: operation ${op.id} is already stored`);
      }
      fresh.add(op.id);
    }
    for (const op of ops) {
      this.#ops.push(op);
      this.#ids.add(op.id);
    }
  }

  /** Stored operations in insertion order. */
  load(): Iterable<Operation> {
    this.#open();
    return this.#ops.slice();
  }

  /** Number of stored operations. */
  count(): number {
    this.#open();
    return this.#ops.length;
  }

  /** Records a fork proof, keeping the first per author. */
  saveFork(proof: ForkProof): void {
    this.#open();
    if (!this.#forks.has(proof.author)) this.#forks.set(proof.author, proof);
  }

  /** Every recorded fork proof. */
  loadForks(): ForkProof[] {
    this.#open();
    return [...this.#forks.values()];
  }

  /** Marks the store closed. */
  close(): void {
    this.#closed = true;
  }
}
