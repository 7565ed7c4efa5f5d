/**
 * The replica's options, listener types and named errors (see `replica.ts`).
 * @module
 */
import type { Identity, NodeId, SignatureVerifier } from "./identity.ts";
import type { ForkProofLimits } from "./forks.ts";
import type { PendingLimits, ReceiveStatus } from "./log.ts";
import type { Operation } from "./operation.ts";
import type { ForkProof, Store } from "./store.ts";
import type { WriteGateState } from "./write_guard.ts";

/**
 * The store's operations cannot be replayed: one does not match its id, or
 * they are out of order. The store is corrupt or was altered; nothing was
 * changed.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Identity, MemoryStore, Replica, ReplayError } from "@huskies/sync";
 * import { makeChain, testIdentity } from "@huskies/sync/testing";
 *
 * const [op] = makeChain(testIdentity(1), 1);
 * const store = new MemoryStore();
 * store.append([{ ...op, time: op.time + 1 }]); // altered after signing: the id no longer matches
 * assert.throws(() => Replica.open({ identity: Identity.generate(), store }), ReplayError);
 * ```
 */
export class ReplayError extends Error {
  /** Creates the error; `message` names the operation and the problem. */
  constructor(message: string) {
    super(message);
    this.name = "ReplayError";
  }
}

/** Options for {@link Replica.open}. */
export interface ReplicaOptions {
  /** The node's signing identity. */
  identity: Identity;
  /** Where operations persist. @default a new MemoryStore */
  store?: Store;
  /**
   * Signature checker (shares its key cache). @default native node:crypto
   * @ignore
   */
  verifier?: SignatureVerifier;
  /** Whether an author may write; operations by others are refused. @default everyone */
  mayAuthor?: (author: NodeId) => boolean;
  /**
   * Bounds of the buffer for operations that arrive before their predecessors.
   * @ignore
   */
  pending?: PendingLimits;
  /**
   * Bounds of the quarantine for operations of forked authors from their fork point on.
   * @ignore
   */
  quarantine?: PendingLimits;
  /**
   * Bounds of the fork proofs held (and stored and sent); a proof beyond them is refused.
   * @ignore
   */
  forkProofs?: ForkProofLimits;
  /**
   * Accept that the store lost some of this node's own operations (found at
   * open from the store's own-head record), after a deliberate restore from
   * a backup: the replica signs again from what the store holds. Risky: if
   * peers hold the lost operations, the next write forks this node's key.
   * @default false
   */
  acceptLostHistory?: boolean;
  /**
   * Start refusing writes (reason "starting") until a catch-up round with a
   * peer completed ({@link Replica.notePeerCaughtUp}), the node says so
   * ({@link WriteGate.startupComplete}), or this many ms passed. Undefined
   * (the default) starts ready, for a replica used without peers.
   */
  startupGraceMs?: number;
  /** Longest a peer's unproven claim about our own operations blocks writes, ms. @default 15000 */
  claimTimeoutMs?: number;
  /** The clock, in ms (virtual time in simulations). @default Date.now */
  now?: () => number;
  /**
   * The mesh id (its genesis operation's id), when this node belongs to a
   * mesh: the membership rule then decides which operations reach the
   * document, and `mayAuthor` is no longer asked. @default none (no mesh)
   */
  mesh?: string;
}

/**
 * The replica's write guard, for the node and status pages: whether a write
 * would be signed now, and why not.
 */
export interface WriteGate {
  /** What the guard knows now. */
  state(): WriteGateState;
  /** Ends the "starting" state (a catch-up round completed, or the node's grace ended). */
  startupComplete(): void;
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

/** Statuses of a received operation that passed signature verification. */
export const OWN_EVIDENCE: ReadonlySet<ReceiveStatus> = new Set<ReceiveStatus>([
  "applied",
  "pending",
  "dropped",
  "fork",
  "forked-author",
]);

/** Where a local change comes from, for {@link AppliedListener}. */
export const LOCAL_ORIGIN: unique symbol = Symbol("local");
