/**
 * The storage adapter interface for a replica's operation log, and an
 * in-memory implementation for tests and ephemeral nodes.
 * @module
 */
import type { NodeId } from "./identity.ts";
import type { Operation, OpId } from "./operation.ts";

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
 * The durable record of a node's own chain head: the seq and id of the last
 * operation it signed. The replica checks it at open: a store holding fewer
 * of the node's own operations than this lost history.
 */
export interface OwnHead {
  /** The node id (the author of the operations). */
  author: NodeId;
  /** The seq of its last signed operation. */
  seq: number;
  /** The id of that operation. */
  id: OpId;
}

/** Options for {@link Store.append}. */
export interface AppendOptions {
  /**
   * Survive a power loss, not only a process crash (an fsync per call).
   * Replicas ask for it for their own operations: losing one of those after
   * peers saw it would make the restarted node reuse its position (a fork).
   * Operations received from peers can be fetched again, so they skip it.
   * @default true
   */
  durable?: boolean;
  /**
   * Records the node's own chain head along with the batch (the batch's own
   * operations end at it). When `append` returns, the record is as durable
   * as the operations, and it must survive losing them: a store whose
   * operations roll back (a truncated write-ahead log, an older file
   * restored) still reports the newer record from {@link Store.loadOwnHead}.
   * Writing the record may lag the operations (a crash between the two
   * leaves the older record) but never lead them. `append([], { ownHead })`
   * writes the record alone.
   */
  ownHead?: OwnHead;
}

/**
 * Where a replica keeps its operations. Implementations are synchronous: each
 * call has finished (and, for durable stores, reached the disk) when it returns.
 */
export interface Store {
  /**
   * Appends operations, in order, in one transaction: when it throws, nothing
   * from the batch was stored. The caller (the replica's log) never appends an
   * id twice, so stores need not check for duplicates.
   */
  append(ops: readonly Operation[], options?: AppendOptions): void;
  /** Every stored operation in insertion order (an order in which they apply). */
  load(): Iterable<Operation>;
  /** Number of stored operations. */
  count(): number;
  /** Records a fork proof (one per author; later proofs for the same author are ignored). */
  saveFork(proof: ForkProof): void;
  /** Every recorded fork proof. */
  loadForks(): ForkProof[];
  /** The last recorded own chain head (see {@link AppendOptions.ownHead}), or null. */
  loadOwnHead(): OwnHead | null;
  /** Releases the store; later calls throw. Safe to call twice. */
  close(): void;
  /**
   * Optional, for a store on disk: every stored operation in insertion order
   * as a light reference whose body is read from the store on demand, so the
   * replica does not hold every operation in memory. The replica then does
   * not re-hash them at open; the store checks them with {@link Store.checkRows}.
   */
  loadLazy?(): Iterable<Operation>;
  /**
   * Optional, with {@link Store.loadLazy}: appends like {@link Store.append}
   * and returns light references to the stored operations, in order, so the
   * replica can let go of the operations themselves.
   */
  appendLazy?(ops: readonly Operation[], options?: AppendOptions): Operation[];
  /**
   * Optional, with {@link Store.loadLazy}: checks up to `limit` rows after
   * position `after` (0 at the start); returns where to go on, or `null` at the end.
   * @throws {Error} a row that is corrupt or was altered.
   */
  checkRows?(after: number, limit: number): number | null;
  /**
   * Optional, with {@link Store.loadLazy}: the state last saved (`body`, as
   * the replica encoded it; `upTo`, the last row it covers), or null.
   */
  loadState?(): { upTo: number; body: string } | null;
  /** Optional, with {@link Store.loadLazy}: saves a state covering every row stored so far. */
  saveState?(body: string): void;
}

/**
 * A {@link Store} that keeps everything in memory. Nothing survives the
 * process, which is what tests and throwaway nodes want.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { HuskiesNode, MemoryStore } from "@huskies/sync";
 *
 * const store = new MemoryStore();
 * await using node = await HuskiesNode.open({ store });
 * node.pipeline.put("S-1", { stage: "qa" });
 * // The item and its stage event: two signed operations, both stored.
 * assert.equal(store.count(), 2);
 * assert.deepEqual([...store.load()].map((op) => op.mutation.type), ["update", "append"]);
 * ```
 */
export class MemoryStore implements Store {
  #ops: Operation[] = [];
  #forks = new Map<NodeId, ForkProof>();
  #ownHead: OwnHead | null = null;
  #closed = false;

  #open(): void {
    if (this.#closed) throw new Error("Cannot use store: it is closed");
  }

  /** Appends operations in order and records `options.ownHead`, if given. */
  append(ops: readonly Operation[], options: AppendOptions = {}): void {
    this.#open();
    for (const op of ops) this.#ops.push(op);
    if (options.ownHead) this.#ownHead = { ...options.ownHead };
  }

  /** The last recorded own chain head, or null. */
  loadOwnHead(): OwnHead | null {
    this.#open();
    return this.#ownHead === null ? null : { ...this.#ownHead };
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
