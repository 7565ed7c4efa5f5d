/**
 * The operation log: which operations a replica holds, in what order, and
 * for each incoming operation whether it applies now, waits, goes to
 * quarantine, or is refused. Pure in-memory logic; the replica adds storage.
 * The concerns live in their own modules: queries (`log_view.ts`), applied
 * chains and clock (`op_log.ts`), the bounded pending buffer (`pending_buffer.ts`), forks and
 * quarantine (`forks.ts`), replay and rollback (`log_recovery.ts`) and the
 * chain rules (`chain_check.ts`, shared with `huskies verify`).
 *
 * Forks: see `forks.ts`.
 * @module
 */
import { type ChainVerdict, checkChain, describeVerdict } from "./chain_check.ts";
import {
  type ForkProofLimits,
  isValidForkProof,
  orderedProof,
  proofFits,
  Quarantine,
} from "./forks.ts";
import type { NodeId, SignatureVerifier } from "./identity.ts";
import {
  type HeldState,
  type LogMark,
  replayStore,
  takeMark,
  undoSince,
  type UnplacedOperation,
} from "./log_recovery.ts";
import { LogView } from "./log_view.ts";
import { AppliedChains } from "./op_log.ts";
import { encodedSize, type Operation, OPERATION_LIMITS, type OpId } from "./operation.ts";
import { verifyBatch, verifyOperation } from "./signatures.ts";
import { PendingBuffer, type PendingLimits } from "./pending_buffer.ts";
import type { ForkProof } from "./store.ts";
import {
  type BatchResult,
  batchResult,
  newWork,
  type ReceiveStatus,
  type Work,
} from "./batch_result.ts";

export type { BatchResult, ReceiveStatus } from "./batch_result.ts";
export type { PendingLimits } from "./pending_buffer.ts";
export type { LogMark, UnplacedOperation } from "./log_recovery.ts";

/** Options for {@link OpLog}. */
export interface OpLogOptions {
  /** Checks signatures. */
  verifier: SignatureVerifier;
  /** Whether an author may write; unauthorised operations are refused. @default everyone */
  mayAuthor?: (author: NodeId) => boolean;
  /** Pending buffer bounds. */
  pending?: PendingLimits;
  /**
   * Bounds of the quarantine of forked authors' operations. Operations moved
   * there from the applied chain count against it but are never dropped.
   */
  quarantine?: PendingLimits;
  /** Bounds of the fork proofs held; a new proof beyond them is refused. */
  forkProofs?: ForkProofLimits;
}

/**
 * Holds operations in an order they apply in, and decides for each incoming
 * operation whether it applies now, waits, goes to quarantine, or is refused.
 */
export class OpLog extends LogView {
  readonly #verifier: SignatureVerifier;
  readonly #mayAuthor: (author: NodeId) => boolean;
  protected readonly applied = new AppliedChains();
  protected readonly pending: PendingBuffer;
  protected readonly quarantine: Quarantine;
  readonly #proofLimits: ForkProofLimits;
  /** Every held operation (applied or quarantined) in the order it was accepted. */
  readonly #held: Operation[] = [];
  protected forkProofs = new Map<NodeId, ForkProof>();
  /** Bumped whenever the derived state is rebuilt. */
  #generation = 0;
  /** True while {@link load} runs: stored operations are trusted and no bound applies. */
  #loading = false;
  /** Stored operations {@link load} left pending: not to be stored again once they are placed. */
  readonly #storedUnheld = new Set<OpId>();

  /** Creates an empty log. */
  constructor(options: OpLogOptions) {
    super();
    this.#verifier = options.verifier;
    this.#mayAuthor = options.mayAuthor ?? (() => true);
    this.pending = new PendingBuffer(options.pending);
    this.quarantine = new Quarantine(options.quarantine);
    this.#proofLimits = options.forkProofs ?? {};
  }

  get #state(): HeldState {
    return { held: this.#held, applied: this.applied, quarantine: this.quarantine };
  }

  /**
   * Checks a fork proof and records it when it is new or lowers the author's
   * fork point. Returns what changed, or `undefined` for a proof that is
   * invalid, about an author who may not write, at or above the known fork
   * point, or beyond the proof bounds (refused, not stored).
   */
  addForkProof(proof: ForkProof): BatchResult | undefined {
    const known = this.forkProofs.get(proof.author);
    if (known !== undefined && known.seq <= proof.seq) return undefined;
    if (!this.#mayAuthor(proof.author) || !isValidForkProof(proof, this.#verifier)) {
      return undefined;
    }
    const work = newWork();
    if (!this.#fork(proof, work)) return undefined;
    this.#drain(work);
    return batchResult(work, (id) => this.applied.has(id), []);
  }

  /** Snapshot for {@link OpLog.rollback}. */
  mark(): LogMark {
    return takeMark(this.#state, this.forkProofs, this.#generation);
  }

  /**
   * Undoes everything held since `mark` (used when persisting it failed),
   * including fork points set since. Operations released from the pending
   * buffer are not restored.
   */
  rollback(mark: LogMark): void {
    this.forkProofs = new Map(mark.forks);
    if (mark.generation !== this.#generation) {
      // The derived state was rebuilt since the mark: rebuild it again from what was held then.
      this.#held.length = mark.held;
      this.#rebuild();
      return;
    }
    undoSince(this.#state, mark);
  }

  /**
   * Receives operations from outside. With `amortise`, contiguous runs of one
   * author are authenticated by the signature of their last operation (see
   * `verifyBatch`); otherwise each signature is checked.
   */
  receive(ops: readonly Operation[], amortise: boolean): BatchResult {
    const statuses = new Array<ReceiveStatus>(ops.length);
    const work = newWork();
    const toVerify: number[] = [];
    const seen = new Set<OpId>();
    for (let i = 0; i < ops.length; i++) {
      const op = ops[i];
      if (this.#isKnown(op.id) || seen.has(op.id)) {
        statuses[i] = "duplicate";
      } else if (encodedSize(op) > OPERATION_LIMITS.maxBytes) {
        statuses[i] = "invalid"; // parseOperation refuses these; this guards every other path in
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
      statuses[i] = valid[k] ? this.#admit(ops[i], work) : "invalid";
      this.#drain(work);
    }
    if (work.dropped.length > 0) {
      // An operation parked earlier in this batch may have been evicted since.
      const dropped = new Set(work.dropped.map((op) => op.id));
      for (let i = 0; i < ops.length; i++) {
        if (statuses[i] === "pending" && dropped.has(ops[i].id)) statuses[i] = "dropped";
      }
    }
    return batchResult(work, (id) => this.applied.has(id), statuses);
  }

  /**
   * Applies a locally created operation that is already trusted, or, when its
   * author is forked and it is at or after the fork point, quarantines it
   * (without bound: it is the replica's own). Throws when it does not apply in
   * order (a caller bug).
   */
  applyTrusted(op: Operation): "applied" | "forked-author" {
    const point = this.forkProofs.get(op.author)?.seq;
    if (point !== undefined && op.seq >= point) {
      if (this.applied.has(op.id) || this.quarantine.has(op.id)) {
        throw new Error(`Cannot apply operation ${op.id}: it is already held`);
      }
      this.quarantine.add(op, true);
      this.#held.push(op);
      return "forked-author";
    }
    const verdict = this.#check(op);
    if (verdict.kind !== "ready") {
      throw new Error(`Cannot apply operation ${op.id}: ${describeVerdict(op, verdict)}`);
    }
    this.applied.apply(op);
    this.#held.push(op);
    return "applied";
  }

  /**
   * Holds `refs[i]` (a light reference to the stored `ops[i]`, see
   * `stored_operation.ts`) in place of `ops[i]` where `ops[i]` is applied, so
   * that the operation itself can be let go. `ops` were just held (a
   * batch's `held`, or own operations just signed).
   */
  useReferences(ops: readonly Operation[], refs: readonly Operation[]): void {
    const swap = new Map<Operation, Operation>();
    for (let i = 0; i < ops.length; i++) {
      if (this.applied.replace(ops[i], refs[i])) swap.set(ops[i], refs[i]);
    }
    // They are among the last held (with at most a few pending ones stored before, see load).
    const held = this.#held;
    const stop = Math.max(0, held.length - 2 * ops.length - 64);
    for (let i = held.length - 1; i >= stop && swap.size > 0; i--) {
      const op = held[i];
      const ref = swap.get(op);
      if (ref === undefined) continue;
      held[i] = ref;
      swap.delete(op);
    }
  }

  /** Every held operation (applied or quarantined), in the order it was accepted. */
  held(): readonly Operation[] {
    return this.#held;
  }

  /**
   * Loads stored operations into an empty log (see `replayStore`): stored
   * operations are trusted (the caller checks ids) and no bound applies.
   * Returns the operations that could not be placed: out of order, or (only
   * when a fork is involved) waiting for something a peer will send again;
   * those are kept pending and not stored again when they are placed.
   */
  load(ops: readonly Operation[], proofs: readonly ForkProof[]): UnplacedOperation[] {
    if (this.#held.length > 0) throw new Error("Cannot load operations: the log is not empty");
    this.#loading = true;
    this.applied.beginBulk();
    try {
      const work = newWork();
      const unplaced = replayStore(
        {
          recordStoredProof: (proof) => {
            const known = this.forkProofs.get(proof.author);
            if (
              (known === undefined || proof.seq < known.seq) && this.#mayAuthor(proof.author) &&
              isValidForkProof(proof, this.#verifier)
            ) this.#fork(proof, work);
          },
          place: (op) => {
            const status = this.#admit(op, work);
            this.#drain(work);
            return status === "pending" ? "pending" : status === "invalid" ? "invalid" : "placed";
          },
          reasonFor: (op) => {
            const waiting = this.pending.get(op.id)?.waitingOn;
            return waiting !== undefined
              ? `waits for ${waiting}`
              : describeVerdict(op, this.#check(op));
          },
          isHeld: (id) => this.applied.has(id) || this.quarantine.has(id),
          unpark: (id) => void this.pending.unpark(id),
          forkPoint: (author) => this.forkPoint(author),
          at: (author, seq) => this.at(author, seq),
          fork: (proof) => {
            this.#fork(proof, work);
            this.#drain(work);
          },
        },
        ops,
        proofs,
      );
      for (const left of unplaced) {
        if (this.pending.has(left.op.id)) this.#storedUnheld.add(left.op.id);
      }
      return unplaced;
    } finally {
      this.applied.endBulk();
      this.#loading = false;
    }
  }

  #isKnown(id: OpId): boolean {
    return this.applied.has(id) || this.pending.has(id) || this.quarantine.has(id);
  }

  /** The chain rules for `op` against its author's applied chain; quarantined deps count as held. */
  #check(op: Operation): ChainVerdict {
    return checkChain(
      op,
      this.applied.tail(op.author),
      (id) => (this.applied.get(id) ?? this.quarantine.get(id))?.time,
    );
  }

  /** Places one verified (or trusted) operation: applies, quarantines, parks or refuses it. */
  #admit(op: Operation, work: Work): ReceiveStatus {
    if (this.#isKnown(op.id)) return "duplicate";
    const point = this.forkProofs.get(op.author)?.seq;
    if (point !== undefined && op.seq >= point) return this.#enterQuarantine(op, work);
    const held = this.at(op.author, op.seq);
    if (held !== undefined) {
      // A second operation at a position of the agreed chain: a fork, below any known one.
      if (this.#fork({ author: op.author, seq: op.seq, a: held, b: op }, work)) return "fork";
      work.dropped.push(op);
      return "dropped";
    }
    const verdict = this.#check(op);
    switch (verdict.kind) {
      case "ready":
        this.applied.apply(op);
        work.applied.push(op);
        this.#hold(op, work);
        return "applied";
      case "waiting": {
        const { parked, evicted } = this.pending.park(op, verdict.on, this.#loading);
        for (const entry of evicted) work.dropped.push(entry.op);
        if (parked) return "pending";
        work.dropped.push(op);
        return "dropped";
      }
      case "taken":
      case "broken":
        return "invalid";
    }
  }

  #enterQuarantine(op: Operation, work: Work): ReceiveStatus {
    if (!this.quarantine.add(op, this.#loading)) {
      work.dropped.push(op);
      return "dropped";
    }
    work.quarantined.push(op);
    this.#hold(op, work);
    return "forked-author";
  }

  #hold(op: Operation, work: Work): void {
    this.#held.push(op);
    work.held.push(op);
    if (this.#loading) return; // loaded from the store: nothing to store again
    if (this.#storedUnheld.size === 0 || !this.#storedUnheld.delete(op.id)) work.store.push(op);
  }

  /**
   * Records `proof` when it is new or lowers the author's fork point: applied
   * operations at or after it move to quarantine (rebuilding the derived
   * state), both operations of the proof are kept as evidence, and the
   * author's pending operations at or after it are placed again. False (and
   * nothing changes) when it is not lower or would pass the proof bounds.
   */
  #fork(proof: ForkProof, work: Work): boolean {
    const known = this.forkProofs.get(proof.author);
    if (known !== undefined && known.seq <= proof.seq) return false;
    if (!this.#loading && !proofFits(this.forkProofs, proof, this.#proofLimits)) return false;
    const ordered = orderedProof(proof);
    this.forkProofs.set(proof.author, ordered);
    work.forks.set(proof.author, ordered);
    if (this.applied.countOf(proof.author) >= proof.seq) {
      const moved: Operation[] = [];
      for (let seq = proof.seq; seq <= this.applied.countOf(proof.author); seq++) {
        moved.push(this.applied.at(proof.author, seq)!);
      }
      this.#rebuild();
      work.quarantined.push(...moved);
      work.rebuilt = true;
    }
    // Evidence: with both signed operations held (and so stored), the fork is found again after
    // a restart even when the store kept an earlier, higher proof; peers receive them too.
    for (const op of [ordered.a, ordered.b]) {
      if (!this.#isKnown(op.id)) this.#enterQuarantine(op, work);
    }
    const waiting: Operation[] = [];
    for (const entry of this.pending.entries()) {
      if (entry.op.author === proof.author && entry.op.seq >= proof.seq) waiting.push(entry.op);
    }
    for (const op of waiting) {
      if (this.pending.unpark(op.id)) this.#admit(op, work);
    }
    return true;
  }

  /**
   * Rebuilds the derived state (chains, apply order, frontier, quarantine)
   * from the held operations under the current fork points. O(n).
   */
  #rebuild(): void {
    this.#generation++;
    this.applied.clear();
    this.quarantine.clear();
    const bulk = this.applied.beginBulk();
    for (const op of this.#held) {
      const point = this.forkProofs.get(op.author)?.seq;
      if (point !== undefined && op.seq >= point) this.quarantine.add(op, true);
      else this.applied.apply(op);
    }
    if (bulk) this.applied.endBulk();
  }

  /** Re-examines operations that waited on newly held ones (and, transitively, what they release). */
  #drain(work: Work): void {
    while (work.released < work.held.length) {
      const id = work.held[work.released++].id;
      for (const entry of this.pending.release(id)) this.#admit(entry.op, work);
    }
  }
}
