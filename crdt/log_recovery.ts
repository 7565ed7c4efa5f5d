/**
 * Recovery for the operation log: replaying a store into an empty log
 * (finding again the forks its proofs do not show), and the mark / rollback
 * pair that undoes what a failed store write left in memory.
 * @module
 */
import type { NodeId } from "./identity.ts";
import type { Operation, OpId } from "./operation.ts";
import type { AppliedChains } from "./op_log.ts";
import type { Quarantine } from "./forks.ts";
import type { ForkProof } from "./store.ts";

/** A snapshot that `OpLog.rollback` restores. */
export interface LogMark {
  /** How many operations were held. */
  readonly held: number;
  /** The applied chains' maximum time. */
  readonly maxTime: number;
  /** The applied chains' frontier. */
  readonly frontier: ReadonlySet<OpId>;
  /** The fork proofs known. */
  readonly forks: ReadonlyMap<NodeId, ForkProof>;
  /** The rebuild generation. */
  readonly generation: number;
}

/** A stored operation `OpLog.load` could not place, with its position in the input. */
export interface UnplacedOperation {
  /** Position in the loaded sequence (0-based). */
  index: number;
  /** The operation. */
  op: Operation;
  /** Why it could not be placed. */
  reason: string;
}

/** What the log holds: every held operation in acceptance order, split into applied and quarantined. */
export interface HeldState {
  /** Every held operation (applied or quarantined) in the order it was accepted. */
  readonly held: Operation[];
  /** The applied ones. */
  readonly applied: AppliedChains;
  /** The quarantined ones. */
  readonly quarantine: Quarantine;
}

/** Takes a mark of `state`. */
export function takeMark(
  state: HeldState,
  forks: ReadonlyMap<NodeId, ForkProof>,
  generation: number,
): LogMark {
  return {
    held: state.held.length,
    maxTime: state.applied.maxTime,
    frontier: state.applied.frontierSnapshot(),
    forks: new Map(forks),
    generation,
  };
}

/**
 * Undoes, newest first, every operation held since `mark`. Only valid when
 * the derived state was not rebuilt since (same generation); otherwise the
 * caller truncates `held` and rebuilds.
 */
export function undoSince(state: HeldState, mark: LogMark): void {
  while (state.held.length > mark.held) {
    const op = state.held.pop()!;
    if (!state.quarantine.remove(op.id)) state.applied.popLast(op);
  }
  state.applied.restore(mark.frontier, mark.maxTime);
}

/** What {@link replayStore} needs of the log: placing operations and recording forks. */
export interface ReplayHost {
  /** Records a fork proof that is valid and new or lower (replay: stored proofs). */
  recordStoredProof(proof: ForkProof): void;
  /** Places one stored operation; returns whether it is now pending or could never apply. */
  place(op: Operation): "placed" | "pending" | "invalid";
  /** Why `op` cannot be placed (for an unplaced operation). */
  reasonFor(op: Operation): string;
  /** True when the operation is held (applied or quarantined). */
  isHeld(id: OpId): boolean;
  /** Takes a parked operation out of the pending buffer. */
  unpark(id: OpId): void;
  /** The author's fork point, if forked. */
  forkPoint(author: NodeId): number | undefined;
  /** The author's applied operation at `seq`. */
  at(author: NodeId, seq: number): Operation | undefined;
  /** Records the fork that `a` and `b` (same author and seq) prove, placing what it releases. */
  fork(proof: ForkProof): void;
}

/**
 * Replays stored operations (in stored order, after the stored fork proofs,
 * so that a forked author's operations go to quarantine again) into an empty
 * log through `host`. An operation left over may sit at a
 * position another one holds: a fork the stored proofs miss (the store keeps
 * an author's first proof), found again here. Returns the operations that
 * still could not be placed, in input order.
 */
export function replayStore(
  host: ReplayHost,
  ops: readonly Operation[],
  proofs: readonly ForkProof[],
): UnplacedOperation[] {
  for (const proof of proofs) host.recordStoredProof(proof);
  const leftovers = new Map<OpId, UnplacedOperation>();
  for (let index = 0; index < ops.length; index++) {
    const op = ops[index];
    const placed = host.place(op);
    if (placed !== "placed") leftovers.set(op.id, { index, op, reason: host.reasonFor(op) });
  }
  for (let changed = true; changed;) {
    changed = false;
    const seats = new Map<string, Operation>();
    for (const [id, left] of leftovers) {
      if (host.isHeld(id)) {
        leftovers.delete(id);
        continue;
      }
      const { op } = left;
      const point = host.forkPoint(op.author);
      if (point !== undefined && op.seq >= point) {
        host.unpark(id);
        host.place(op);
        changed = true;
        continue;
      }
      const seat = `${op.seq}:${op.author}`;
      const rival = host.at(op.author, op.seq) ?? seats.get(seat);
      if (rival !== undefined && rival.id !== op.id) {
        host.unpark(id);
        host.fork({ author: op.author, seq: op.seq, a: rival, b: op });
        changed = true;
        break;
      }
      seats.set(seat, op);
    }
  }
  return [...leftovers.values()].sort((a, b) => a.index - b.index);
}
