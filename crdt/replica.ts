/**
 * A replica: one node's copy of the shared document. It owns the identity
 * that signs local changes, the operation log, the materialised document and
 * the store, and is the single place where operations enter the state.
 * Everything hangs off the instance, so many replicas can live in one process.
 * @module
 */
import type { ClockHeads, VectorClock } from "./clock.ts";
import { CrdtDocument } from "./document.ts";
import { type Identity, type NodeId, SignatureVerifier } from "./identity.ts";
import { type BatchResult, OpLog, type PendingLimits } from "./log.ts";
import {
  hasValidId,
  type Mutation,
  type Operation,
  OPERATION_LIMITS,
  type OpId,
  signOperation,
} from "./operation.ts";
import { type ForkProof, MemoryStore, type Store } from "./store.ts";

/** Options for {@link Replica.open}. */
export interface ReplicaOptions {
  /** The node's signing identity. */
  identity: Identity;
  /** Where operations persist. @default a new MemoryStore */
  store?: Store;
  /** Signature checker (shares its key cache). @default native node:crypto */
  verifier?: SignatureVerifier;
  /** Whether an author may write; operations by others are refused. @default everyone */
  mayAuthor?: (author: NodeId) => boolean;
  /** Bounds of the buffer for operations that arrive before their predecessors. */
  pending?: PendingLimits;
}

/** Options for {@link Replica.receive}. */
export interface ReceiveOptions {
  /** Verify contiguous per-author runs by their last signature. @default false */
  amortise?: boolean;
  /** Who delivered the operations; passed to listeners so a hub does not echo. */
  origin?: unknown;
}

/** Called with operations newly applied, in apply order, and who delivered them. */
export type AppliedListener = (ops: readonly Operation[], origin: unknown) => void;

/** Called with a newly detected or received fork proof. */
export type ForkListener = (proof: ForkProof, origin: unknown) => void;

/** Where a local change comes from, for {@link AppliedListener}. */
export const LOCAL_ORIGIN: unique symbol = Symbol("local");

/**
 * One node's replica of the document.
 *
 * @example
 * ```ts
 * import { Identity, Replica } from "./mod.ts";
 * const replica = Replica.open({ identity: Identity.generate() });
 * replica.commit([{ type: "update", path: ["items", "s1"], fields: { stage: "qa" } }]);
 * replica.document.get(["items", "s1", "stage"]); // "qa"
 * ```
 */
export class Replica {
  /** The node's identity. */
  readonly identity: Identity;
  /** The node id (hex public key). */
  readonly nodeId: NodeId;
  /** The materialised document. Read it; change it only through {@link Replica.commit}. */
  readonly document: CrdtDocument = new CrdtDocument();
  readonly #log: OpLog;
  readonly #store: Store;
  readonly #applied = new Set<AppliedListener>();
  readonly #forkListeners = new Set<ForkListener>();
  #closed = false;

  private constructor(options: ReplicaOptions) {
    this.identity = options.identity;
    this.nodeId = options.identity.nodeId;
    this.#store = options.store ?? new MemoryStore();
    this.#log = new OpLog({
      verifier: options.verifier ?? new SignatureVerifier(),
      mayAuthor: options.mayAuthor,
      pending: options.pending,
    });
  }

  /**
   * Opens a replica and replays the store in insertion order. Each stored id
   * is recomputed, so a tampered or corrupt row stops the open with an error
   * instead of being served to peers. Signatures are re-checked by
   * `huskies verify`, not at every start.
   */
  static open(options: ReplicaOptions): Replica {
    const replica = new Replica(options);
    let position = 0;
    for (const op of replica.#store.load()) {
      position++;
      if (!hasValidId(op)) {
        throw new Error(
          `Cannot open replica: stored operation #${position} (${op.id}) does not match its id; the store is corrupt or was altered`,
        );
      }
      try {
        replica.#log.applyTrusted(op);
      } catch (error) {
        throw new Error(
          `Cannot open replica: stored operation #${position} is out of order (${
            (error as Error).message
          })`,
        );
      }
      replica.document.apply(op);
    }
    for (const proof of replica.#store.loadForks()) replica.#log.addForkProof(proof);
    return replica;
  }

  #checkOpen(action: string): void {
    if (this.#closed) throw new Error(`Cannot ${action}: the replica is closed`);
  }

  /**
   * Signs `mutations` as consecutive local operations, persists them in one
   * transaction and applies them. Returns the new operations.
   */
  commit(mutations: readonly Mutation[]): Operation[] {
    this.#checkOpen("commit");
    if (mutations.length === 0) return [];
    const mark = this.#log.mark();
    const created: Operation[] = [];
    try {
      for (const mutation of mutations) {
        const op = signOperation({
          author: this.nodeId,
          seq: this.#log.countOf(this.nodeId) + 1,
          prev: this.#log.headOf(this.nodeId),
          deps: this.#localDeps(),
          time: this.#log.maxTime + 1,
          mutation,
        }, this.identity);
        this.#log.applyTrusted(op);
        created.push(op);
      }
      this.#store.append(created);
    } catch (error) {
      this.#log.rollback(mark);
      throw error;
    }
    for (const op of created) this.document.apply(op);
    this.#emit(created, LOCAL_ORIGIN);
    return created;
  }

  /** The frontier minus our own head (implied by `prev`), capped to the newest operations. */
  #localDeps(): OpId[] {
    const own = this.#log.headOf(this.nodeId);
    let deps = this.#log.frontier().filter((id) => id !== own);
    if (deps.length > OPERATION_LIMITS.maxDeps) {
      deps = deps
        .map((id) => this.#log.get(id)!)
        .sort((a, b) => b.time - a.time)
        .slice(0, OPERATION_LIMITS.maxDeps)
        .map((op) => op.id)
        .sort();
    }
    return deps;
  }

  /**
   * Receives operations from a peer: verifies, applies what is causally ready
   * (and anything it releases from the pending buffer), persists the newly
   * applied operations in one transaction, and notifies listeners.
   */
  receive(ops: readonly Operation[], options: ReceiveOptions = {}): BatchResult {
    this.#checkOpen("receive operations");
    const mark = this.#log.mark();
    const result = this.#log.receive(ops, options.amortise ?? false);
    if (result.applied.length > 0) {
      try {
        this.#store.append(result.applied);
      } catch (error) {
        this.#log.rollback(mark);
        throw error;
      }
      for (const op of result.applied) this.document.apply(op);
    }
    for (const proof of result.forks) this.#recordFork(proof, options.origin);
    if (result.applied.length > 0) this.#emit(result.applied, options.origin);
    return result;
  }

  /** Checks and records a fork proof from a peer; true when it was new and valid. */
  addForkProof(proof: ForkProof, origin?: unknown): boolean {
    this.#checkOpen("add a fork proof");
    if (!this.#log.addForkProof(proof)) return false;
    this.#recordFork(this.#log.forks().find((p) => p.author === proof.author)!, origin);
    return true;
  }

  #recordFork(proof: ForkProof, origin: unknown): void {
    this.#store.saveFork(proof);
    for (const listener of this.#forkListeners) listener(proof, origin);
  }

  #emit(ops: readonly Operation[], origin: unknown): void {
    for (const listener of this.#applied) listener(ops, origin);
  }

  /** Subscribes to newly applied operations; returns the unsubscribe function. */
  onApplied(listener: AppliedListener): () => void {
    this.#applied.add(listener);
    return () => this.#applied.delete(listener);
  }

  /** Subscribes to fork proofs; returns the unsubscribe function. */
  onFork(listener: ForkListener): () => void {
    this.#forkListeners.add(listener);
    return () => this.#forkListeners.delete(listener);
  }

  /** Author -> count of operations held. */
  clock(): VectorClock {
    return this.#log.clock();
  }

  /** Author -> id of the last operation held. */
  heads(): ClockHeads {
    return this.#log.heads();
  }

  /** Operations a peer with this clock lacks, in an order it can apply. */
  opsSince(clock: VectorClock, heads?: ClockHeads): Operation[] {
    return this.#log.opsSince(clock, heads);
  }

  /** Every applied operation in apply order. */
  operations(): readonly Operation[] {
    return this.#log.all();
  }

  /** The applied operation with this id. */
  getOperation(id: OpId): Operation | undefined {
    return this.#log.get(id);
  }

  /** Number of applied operations. */
  get size(): number {
    return this.#log.size;
  }

  /** Size of the pending buffer. */
  pendingSize(): { count: number; bytes: number } {
    return this.#log.pendingSize();
  }

  /** Fork proofs known. */
  forks(): ForkProof[] {
    return this.#log.forks();
  }

  /** True when `author` has been caught equivocating. */
  isForked(author: NodeId): boolean {
    return this.#log.isForked(author);
  }

  /** Deterministic hash of the document's visible state. */
  stateHash(): string {
    return this.document.stateHash();
  }

  /** Closes the store. Safe to call twice. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#applied.clear();
    this.#forkListeners.clear();
    this.#store.close();
  }
}
