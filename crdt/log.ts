/**
 * The operation log: which operations a replica holds, in what order, its
 * vector clock, causal delivery through a bounded pending buffer, and fork
 * (equivocation) detection. Pure in-memory logic; the replica adds storage.
 * @module
 */
import type { ClockHeads, VectorClock } from "./clock.ts";
import type { NodeId, SignatureVerifier } from "./identity.ts";
import {
  encodeOperation,
  type Operation,
  type OpId,
  verifyBatch,
  verifyOperation,
} from "./operation.ts";
import type { ForkProof } from "./store.ts";

/** What happened to one received operation. */
export type ReceiveStatus =
  /** Verified and applied (now, or released from the pending buffer). */
  | "applied"
  /** Already held or already pending: nothing to do, never forward it again. */
  | "duplicate"
  /** Verified, waiting in the pending buffer for its predecessors. */
  | "pending"
  /** The pending buffer is full: dropped, the peer's clock will ask again. */
  | "dropped"
  /** Failed verification (bad id, signature or causal metadata). */
  | "invalid"
  /** The author may not write (trust scope). */
  | "unauthorized"
  /** Conflicts with a held operation at the same position: a fork was detected. */
  | "fork"
  /** The author has forked before; nothing more is accepted from it. */
  | "forked-author";

/** Bounds of the pending buffer. */
export interface PendingLimits {
  /** Most operations held while waiting. @default 10000 */
  maxCount?: number;
  /** Most bytes (JSON wire form) held while waiting. @default 16 MiB */
  maxBytes?: number;
}

/** Options for {@link OpLog}. */
export interface OpLogOptions {
  /** Checks signatures. */
  verifier: SignatureVerifier;
  /** Whether an author may write; unauthorised operations are refused. @default everyone */
  mayAuthor?: (author: NodeId) => boolean;
  /** Pending buffer bounds. */
  pending?: PendingLimits;
}

interface Entry {
  op: Operation;
  /** Position in apply order. */
  pos: number;
}

interface PendingEntry {
  op: Operation;
  bytes: number;
  waitingOn: OpId;
}

/** The result of receiving a batch. */
export interface BatchResult {
  /** Operations newly applied, in the order they were applied. */
  applied: Operation[];
  /** Status of each input operation, by input position. */
  statuses: ReceiveStatus[];
  /** Fork proofs detected while receiving this batch. */
  forks: ForkProof[];
}

/** A snapshot that {@link OpLog.rollback} restores. */
export interface LogMark {
  readonly length: number;
  readonly maxTime: number;
  readonly frontier: ReadonlySet<OpId>;
}

/**
 * Holds operations in an order they apply in, and decides for each incoming
 * operation whether it applies now, waits, or is refused.
 */
export class OpLog {
  readonly #verifier: SignatureVerifier;
  readonly #mayAuthor: (author: NodeId) => boolean;
  readonly #byId = new Map<OpId, Entry>();
  readonly #chains = new Map<NodeId, Operation[]>();
  readonly #order: Operation[] = [];
  #frontier = new Set<OpId>();
  #maxTime = 0;
  readonly #forks = new Map<NodeId, ForkProof>();
  readonly #pending = new Map<OpId, PendingEntry>();
  readonly #waiters = new Map<OpId, OpId[]>();
  #pendingBytes = 0;
  readonly #maxPendingCount: number;
  readonly #maxPendingBytes: number;

  /** Creates an empty log. */
  constructor(options: OpLogOptions) {
    this.#verifier = options.verifier;
    this.#mayAuthor = options.mayAuthor ?? (() => true);
    this.#maxPendingCount = options.pending?.maxCount ?? 10_000;
    this.#maxPendingBytes = options.pending?.maxBytes ?? 16 * 1024 * 1024;
  }

  /** Number of applied operations. */
  get size(): number {
    return this.#order.length;
  }

  /** Highest Lamport time seen among applied operations. */
  get maxTime(): number {
    return this.#maxTime;
  }

  /** Number and bytes of operations waiting in the pending buffer. */
  pendingSize(): { count: number; bytes: number } {
    return { count: this.#pending.size, bytes: this.#pendingBytes };
  }

  /** True when the operation is applied. */
  has(id: OpId): boolean {
    return this.#byId.has(id);
  }

  /** The applied operation with this id. */
  get(id: OpId): Operation | undefined {
    return this.#byId.get(id)?.op;
  }

  /** The author's applied operation at `seq` (1-based). */
  at(author: NodeId, seq: number): Operation | undefined {
    return this.#chains.get(author)?.[seq - 1];
  }

  /** Applied operations in apply order. */
  all(): readonly Operation[] {
    return this.#order;
  }

  /** Author -> count of applied operations. */
  clock(): VectorClock {
    const clock: VectorClock = {};
    for (const [author, chain] of this.#chains) clock[author] = chain.length;
    return clock;
  }

  /** Author -> id of its last applied operation. */
  heads(): ClockHeads {
    const heads: ClockHeads = {};
    for (const [author, chain] of this.#chains) heads[author] = chain[chain.length - 1].id;
    return heads;
  }

  /** Number of applied operations by `author`. */
  countOf(author: NodeId): number {
    return this.#chains.get(author)?.length ?? 0;
  }

  /** Id of `author`'s last applied operation. */
  headOf(author: NodeId): OpId | null {
    const chain = this.#chains.get(author);
    return chain ? chain[chain.length - 1].id : null;
  }

  /**
   * The current frontier: applied operations that no other applied operation
   * names as `prev` or dependency. New local operations depend on it.
   */
  frontier(): OpId[] {
    return [...this.#frontier].sort();
  }

  /** Fork proofs known, one per equivocating author. */
  forks(): ForkProof[] {
    return [...this.#forks.values()];
  }

  /** True when `author` has been caught equivocating. */
  isForked(author: NodeId): boolean {
    return this.#forks.has(author);
  }

  /**
   * Operations a peer with clock `theirs` lacks, in an order it can apply them.
   * Costs time in proportion to the number of authors and of missing
   * operations, not to the log size. When `theirHeads` shows the peer holds a
   * different operation at a position we hold, ours is included so the peer
   * sees the fork.
   */
  opsSince(theirs: VectorClock, theirHeads: ClockHeads = {}): Operation[] {
    const missing: Entry[] = [];
    for (const [author, chain] of this.#chains) {
      const held = Math.min(theirs[author] ?? 0, chain.length);
      const head = theirHeads[author];
      if (head !== undefined && held > 0 && chain[held - 1].id !== head) {
        missing.push(this.#byId.get(chain[held - 1].id)!);
      }
      for (let seq = held; seq < chain.length; seq++) missing.push(this.#byId.get(chain[seq].id)!);
    }
    missing.sort((a, b) => a.pos - b.pos);
    return missing.map((entry) => entry.op);
  }

  /** Records a fork proof after checking it; returns false for an invalid or known one. */
  addForkProof(proof: ForkProof): boolean {
    if (this.#forks.has(proof.author)) return false;
    const { a, b } = proof;
    if (
      a.author !== proof.author || b.author !== proof.author || a.seq !== proof.seq ||
      b.seq !== proof.seq || a.id === b.id || !verifyOperation(a, this.#verifier) ||
      !verifyOperation(b, this.#verifier)
    ) return false;
    this.#forks.set(proof.author, a.id < b.id ? proof : { ...proof, a: b, b: a });
    return true;
  }

  /** Snapshot for {@link OpLog.rollback}. */
  mark(): LogMark {
    return {
      length: this.#order.length,
      maxTime: this.#maxTime,
      frontier: new Set(this.#frontier),
    };
  }

  /**
   * Undoes every operation applied since `mark` (used when persisting them
   * failed). Operations released from the pending buffer are not restored.
   */
  rollback(mark: LogMark): void {
    while (this.#order.length > mark.length) {
      const op = this.#order.pop()!;
      this.#byId.delete(op.id);
      const chain = this.#chains.get(op.author)!;
      chain.pop();
      if (chain.length === 0) this.#chains.delete(op.author);
    }
    this.#maxTime = mark.maxTime;
    this.#frontier = new Set(mark.frontier);
  }

  /**
   * Receives operations from outside. With `amortise`, contiguous runs of one
   * author are authenticated by the signature of their last operation (see
   * `verifyBatch`); otherwise each signature is checked.
   */
  receive(ops: readonly Operation[], amortise: boolean): BatchResult {
    const statuses = new Array<ReceiveStatus>(ops.length);
    const applied: Operation[] = [];
    const forks: ForkProof[] = [];
    const toVerify: number[] = [];
    const seen = new Set<OpId>();
    for (let i = 0; i < ops.length; i++) {
      const op = ops[i];
      if (this.#byId.has(op.id) || this.#pending.has(op.id) || seen.has(op.id)) {
        statuses[i] = "duplicate";
      } else if (this.#forks.has(op.author)) {
        statuses[i] = "forked-author";
      } else if (!this.#mayAuthor(op.author)) {
        statuses[i] = "unauthorized";
      } else {
        seen.add(op.id);
        toVerify.push(i);
      }
    }
    const subset = toVerify.map((i) => ops[i]);
    const valid = amortise
      ? verifyBatch(subset, this.#verifier)
      : subset.map((op) => verifyOperation(op, this.#verifier));
    for (let k = 0; k < toVerify.length; k++) {
      const i = toVerify[k];
      statuses[i] = valid[k] ? this.#admit(ops[i], applied, forks) : "invalid";
    }
    return { applied, statuses, forks };
  }

  /**
   * Applies a locally created or stored operation that is already trusted.
   * Throws when it does not apply in order (a caller bug or a corrupt store).
   */
  applyTrusted(op: Operation): void {
    const problem = this.#blocker(op);
    if (problem !== undefined) {
      throw new Error(`Cannot apply operation ${op.id}: ${problem}`);
    }
    this.#apply(op);
  }

  /**
   * What stops `op` from applying now: `undefined` when it applies, an id it
   * waits for, or a reason it can never apply (prefixed with "!").
   */
  #blocker(op: Operation): string | undefined {
    const chain = this.#chains.get(op.author);
    const count = chain?.length ?? 0;
    if (op.seq <= count) return `!position ${op.seq} of ${op.author} is taken`;
    if (op.seq > count + 1) return op.prev!;
    if (op.seq > 1 && chain![count - 1].id !== op.prev) return op.prev!;
    for (const dep of op.deps) if (!this.#byId.has(dep)) return dep;
    if (op.seq > 1 && op.time <= chain![count - 1].time) return "!time does not increase";
    for (const dep of op.deps) {
      if (op.time <= this.#byId.get(dep)!.op.time) return "!time is not after a dependency";
    }
    return undefined;
  }

  #admit(op: Operation, applied: Operation[], forks: ForkProof[]): ReceiveStatus {
    const held = this.at(op.author, op.seq);
    if (held !== undefined) {
      if (held.id === op.id) return "duplicate";
      const proof = { author: op.author, seq: op.seq, a: held, b: op };
      if (this.addForkProof(proof)) forks.push(this.#forks.get(op.author)!);
      this.#dropPendingBy(op.author);
      return "fork";
    }
    const blocker = this.#blocker(op);
    if (blocker === undefined) {
      this.#apply(op);
      applied.push(op);
      this.#release(op.id, applied, forks);
      return "applied";
    }
    if (blocker.startsWith("!")) return "invalid";
    return this.#park(op, blocker) ? "pending" : "dropped";
  }

  #apply(op: Operation): void {
    const pos = this.#order.length;
    this.#order.push(op);
    this.#byId.set(op.id, { op, pos });
    let chain = this.#chains.get(op.author);
    if (!chain) this.#chains.set(op.author, chain = []);
    chain.push(op);
    if (op.prev !== null) this.#frontier.delete(op.prev);
    for (const dep of op.deps) this.#frontier.delete(dep);
    this.#frontier.add(op.id);
    if (op.time > this.#maxTime) this.#maxTime = op.time;
  }

  #park(op: Operation, waitingOn: OpId): boolean {
    const bytes = encodeOperation(op).length;
    if (
      this.#pending.size >= this.#maxPendingCount ||
      this.#pendingBytes + bytes > this.#maxPendingBytes
    ) return false;
    this.#pending.set(op.id, { op, bytes, waitingOn });
    this.#pendingBytes += bytes;
    const list = this.#waiters.get(waitingOn);
    if (list) list.push(op.id);
    else this.#waiters.set(waitingOn, [op.id]);
    return true;
  }

  #unpark(id: OpId): PendingEntry | undefined {
    const entry = this.#pending.get(id);
    if (!entry) return undefined;
    this.#pending.delete(id);
    this.#pendingBytes -= entry.bytes;
    return entry;
  }

  /** Re-examines operations that waited on `id` (and, transitively, on what they release). */
  #release(id: OpId, applied: Operation[], forks: ForkProof[]): void {
    const queue = [id];
    while (queue.length > 0) {
      const key = queue.pop()!;
      const waiting = this.#waiters.get(key);
      if (!waiting) continue;
      this.#waiters.delete(key);
      for (const pendingId of waiting) {
        const entry = this.#unpark(pendingId);
        if (!entry) continue;
        const before = applied.length;
        this.#admitReleased(entry.op, applied, forks);
        for (let k = before; k < applied.length; k++) queue.push(applied[k].id);
      }
    }
  }

  #admitReleased(op: Operation, applied: Operation[], forks: ForkProof[]): void {
    if (this.#forks.has(op.author)) return;
    const held = this.at(op.author, op.seq);
    if (held !== undefined) {
      if (held.id !== op.id) {
        const proof = { author: op.author, seq: op.seq, a: held, b: op };
        if (this.addForkProof(proof)) forks.push(this.#forks.get(op.author)!);
        this.#dropPendingBy(op.author);
      }
      return;
    }
    const blocker = this.#blocker(op);
    if (blocker === undefined) {
      this.#apply(op);
      applied.push(op);
    } else if (!blocker.startsWith("!")) {
      this.#park(op, blocker);
    }
  }

  #dropPendingBy(author: NodeId): void {
    for (const [id, entry] of this.#pending) {
      if (entry.op.author === author) this.#unpark(id);
    }
  }
}
