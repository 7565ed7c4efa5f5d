/**
 * What the operation log reports for each batch it receives: a status per
 * operation and what changed ({@link BatchResult}).
 * @module
 */
import type { NodeId } from "./identity.ts";
import type { Operation, OpId } from "./operation.ts";
import type { ForkProof } from "./store.ts";

/** What happened to one received operation. */
export type ReceiveStatus =
  /** Verified and applied (now, or released from the pending buffer). */
  | "applied"
  /** Already held or already pending: nothing to do, never forward it again. */
  | "duplicate"
  /** Verified, waiting in the pending buffer for its predecessors. */
  | "pending"
  /**
   * Did not fit (its author's pending quota, the pending buffer, the
   * quarantine or the fork-proof bounds): not held, listed in
   * {@link BatchResult.dropped}; ask the peer for it again.
   */
  | "dropped"
  /** Failed verification (bad id, signature or causal metadata). */
  | "invalid"
  /** The author may not write (trust scope). */
  | "unauthorized"
  /**
   * Conflicts with a held operation at the same position of its author's
   * agreed chain: a fork was detected (or one below the known fork point).
   * The operation is kept in quarantine as evidence.
   */
  | "fork"
  /**
   * By an author caught equivocating, at or after its fork point: kept in
   * quarantine, never applied.
   */
  | "forked-author";

/** The result of receiving a batch (or a fork proof). */
export interface BatchResult {
  /** Operations newly applied (and still applied at the end), in the order they were applied. */
  applied: Operation[];
  /** Status of each input operation, by input position. */
  statuses: ReceiveStatus[];
  /** Fork proofs that are new or lower an author's fork point, at most one per author. */
  forks: ForkProof[];
  /**
   * Operations newly in quarantine: received, evidence of a new fork proof,
   * or moved out of the applied chain by a lower fork point.
   */
  quarantined: Operation[];
  /**
   * What the replica must persist: operations newly held (applied or
   * quarantined) that the store does not hold yet, in an order in which they
   * load again. Operations moved from the applied chain to the quarantine are
   * already stored and not repeated; nor are stored operations that a replay
   * left pending and this call placed.
   */
  held: Operation[];
  /** Applied operations moved to quarantine: the document must be rebuilt from {@link OpLog.all}. */
  rebuilt: boolean;
  /**
   * Operations this call dropped: received ones that did not fit (status
   * `dropped`) and pending ones, received earlier, evicted to make room for
   * an author holding less of the buffer. None is held. A session asks for
   * them again promptly (re-sends its clock) and never records them as held
   * by the peer that sent them.
   */
  dropped: Operation[];
}

/** Work in progress for one call: what changed, and which held operations still release others. */
export interface Work {
  applied: Operation[];
  quarantined: Operation[];
  /** Newly held, in order; `released` is how many of them released their waiters. */
  held: Operation[];
  released: number;
  /** Newly held and not in the store yet. */
  store: Operation[];
  forks: Map<NodeId, ForkProof>;
  rebuilt: boolean;
  dropped: Operation[];
}

export function newWork(): Work {
  return {
    applied: [],
    quarantined: [],
    held: [],
    released: 0,
    store: [],
    forks: new Map(),
    rebuilt: false,
    dropped: [],
  };
}

/** The result of one call from its work; `isApplied` says what is still applied after a rebuild. */
export function batchResult(
  work: Work,
  isApplied: (id: OpId) => boolean,
  statuses: ReceiveStatus[],
): BatchResult {
  return {
    applied: work.rebuilt ? work.applied.filter((op) => isApplied(op.id)) : work.applied,
    statuses,
    forks: [...work.forks.values()],
    quarantined: work.quarantined,
    held: work.store,
    rebuilt: work.rebuilt,
    dropped: work.dropped,
  };
}
