/**
 * The operation log: which operations a replica holds, in what order, its
 * vector clock, causal delivery through a bounded pending buffer, and fork
 * (equivocation) handling. Pure in-memory logic; the replica adds storage.
 *
 * ## Forks
 *
 * An author caught signing two different operations at one position has a
 * **fork point**: the `seq` of the lowest such position known (its fork
 * proof's `seq`, k). Its operations 1..k-1, on which every node can agree,
 * stay applied. Every operation of it at `seq >= k`, on any branch, goes to a
 * bounded **quarantine**: held (so it is stored, survives restarts and is
 * served to peers) but never applied and never counted in the clock. A
 * dependency on a quarantined operation counts as satisfied, so honest
 * operations made on top of either branch apply on every node, and every node
 * ends with the same document and clock whichever branch it saw first.
 *
 * A proof at a lower position than the known one replaces it, so all nodes
 * end with the lowest one known anywhere. When a fork point moves below
 * operations already applied, they move to the quarantine and the derived
 * state (chains, apply order, frontier) is rebuilt from the held operations:
 * O(n), but each rebuild moves at least one of the forker's operations out of
 * its chain, so a fork costs at most as many rebuilds as the forker had
 * applied operations (in practice one).
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
  /** The pending buffer or the quarantine is full: dropped, a peer will send it again. */
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

/** Bounds of a buffer: the pending buffer, or the quarantine. */
export interface PendingLimits {
  /** Most operations held. @default 10000 */
  maxCount?: number;
  /** Most bytes (JSON wire form) held. @default 16 MiB */
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
  /**
   * Bounds of the quarantine of forked authors' operations. Operations moved
   * there from the applied chain count against it but are never dropped.
   */
  quarantine?: PendingLimits;
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

interface QuarantineEntry {
  op: Operation;
  bytes: number;
}

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
   * Every operation newly held (applied or quarantined) in an order in which
   * they can be loaded again: what the replica persists.
   */
  held: Operation[];
  /** Applied operations moved to quarantine: the document must be rebuilt from {@link OpLog.all}. */
  rebuilt: boolean;
}

/** A snapshot that {@link OpLog.rollback} restores. */
export interface LogMark {
  readonly held: number;
  readonly maxTime: number;
  readonly frontier: ReadonlySet<OpId>;
  readonly forks: ReadonlyMap<NodeId, ForkProof>;
  readonly generation: number;
}

/** A stored operation {@link OpLog.load} could not place, with its position in the input. */
export interface UnplacedOperation {
  /** Position in the loaded sequence (0-based). */
  index: number;
  /** The operation. */
  op: Operation;
  /** Why it could not be placed. */
  reason: string;
}

/** Work in progress for one call: what changed, and which held operations still release others. */
interface Work {
  applied: Operation[];
  quarantined: Operation[];
  /** Newly held, in order; `released` is how many of them released their waiters. */
  held: Operation[];
  released: number;
  /** Newly held and not in the store yet. */
  store: Operation[];
  forks: Map<NodeId, ForkProof>;
  rebuilt: boolean;
}

function newWork(): Work {
  return {
    applied: [],
    quarantined: [],
    held: [],
    released: 0,
    store: [],
    forks: new Map(),
    rebuilt: false,
  };
}

const DEFAULT_MAX_COUNT = 10_000;
const DEFAULT_MAX_BYTES = 16 * 1024 * 1024;

/**
 * Holds operations in an order they apply in, and decides for each incoming
 * operation whether it applies now, waits, goes to quarantine, or is refused.
 */
export class OpLog {
  readonly #verifier: SignatureVerifier;
  readonly #mayAuthor: (author: NodeId) => boolean;
  /** Applied operations by id. */
  readonly #byId = new Map<OpId, Entry>();
  /** Each author's applied chain; index seq - 1. */
  readonly #chains = new Map<NodeId, Operation[]>();
  /** Applied operations in apply order. */
  #order: Operation[] = [];
  /** Every held operation (applied or quarantined) in the order it was accepted. */
  readonly #held: Operation[] = [];
  #frontier = new Set<OpId>();
  #maxTime = 0;
  #forks = new Map<NodeId, ForkProof>();
  readonly #quarantine = new Map<OpId, QuarantineEntry>();
  #quarantineBytes = 0;
  /** Bumped whenever the derived state is rebuilt. */
  #generation = 0;
  readonly #pending = new Map<OpId, PendingEntry>();
  readonly #waiters = new Map<OpId, OpId[]>();
  #pendingBytes = 0;
  readonly #maxPendingCount: number;
  readonly #maxPendingBytes: number;
  readonly #maxQuarantineCount: number;
  readonly #maxQuarantineBytes: number;
  /** True while {@link load} runs: stored operations are trusted and no bound applies. */
  #loading = false;
  /** Stored operations {@link load} left pending: not to be stored again once they are placed. */
  readonly #storedUnheld = new Set<OpId>();

  /** Creates an empty log. */
  constructor(options: OpLogOptions) {
    this.#verifier = options.verifier;
    this.#mayAuthor = options.mayAuthor ?? (() => true);
    this.#maxPendingCount = options.pending?.maxCount ?? DEFAULT_MAX_COUNT;
    this.#maxPendingBytes = options.pending?.maxBytes ?? DEFAULT_MAX_BYTES;
    this.#maxQuarantineCount = options.quarantine?.maxCount ?? DEFAULT_MAX_COUNT;
    this.#maxQuarantineBytes = options.quarantine?.maxBytes ?? DEFAULT_MAX_BYTES;
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

  /** Number and bytes of operations in quarantine. */
  quarantineSize(): { count: number; bytes: number } {
    return { count: this.#quarantine.size, bytes: this.#quarantineBytes };
  }

  /** True when the operation is applied. */
  has(id: OpId): boolean {
    return this.#byId.has(id);
  }

  /** The applied operation with this id. */
  get(id: OpId): Operation | undefined {
    return this.#byId.get(id)?.op;
  }

  /** True when the operation is held in quarantine. */
  isQuarantined(id: OpId): boolean {
    return this.#quarantine.has(id);
  }

  /** Operations in quarantine, in the order they entered it. */
  quarantined(): Operation[] {
    return [...this.#quarantine.values()].map((entry) => entry.op);
  }

  /** The author's applied operation at `seq` (1-based). */
  at(author: NodeId, seq: number): Operation | undefined {
    return this.#chains.get(author)?.[seq - 1];
  }

  /** Applied operations in apply order. */
  all(): readonly Operation[] {
    return this.#order;
  }

  /** Author -> count of applied operations (for a forked author, at most its fork point - 1). */
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
   * The operation `author`'s next one follows: its last applied one, or,
   * once it is forked, its highest held one (its quarantined line), so that a
   * forked node's own new operations never repeat one it already signed.
   */
  tipOf(author: NodeId): Operation | undefined {
    const chain = this.#chains.get(author);
    let tip = chain?.[chain.length - 1];
    if (this.#forks.has(author)) {
      for (const { op } of this.#quarantine.values()) {
        if (op.author === author && (tip === undefined || op.seq > tip.seq)) tip = op;
      }
    }
    return tip;
  }

  /**
   * The current frontier: applied operations that no other applied operation
   * names as `prev` or dependency. New local operations depend on it, so they
   * never depend on a quarantined operation.
   */
  frontier(): OpId[] {
    return [...this.#frontier].sort();
  }

  /** Fork proofs known, one per equivocating author (the lowest known). */
  forks(): ForkProof[] {
    return [...this.#forks.values()];
  }

  /** True when `author` has been caught equivocating. */
  isForked(author: NodeId): boolean {
    return this.#forks.has(author);
  }

  /** The author's fork point (the seq from which its operations are quarantined), if forked. */
  forkPoint(author: NodeId): number | undefined {
    return this.#forks.get(author)?.seq;
  }

  /**
   * Operations a peer with clock `theirs` lacks, in an order it can apply them.
   * Costs time in proportion to the number of authors and of missing
   * operations, not to the log size. When `theirHeads` shows the peer holds a
   * different operation at a position we hold, ours is included so the peer
   * sees the fork. Quarantined operations are never included (see
   * {@link quarantineToSend}).
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

  /**
   * `ops` (quarantined operations) with, before each author's first one, the
   * last operation of that author's agreed chain (at its fork point - 1) when
   * held. A peer that holds a different operation there detects a fork below
   * the one it knows, so all nodes settle on the same agreed chain.
   */
  withAnchors(ops: readonly Operation[]): Operation[] {
    const out: Operation[] = [];
    const anchored = new Set<NodeId>();
    for (const op of ops) {
      if (!anchored.has(op.author)) {
        anchored.add(op.author);
        const point = this.#forks.get(op.author)?.seq;
        const anchor = point !== undefined && point > 1 ? this.at(op.author, point - 1) : undefined;
        if (anchor !== undefined) out.push(anchor);
      }
      out.push(op);
    }
    return out;
  }

  /** Every quarantined operation with its anchors: what a session sends a peer after the fork proofs. */
  quarantineToSend(): Operation[] {
    return this.withAnchors(this.quarantined());
  }

  /**
   * Checks a fork proof and records it when it is new or lowers the author's
   * fork point. Returns what changed, or `undefined` for an invalid proof or
   * one at or above the known fork point.
   */
  addForkProof(proof: ForkProof): BatchResult | undefined {
    const known = this.#forks.get(proof.author);
    if (known !== undefined && known.seq <= proof.seq) return undefined;
    if (!this.#validProof(proof)) return undefined;
    const work = newWork();
    this.#fork(proof, work);
    this.#drain(work);
    return this.#result(work, []);
  }

  #validProof(proof: ForkProof): boolean {
    const { a, b } = proof;
    return a.author === proof.author && b.author === proof.author && a.seq === proof.seq &&
      b.seq === proof.seq && a.id !== b.id && verifyOperation(a, this.#verifier) &&
      verifyOperation(b, this.#verifier);
  }

  /** Snapshot for {@link OpLog.rollback}. */
  mark(): LogMark {
    return {
      held: this.#held.length,
      maxTime: this.#maxTime,
      frontier: new Set(this.#frontier),
      forks: new Map(this.#forks),
      generation: this.#generation,
    };
  }

  /**
   * Undoes everything held since `mark` (used when persisting it failed),
   * including fork points set since. Operations released from the pending
   * buffer are not restored.
   */
  rollback(mark: LogMark): void {
    this.#forks = new Map(mark.forks);
    if (mark.generation !== this.#generation) {
      // The derived state was rebuilt since the mark: rebuild it again from what was held then.
      this.#held.length = mark.held;
      this.#rebuild();
      return;
    }
    while (this.#held.length > mark.held) {
      const op = this.#held.pop()!;
      const quarantined = this.#quarantine.get(op.id);
      if (quarantined) {
        this.#quarantine.delete(op.id);
        this.#quarantineBytes -= quarantined.bytes;
        continue;
      }
      this.#order.pop();
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
    const work = newWork();
    const toVerify: number[] = [];
    const seen = new Set<OpId>();
    for (let i = 0; i < ops.length; i++) {
      const op = ops[i];
      if (
        this.#byId.has(op.id) || this.#pending.has(op.id) || this.#quarantine.has(op.id) ||
        seen.has(op.id)
      ) {
        statuses[i] = "duplicate";
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
    return this.#result(work, statuses);
  }

  /**
   * Applies a locally created operation that is already trusted, or, when its
   * author is forked and it is at or after the fork point, quarantines it
   * (without bound: it is the replica's own). Throws when it does not apply in
   * order (a caller bug).
   */
  applyTrusted(op: Operation): "applied" | "forked-author" {
    const point = this.#forks.get(op.author)?.seq;
    if (point !== undefined && op.seq >= point) {
      if (this.#byId.has(op.id) || this.#quarantine.has(op.id)) {
        throw new Error(`Cannot apply operation ${op.id}: it is already held`);
      }
      const bytes = encodeOperation(op).length;
      this.#quarantine.set(op.id, { op, bytes });
      this.#quarantineBytes += bytes;
      this.#held.push(op);
      return "forked-author";
    }
    const problem = this.#blocker(op);
    if (problem !== undefined) {
      throw new Error(`Cannot apply operation ${op.id}: ${problem}`);
    }
    this.#apply(op);
    this.#held.push(op);
    return "applied";
  }

  /**
   * Loads stored operations into an empty log, in their stored order, after
   * the stored fork proofs, so that a forked author's operations go to
   * quarantine again. Stored operations are trusted (the caller checks ids;
   * signatures are not re-checked) and no bound applies. A fork that the
   * stored proofs do not show (a lower one; the store keeps an author's first
   * proof) is found again from the two stored operations that prove it.
   *
   * Returns the operations that could not be placed: out of order, or (only
   * when a fork is involved) waiting for something a peer will send again;
   * those are kept pending and not stored again when they are placed.
   */
  load(ops: readonly Operation[], proofs: readonly ForkProof[]): UnplacedOperation[] {
    if (this.#held.length > 0) throw new Error("Cannot load operations: the log is not empty");
    this.#loading = true;
    try {
      const work = newWork();
      for (const proof of proofs) {
        const known = this.#forks.get(proof.author);
        if ((known === undefined || proof.seq < known.seq) && this.#validProof(proof)) {
          this.#fork(proof, work);
        }
      }
      const leftovers = new Map<OpId, UnplacedOperation>();
      for (let index = 0; index < ops.length; index++) {
        const op = ops[index];
        const status = this.#admit(op, work);
        this.#drain(work);
        if (status === "pending") {
          leftovers.set(op.id, {
            index,
            op,
            reason: `waits for ${this.#pending.get(op.id)?.waitingOn}`,
          });
        } else if (status === "invalid") {
          leftovers.set(op.id, { index, op, reason: this.#blocker(op)?.slice(1) ?? "invalid" });
        }
      }
      // An operation left over may sit at a position another one holds: a fork the proofs miss.
      for (let changed = true; changed;) {
        changed = false;
        const seats = new Map<string, Operation>();
        for (const [id, left] of leftovers) {
          if (this.#byId.has(id) || this.#quarantine.has(id)) {
            leftovers.delete(id);
            continue;
          }
          const { op } = left;
          const point = this.#forks.get(op.author)?.seq;
          if (point !== undefined && op.seq >= point) {
            this.#unpark(id);
            this.#admit(op, work);
            this.#drain(work);
            changed = true;
            continue;
          }
          const seat = `${op.seq}:${op.author}`;
          const rival = this.at(op.author, op.seq) ?? seats.get(seat);
          if (rival !== undefined && rival.id !== op.id) {
            this.#unpark(id);
            this.#fork({ author: op.author, seq: op.seq, a: rival, b: op }, work);
            this.#drain(work);
            changed = true;
            break;
          }
          seats.set(seat, op);
        }
      }
      const unplaced = [...leftovers.values()].sort((a, b) => a.index - b.index);
      for (const left of unplaced) {
        if (this.#pending.has(left.op.id)) this.#storedUnheld.add(left.op.id);
      }
      return unplaced;
    } finally {
      this.#loading = false;
    }
  }

  /**
   * What stops `op` from joining its author's chain now: `undefined` when it
   * applies, an id it waits for, or a reason it can never apply (prefixed
   * with "!"). A dependency held in quarantine counts as present.
   */
  #blocker(op: Operation): string | undefined {
    const chain = this.#chains.get(op.author);
    const count = chain?.length ?? 0;
    if (op.seq <= count) return `!position ${op.seq} of ${op.author} is taken`;
    if (op.seq > count + 1) return op.prev!;
    if (op.seq > 1 && chain![count - 1].id !== op.prev) return op.prev!;
    for (const dep of op.deps) {
      if (!this.#byId.has(dep) && !this.#quarantine.has(dep)) return dep;
    }
    if (op.seq > 1 && op.time <= chain![count - 1].time) return "!time does not increase";
    for (const dep of op.deps) {
      const held = this.#byId.get(dep)?.op ?? this.#quarantine.get(dep)!.op;
      if (op.time <= held.time) return "!time is not after a dependency";
    }
    return undefined;
  }

  /** Places one verified (or trusted) operation: applies, quarantines, parks or refuses it. */
  #admit(op: Operation, work: Work): ReceiveStatus {
    if (this.#byId.has(op.id) || this.#quarantine.has(op.id) || this.#pending.has(op.id)) {
      return "duplicate";
    }
    const point = this.#forks.get(op.author)?.seq;
    if (point !== undefined && op.seq >= point) return this.#enterQuarantine(op, work);
    const held = this.at(op.author, op.seq);
    if (held !== undefined) {
      // A second operation at a position of the agreed chain: a fork, below any known one.
      this.#fork({ author: op.author, seq: op.seq, a: held, b: op }, work);
      return "fork";
    }
    const blocker = this.#blocker(op);
    if (blocker === undefined) {
      this.#apply(op);
      work.applied.push(op);
      this.#hold(op, work);
      return "applied";
    }
    if (blocker.startsWith("!")) return "invalid";
    return this.#park(op, blocker) ? "pending" : "dropped";
  }

  #enterQuarantine(op: Operation, work: Work): ReceiveStatus {
    const bytes = encodeOperation(op).length;
    if (
      !this.#loading && (this.#quarantine.size >= this.#maxQuarantineCount ||
        this.#quarantineBytes + bytes > this.#maxQuarantineBytes)
    ) return "dropped";
    this.#quarantine.set(op.id, { op, bytes });
    this.#quarantineBytes += bytes;
    work.quarantined.push(op);
    this.#hold(op, work);
    return "forked-author";
  }

  #hold(op: Operation, work: Work): void {
    this.#held.push(op);
    work.held.push(op);
    if (!this.#storedUnheld.delete(op.id)) work.store.push(op);
  }

  /**
   * Records `proof` when it is new or lowers the author's fork point: applied
   * operations at or after it move to quarantine (rebuilding the derived
   * state), both operations of the proof are kept as evidence, and the
   * author's pending operations at or after it are placed again.
   */
  #fork(proof: ForkProof, work: Work): boolean {
    const known = this.#forks.get(proof.author);
    if (known !== undefined && known.seq <= proof.seq) return false;
    const ordered = proof.a.id < proof.b.id ? proof : { ...proof, a: proof.b, b: proof.a };
    this.#forks.set(proof.author, ordered);
    work.forks.set(proof.author, ordered);
    const chain = this.#chains.get(proof.author);
    if (chain !== undefined && chain.length >= proof.seq) {
      const moved = chain.slice(proof.seq - 1);
      this.#rebuild();
      work.quarantined.push(...moved);
      work.rebuilt = true;
    }
    // Evidence: with both signed operations held (and so stored), the fork is found again after
    // a restart even when the store kept an earlier, higher proof; peers receive them too.
    if (this.#mayAuthor(proof.author)) {
      for (const op of [ordered.a, ordered.b]) {
        if (!this.#byId.has(op.id) && !this.#quarantine.has(op.id) && !this.#pending.has(op.id)) {
          this.#enterQuarantine(op, work);
        }
      }
    }
    const waiting: Operation[] = [];
    for (const entry of this.#pending.values()) {
      if (entry.op.author === proof.author && entry.op.seq >= proof.seq) waiting.push(entry.op);
    }
    for (const op of waiting) {
      if (this.#unpark(op.id)) this.#admit(op, work);
    }
    return true;
  }

  /**
   * Rebuilds the derived state (chains, apply order, frontier, quarantine)
   * from the held operations under the current fork points. O(n).
   */
  #rebuild(): void {
    this.#generation++;
    this.#order = [];
    this.#byId.clear();
    this.#chains.clear();
    this.#frontier = new Set();
    this.#maxTime = 0;
    this.#quarantine.clear();
    this.#quarantineBytes = 0;
    for (const op of this.#held) {
      const point = this.#forks.get(op.author)?.seq;
      if (point !== undefined && op.seq >= point) {
        const bytes = encodeOperation(op).length;
        this.#quarantine.set(op.id, { op, bytes });
        this.#quarantineBytes += bytes;
      } else {
        this.#apply(op);
      }
    }
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
      !this.#loading && (this.#pending.size >= this.#maxPendingCount ||
        this.#pendingBytes + bytes > this.#maxPendingBytes)
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
    const list = this.#waiters.get(entry.waitingOn);
    if (list) {
      const at = list.indexOf(id);
      if (at >= 0) list.splice(at, 1);
      if (list.length === 0) this.#waiters.delete(entry.waitingOn);
    }
    return entry;
  }

  /** Re-examines operations that waited on newly held ones (and, transitively, what they release). */
  #drain(work: Work): void {
    while (work.released < work.held.length) {
      const id = work.held[work.released++].id;
      const waiting = this.#waiters.get(id);
      if (!waiting) continue;
      this.#waiters.delete(id);
      for (const pendingId of waiting) {
        const entry = this.#unpark(pendingId);
        if (entry) this.#admit(entry.op, work);
      }
    }
  }

  #result(work: Work, statuses: ReceiveStatus[]): BatchResult {
    return {
      applied: work.rebuilt ? work.applied.filter((op) => this.#byId.has(op.id)) : work.applied,
      statuses,
      forks: [...work.forks.values()],
      quarantined: work.quarantined,
      held: work.store,
      rebuilt: work.rebuilt,
    };
  }
}
