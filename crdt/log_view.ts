/**
 * The read side of the operation log: what it holds, its clock and heads,
 * and what a peer lacks. `log.ts` extends it with the decisions.
 * @module
 */
import type { ClockHeads, VectorClock } from "./clock.ts";
import { type Quarantine, withAnchors } from "./forks.ts";
import type { NodeId } from "./identity.ts";
import type { AppliedChains } from "./op_log.ts";
import { type Operation, OPERATION_LIMITS, type OpId } from "./operation.ts";
import type { PendingBuffer } from "./pending_buffer.ts";
import type { ForkProof } from "./store.ts";

/** Queries over an operation log's parts; the parts are the subclass's to change. */
export abstract class LogView {
  /** Applied operations. */
  protected abstract readonly applied: AppliedChains;
  /** Operations waiting for a predecessor or dependency. */
  protected abstract readonly pending: PendingBuffer;
  /** Forked authors' operations from their fork point on. */
  protected abstract readonly quarantine: Quarantine;
  /** The lowest known fork proof per forked author. */
  protected abstract forkProofs: Map<NodeId, ForkProof>;

  /** Number of applied operations. */
  get size(): number {
    return this.applied.size;
  }

  /** Highest Lamport time seen among applied operations. */
  get maxTime(): number {
    return this.applied.maxTime;
  }

  /** Number and bytes of operations waiting in the pending buffer. */
  pendingSize(): { count: number; bytes: number } {
    return { count: this.pending.count, bytes: this.pending.bytes };
  }

  /** Number and bytes of operations in quarantine. */
  quarantineSize(): { count: number; bytes: number } {
    return { count: this.quarantine.count, bytes: this.quarantine.bytes };
  }

  /** True when the operation is applied. */
  has(id: OpId): boolean {
    return this.applied.has(id);
  }

  /** The applied operation with this id. */
  get(id: OpId): Operation | undefined {
    return this.applied.get(id);
  }

  /** True when the operation is held in quarantine. */
  isQuarantined(id: OpId): boolean {
    return this.quarantine.has(id);
  }

  /** Operations in quarantine, in the order they entered it. */
  quarantined(): Operation[] {
    return this.quarantine.operations();
  }

  /** The author's applied operation at `seq` (1-based). */
  at(author: NodeId, seq: number): Operation | undefined {
    return this.applied.at(author, seq);
  }

  /** Applied operations in apply order. */
  all(): readonly Operation[] {
    return this.applied.all();
  }

  /** Author -> count of applied operations (for a forked author, at most its fork point - 1). */
  clock(): VectorClock {
    return this.applied.clock();
  }

  /** Author -> id of its last applied operation. */
  heads(): ClockHeads {
    return this.applied.heads();
  }

  /** Number of applied operations by `author`. */
  countOf(author: NodeId): number {
    return this.applied.countOf(author);
  }

  /** Id of `author`'s last applied operation. */
  headOf(author: NodeId): OpId | null {
    return this.applied.tail(author)?.id ?? null;
  }

  /**
   * The operation `author`'s next one follows: its last applied one, or,
   * once it is forked, its highest held one (its quarantined line), so that a
   * forked node's own new operations never repeat one it already signed.
   */
  tipOf(author: NodeId): Operation | undefined {
    const tip = this.applied.tail(author);
    if (!this.forkProofs.has(author)) return tip;
    const quarantined = this.quarantine.highestOf(author);
    return quarantined !== undefined && (tip === undefined || quarantined.seq > tip.seq)
      ? quarantined
      : tip;
  }

  /**
   * The current frontier: applied operations that no other applied operation
   * names as `prev` or dependency. New local operations depend on it, so they
   * never depend on a quarantined operation.
   */
  frontier(): OpId[] {
    return this.applied.frontier();
  }

  /**
   * The dependencies of `author`'s next operation: the frontier minus its own
   * head (implied by `prev`), capped to the newest {@link OPERATION_LIMITS}`.maxDeps`.
   */
  depsFor(author: NodeId): OpId[] {
    const own = this.headOf(author);
    const deps = this.frontier().filter((id) => id !== own);
    if (deps.length <= OPERATION_LIMITS.maxDeps) return deps;
    return deps
      .map((id) => this.get(id)!)
      .sort((a, b) => b.time - a.time)
      .slice(0, OPERATION_LIMITS.maxDeps)
      .map((op) => op.id)
      .sort();
  }

  /** Fork proofs known, one per equivocating author (the lowest known). */
  forks(): ForkProof[] {
    return [...this.forkProofs.values()];
  }

  /** True when `author` has been caught equivocating. */
  isForked(author: NodeId): boolean {
    return this.forkProofs.has(author);
  }

  /** The author's fork point (the seq from which its operations are quarantined), if forked. */
  forkPoint(author: NodeId): number | undefined {
    return this.forkProofs.get(author)?.seq;
  }

  /**
   * Operations a peer with clock `theirs` lacks, in an order it can apply them
   * (see `AppliedChains.opsSince`); never quarantined ones ({@link quarantineToSend}).
   */
  opsSince(theirs: VectorClock, theirHeads: ClockHeads = {}): Operation[] {
    return this.applied.opsSince(theirs, theirHeads);
  }

  /**
   * `ops` (quarantined operations) with, before each author's first one, the
   * last operation of that author's agreed chain (at its fork point - 1) when
   * held. A peer that holds a different operation there detects a fork below
   * the one it knows, so all nodes settle on the same agreed chain.
   */
  withAnchors(ops: readonly Operation[]): Operation[] {
    return withAnchors(ops, (author) => {
      const point = this.forkProofs.get(author)?.seq;
      return point !== undefined && point > 1 ? this.at(author, point - 1) : undefined;
    });
  }

  /** Every quarantined operation with its anchors: what a session sends a peer after the fork proofs. */
  quarantineToSend(): Operation[] {
    return this.withAnchors(this.quarantined());
  }
}
