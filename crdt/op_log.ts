/**
 * Applied chains: every applied operation in apply order, each author's
 * gap-free chain, the vector clock and heads derived from them, the frontier
 * and the delta a peer lacks ({@link AppliedChains.opsSince}). Pure
 * in-memory data; `log.ts` decides what is applied.
 * @module
 */
import type { ClockHeads, VectorClock } from "./clock.ts";
import type { NodeId } from "./identity.ts";
import { IdIndex } from "./id_index.ts";
import type { Operation, OpId } from "./operation.ts";

/** Applied operations, by author chain and in apply order. */
export class AppliedChains {
  /** Id -> position in {@link all} (apply order only grows or shrinks at its end). */
  readonly #byId = new IdIndex((position) => this.#order[position].id);
  /** Each author's applied chain; index seq - 1. */
  readonly #chains = new Map<NodeId, Operation[]>();
  #order: Operation[] = [];
  #frontier = new Set<OpId>();
  /** True between {@link beginBulk} and {@link endBulk}: the frontier is computed once, at the end. */
  #bulk = false;
  #maxTime = 0;

  /** Number of applied operations. */
  get size(): number {
    return this.#order.length;
  }

  /** Highest Lamport time among applied operations. */
  get maxTime(): number {
    return this.#maxTime;
  }

  /** True when the operation is applied. */
  has(id: OpId): boolean {
    return this.#byId.has(id);
  }

  /** The applied operation with this id. */
  get(id: OpId): Operation | undefined {
    const pos = this.#byId.get(id);
    return pos === undefined ? undefined : this.#order[pos];
  }

  /** The author's applied operation at `seq` (1-based). */
  at(author: NodeId, seq: number): Operation | undefined {
    return this.#chains.get(author)?.[seq - 1];
  }

  /** The author's last applied operation. */
  tail(author: NodeId): Operation | undefined {
    const chain = this.#chains.get(author);
    return chain?.[chain.length - 1];
  }

  /** Number of applied operations by `author`. */
  countOf(author: NodeId): number {
    return this.#chains.get(author)?.length ?? 0;
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

  /** Applied operations no other applied operation names as `prev` or dependency, sorted. */
  frontier(): OpId[] {
    return [...this.#frontier].sort();
  }

  /** A copy of the frontier, for a mark. */
  frontierSnapshot(): Set<OpId> {
    return new Set(this.#frontier);
  }

  /**
   * Operations a peer with clock `theirs` lacks, in an order it can apply
   * them: time in proportion to authors and missing operations, not log
   * size. When `theirHeads` shows the peer holds a different operation at a
   * position we hold, ours is included so the peer sees the fork.
   */
  opsSince(theirs: VectorClock, theirHeads: ClockHeads = {}): Operation[] {
    const missing: number[] = [];
    for (const [author, chain] of this.#chains) {
      const held = Math.min(theirs[author] ?? 0, chain.length);
      const head = theirHeads[author];
      if (head !== undefined && held > 0 && chain[held - 1].id !== head) {
        missing.push(this.#byId.get(chain[held - 1].id)!);
      }
      for (let seq = held; seq < chain.length; seq++) missing.push(this.#byId.get(chain[seq].id)!);
    }
    return Array.from(Uint32Array.from(missing).sort(), (pos) => this.#order[pos]);
  }

  /**
   * Appends `op` to its author's chain (the caller checked the chain rules).
   * Its `author` and `prev` are set to the equal strings the chain already
   * holds (its first operation's author, its tail's id), so a long chain keeps
   * one copy of each instead of one per operation.
   */
  apply(op: Operation): void {
    const pos = this.#order.length;
    this.#order.push(op);
    this.#byId.set(op.id, pos);
    let chain = this.#chains.get(op.author);
    if (!chain) this.#chains.set(op.author, chain = []);
    else {
      const tail = chain[chain.length - 1];
      op.author = tail.author;
      if (op.prev === tail.id) op.prev = tail.id;
    }
    chain.push(op);
    if (!this.#bulk) {
      if (op.prev !== null) this.#frontier.delete(op.prev);
      for (const dep of op.deps) this.#frontier.delete(dep);
      this.#frontier.add(op.id);
    }
    if (op.time > this.#maxTime) this.#maxTime = op.time;
  }

  /**
   * Starts applying many operations (a load or a rebuild): the frontier is
   * not kept up to date until {@link endBulk}, which computes it once. False
   * (and nothing changes) when a bulk is already under way.
   */
  beginBulk(): boolean {
    if (this.#bulk) return false;
    this.#bulk = true;
    return true;
  }

  /**
   * Ends {@link beginBulk}: the frontier is every chain's last operation that
   * no applied operation names as a dependency (every other one is named as
   * `prev` by the next in its chain), as applying them one by one leaves it.
   */
  endBulk(): void {
    if (!this.#bulk) return;
    this.#bulk = false;
    const named = new Set<OpId>();
    for (const op of this.#order) for (const dep of op.deps) named.add(dep);
    this.#frontier = new Set();
    for (const chain of this.#chains.values()) {
      const tail = chain[chain.length - 1].id;
      if (!named.has(tail)) this.#frontier.add(tail);
    }
  }

  /** Puts `ref` (the same operation, kept on disk) where `op` is applied; false when it is not. */
  replace(op: Operation, ref: Operation): boolean {
    const pos = this.#byId.get(op.id);
    if (pos === undefined || this.#order[pos] !== op) return false;
    this.#order[pos] = ref;
    this.#chains.get(op.author)![op.seq - 1] = ref;
    return true;
  }

  /** Removes the last applied operation, which must be `op` (a rollback). */
  popLast(op: Operation): void {
    const last = this.#order[this.#order.length - 1];
    if (last?.id !== op.id) throw new Error(`Cannot roll back operation ${op.id}: it is not last`);
    this.#byId.delete(op.id);
    this.#order.pop();
    const chain = this.#chains.get(op.author)!;
    chain.pop();
    if (chain.length === 0) this.#chains.delete(op.author);
  }

  /** Restores the frontier and maximum time of a mark, after {@link popLast} calls. */
  restore(frontier: ReadonlySet<OpId>, maxTime: number): void {
    this.#frontier = new Set(frontier);
    this.#maxTime = maxTime;
  }

  /** Empties everything (before a rebuild). */
  clear(): void {
    this.#order = [];
    this.#byId.clear();
    this.#chains.clear();
    this.#frontier = new Set();
    this.#maxTime = 0;
  }
}
