/**
 * Forks (equivocation): fork points, the quarantine of forked authors'
 * operations, fork-proof checks and anchors. See `log.ts` for how the log
 * uses them.
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
import type { NodeId, SignatureVerifier } from "./identity.ts";
import {
  encodedSize,
  encodeOperation,
  type Operation,
  OPERATION_LIMITS,
  type OpId,
} from "./operation.ts";
import { verifyOperation } from "./signatures.ts";
import { DEFAULT_MAX_BYTES, DEFAULT_MAX_COUNT, type PendingLimits } from "./pending_buffer.ts";
import type { ForkProof } from "./store.ts";

/**
 * True when `proof` shows its author signing two different operations at
 * `proof.seq`: both are by the author, at that seq, differ, are within the
 * operation size limit (canonical encoding), and carry valid ids and
 * signatures. Whether the author may write is the caller's check.
 */
export function isValidForkProof(proof: ForkProof, verifier: SignatureVerifier): boolean {
  const { a, b } = proof;
  return a.author === proof.author && b.author === proof.author && a.seq === proof.seq &&
    b.seq === proof.seq && a.id !== b.id && encodedSize(a) <= OPERATION_LIMITS.maxBytes &&
    encodedSize(b) <= OPERATION_LIMITS.maxBytes && verifyOperation(a, verifier) &&
    verifyOperation(b, verifier);
}

/** Bounds of the fork proofs a log holds (and so stores and sends). */
export interface ForkProofLimits {
  /** Most proofs (one per forked author). @default 256 */
  maxCount?: number;
  /** Most bytes of proofs (canonical encodings of both operations). @default 8 MiB */
  maxBytes?: number;
}

/** Default {@link ForkProofLimits.maxCount}. */
export const DEFAULT_MAX_PROOFS = 256;
/** Default {@link ForkProofLimits.maxBytes}. */
export const DEFAULT_MAX_PROOF_BYTES = 8 * 1024 * 1024;

/** Bytes a proof counts against {@link ForkProofLimits.maxBytes}. */
export function proofBytes(proof: ForkProof): number {
  return encodedSize(proof.a) + encodedSize(proof.b);
}

/**
 * True when `known` (author -> proof) with `proof` added, or replacing its
 * author's, stays within `limits`.
 */
export function proofFits(
  known: ReadonlyMap<NodeId, ForkProof>,
  proof: ForkProof,
  limits: ForkProofLimits = {},
): boolean {
  const replaced = known.get(proof.author);
  const count = known.size + (replaced === undefined ? 1 : 0);
  if (count > (limits.maxCount ?? DEFAULT_MAX_PROOFS)) return false;
  let bytes = proofBytes(proof);
  for (const [author, held] of known) if (author !== proof.author) bytes += proofBytes(held);
  return bytes <= (limits.maxBytes ?? DEFAULT_MAX_PROOF_BYTES);
}

/** The proof with its two operations in canonical order (smaller id first). */
export function orderedProof(proof: ForkProof): ForkProof {
  return proof.a.id < proof.b.id ? proof : { ...proof, a: proof.b, b: proof.a };
}

/** A quarantined operation and its wire size. */
interface QuarantineEntry {
  op: Operation;
  bytes: number;
}

/** Forked authors' operations from their fork point on: held, never applied, bounded. */
export class Quarantine {
  readonly #entries = new Map<OpId, QuarantineEntry>();
  #bytes = 0;
  readonly #maxCount: number;
  readonly #maxBytes: number;

  /** Creates an empty quarantine with these bounds. */
  constructor(limits: PendingLimits = {}) {
    this.#maxCount = limits.maxCount ?? DEFAULT_MAX_COUNT;
    this.#maxBytes = limits.maxBytes ?? DEFAULT_MAX_BYTES;
  }

  /** Number of operations held. */
  get count(): number {
    return this.#entries.size;
  }

  /** Bytes of operations held. */
  get bytes(): number {
    return this.#bytes;
  }

  /** True when the operation is held here. */
  has(id: OpId): boolean {
    // An empty Map still hashes the id: the log asks this of every operation it loads.
    return this.#entries.size > 0 && this.#entries.has(id);
  }

  /** The quarantined operation with this id. */
  get(id: OpId): Operation | undefined {
    return this.#entries.get(id)?.op;
  }

  /** Operations held, in the order they entered. */
  operations(): Operation[] {
    return [...this.#entries.values()].map((entry) => entry.op);
  }

  /**
   * Adds `op`; returns false (adding nothing) when that would pass a bound,
   * unless `unbounded` (the replica's own operations, a store replay, or
   * operations moved out of the applied chain).
   */
  add(op: Operation, unbounded = false): boolean {
    const bytes = encodeOperation(op).length;
    if (
      !unbounded && (this.#entries.size >= this.#maxCount || this.#bytes + bytes > this.#maxBytes)
    ) return false;
    this.#entries.set(op.id, { op, bytes });
    this.#bytes += bytes;
    return true;
  }

  /** Removes `op` (a rollback); true when it was held. */
  remove(id: OpId): boolean {
    const entry = this.#entries.get(id);
    if (!entry) return false;
    this.#entries.delete(id);
    this.#bytes -= entry.bytes;
    return true;
  }

  /** Empties the quarantine (before a rebuild). */
  clear(): void {
    this.#entries.clear();
    this.#bytes = 0;
  }

  /** The highest-seq quarantined operation of `author`, if any. */
  highestOf(author: NodeId): Operation | undefined {
    let tip: Operation | undefined;
    for (const { op } of this.#entries.values()) {
      if (op.author === author && (tip === undefined || op.seq > tip.seq)) tip = op;
    }
    return tip;
  }
}

/**
 * `ops` (quarantined operations) with, before each author's first one, its
 * anchor: `anchorOf(author)`, the last operation of its agreed chain, when
 * held.
 */
export function withAnchors(
  ops: readonly Operation[],
  anchorOf: (author: NodeId) => Operation | undefined,
): Operation[] {
  const out: Operation[] = [];
  const anchored = new Set<NodeId>();
  for (const op of ops) {
    if (!anchored.has(op.author)) {
      anchored.add(op.author);
      const anchor = anchorOf(op.author);
      if (anchor !== undefined) out.push(anchor);
    }
    out.push(op);
  }
  return out;
}
