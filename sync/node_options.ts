/**
 * The options and status types of a `HuskiesNode`, and what it builds from its options.
 * @module
 */
import type { AdmissionLimiterOptions, TokenStore, TrustStore } from "../auth/mod.ts";
import type { Identity, NodeId, SignatureVerifier } from "../crdt/identity.ts";
import type { PendingLimits } from "../crdt/log.ts";
import { join } from "node:path";
import { SqliteStore } from "../crdt/sqlite_store.ts";
import type { Store } from "../crdt/store.ts";
import { VerifyPool } from "../crdt/verify_pool.ts";
import { STORE_FILE_NAME } from "../data_dir.ts";
import type { Dialer } from "./channel.ts";
import type { Logger } from "./logger.ts";
import type { RendezvousInfo, RendezvousOptions } from "./rendezvous_client.ts";
import type { SessionLimits, SessionStats } from "./session_types.ts";
import type { Timers } from "./timers.ts";

/** Interval (seconds) of the WebSocket-level ping an accepting node sends (the reference's). */
export const PING_INTERVAL_SECS = 30;
/** Seconds without a WebSocket-level pong before an accepting node closes (the reference's). */
export const PONG_TIMEOUT_SECS = 60;
/** Interval (seconds) of the application heartbeat, both directions (`pingIntervalMs`). */
export const HEARTBEAT_INTERVAL_SECS = 5;
/** Seconds of silence after which a peer is dropped (`pongTimeoutMs`). */
export const HEARTBEAT_TIMEOUT_SECS = 15;
/** Seconds an outbound connection may take to open before the attempt fails (`dialTimeoutMs`). */
export const DIAL_TIMEOUT_SECS = 5;
/** Default start-up grace of a restarted node (`startupGraceMs`), seconds. */
export const STARTUP_GRACE_SECS = 10;

/**
 * In-band handshakes (peers that do not pre-authenticate) a node runs at once
 * when it allows them: each unauthenticated WebSocket can make the node hold
 * about three times a 64 MiB message (~190 MiB measured).
 */
export const MAX_IN_BAND_HANDSHAKES = 2;

/** Options for `HuskiesNode.open`. */
export interface NodeOptions extends SessionLimits {
  /**
   * Data folder: identity (`node.key`), operations (`ops.db`), `trust.json`
   * and `tokens.json` live here. Without it the node lives in memory.
   */
  dataDir?: string;
  /** Identity to use instead of the data folder's (or a fresh one in memory). */
  identity?: Identity;
  /** Store to use instead of the data folder's SQLite database. */
  store?: Store;
  /** The mesh id (genesis operation id) to open with. @default the data folder's `mesh.json` */
  mesh?: string;
  /** Trust list. @default the data folder's, or an empty in-memory list */
  trust?: TrustStore;
  /** Keys from configuration (`trusted_keys`), trusted with write scope. */
  trustedKeys?: readonly string[];
  /** Join tokens. @default the data folder's, or an in-memory store */
  tokens?: TokenStore;
  /**
   * Whether unknown keys may connect: `true`, `false`, or `"when-empty"`
   * (open while the trust list is empty, like the reference). @default "when-empty"
   */
  open?: boolean | "when-empty";
  /** Handshake timeout, ms. @default 10000 */
  authTimeoutMs?: number;
  /**
   * Worker threads that check the signatures of received bulk frames while
   * the node stores the frames before them; 0 checks them on the event loop.
   * @default the number of cores, at most 4 (0 on one core)
   */
  verifyWorkers?: number;
  /**
   * Time an outbound connection may take to open, ms; a dial into a dead
   * link fails after this instead of waiting on TCP. @default 5000
   */
  dialTimeoutMs?: number;
  /** Bounds on unauthenticated connections. */
  admission?: AdmissionLimiterOptions;
  /**
   * Peers that do not authenticate before the upgrade (`PROTOCOL.md` §3.10):
   * `"refuse"` answers their upgrade with 401, so no unauthenticated WebSocket
   * exists and unauthenticated clients cannot make the node hold more than
   * small HTTP requests; `"allow"` runs the in-band handshake for them, at
   * most {@link MAX_IN_BAND_HANDSHAKES} at once (each can cost ~190 MiB).
   * An open mesh (`open: true`) admits any key, so pre-authentication bounds
   * nothing there: it allows the in-band handshake unless told otherwise.
   * @default "allow" with `open: true`, else "refuse"
   */
  inBandHandshake?: "refuse" | "allow";
  /** Cap of concurrent in-band handshakes when allowed. @default MAX_IN_BAND_HANDSHAKES */
  maxInBandHandshakes?: number;
  /** How often a running node rereads a file-backed trust.json, ms. @default 500 */
  trustPollMs?: number;
  /**
   * Bounds of the replica's buffer of operations that arrive before their predecessors.
   * @ignore
   */
  pending?: PendingLimits;
  /** The clock and timers of every session, handshake deadline and reconnect. @default real time */
  timers?: Timers;
  /**
   * How `HuskiesNode.connect` opens channels. @default a WebSocket client over npm `ws` with
   * TCP_NODELAY; Deno's client in a process without env access (see `sync/ws_dialer.ts`)
   */
  dialer?: Dialer;
  /** Speak as a legacy (v1) peer on every session; for interoperability tests. @default false */
  legacy?: boolean;
  /** Logger. @default silent */
  logger?: Logger;
  /**
   * Start-up grace, ms: after opening, the node signs no new operation (writes
   * fail with a retryable `WriteRefusedError`, reason "starting") until a
   * catch-up round with a peer has completed or this long has passed with
   * none (then it logs a WARN and allows writes). 0 disables it.
   * @default STARTUP_GRACE_SECS × 1000 after a restart: the data folder's key
   * file existed before this open and its store holds (or its own-head record
   * counts) operations of that key, so peers may hold some it lost. 0
   * otherwise: a new key, a key that never signed here, or a node without a
   * data folder. After restoring a key alone (or supplying a reused
   * `identity`), set it explicitly.
   */
  startupGraceMs?: number;
  /**
   * Accept a lost own history found at open (after a deliberate restore from
   * a backup): sign again from what the store holds. Risky: if peers hold the
   * lost operations, the next write forks this node's key. @default false
   */
  acceptLostHistory?: boolean;
  /** Longest a peer's unproven claim about our own operations blocks writes, ms. @default 15000 */
  claimTimeoutMs?: number;
}

/** Options for `HuskiesNode.connect`. */
export interface ConnectOptions extends RendezvousOptions {
  /** A join token (`hjt1.…`) to present; it also pins the hub's key. */
  token?: string;
  /** The hub's node id to pin. */
  hubKey?: NodeId;
}

/** A node's operation and fork counters, for status and metrics. */
export interface NodeStatus {
  /** This node's id. */
  nodeId: NodeId;
  /** Operations held. */
  operations: number;
  /** Hash of the visible state. */
  stateHash: string;
  /** Pending buffer size. */
  pending: { count: number; bytes: number };
  /** Authors caught equivocating. */
  forks: NodeId[];
  /** Live sessions. */
  peers: SessionStats[];
  /** Outbound rendezvous clients. */
  rendezvous: RendezvousInfo[];
  /** Operations applied, refused as invalid, and refused as unauthorised since start. */
  counters: { applied: number; invalid: number; unauthorized: number };
  /** Whether a write would be signed now, and why not. */
  writeGate: WriteGateStatus;
}

/**
 * The state of a node's write gate: `open` (writes are signed), `starting`
 * (start-up grace: no peer has caught us up yet), `lost-history` (the store
 * lacks some of this node's own operations; peers must send them back),
 * `claim` (a peer says it holds own operations we lack; waiting a bounded
 * time for them), `own-key-forked` (permanent: the key is used elsewhere).
 */
export type WriteGateStateName = WriteGateStatus["state"];

/** Every {@link WriteGateStateName}, for metrics and pages. */
export const WRITE_GATE_STATES: readonly WriteGateStateName[] = [
  "open",
  "starting",
  "lost-history",
  "claim",
  "own-key-forked",
];

/** The write gate in a node's status. */
export interface WriteGateStatus {
  /**
   * `open` (writes are signed), `starting` (start-up grace: no peer has caught
   * us up yet), `lost-history` (the store lacks some of this node's own
   * operations; peers must send them back), `claim` (a peer says it holds own
   * operations we lack; waiting a bounded time for them), `own-key-forked`
   * (permanent: the key is used elsewhere).
   */
  state: "open" | "starting" | "lost-history" | "claim" | "own-key-forked";
  /** The message a write gets now ("Cannot commit: ..."), or null when open. */
  reason: string | null;
  /** True when a refused write may succeed later without an operator acting. */
  retryable: boolean;
  /** When the refusal ends at the latest (ms on the node's clock), if known. */
  until?: number;
  /** Own operations the store's durable record counts and the store holds, while history is lost. */
  lostHistory?: { recorded: number; held: number };
}

/** Options for `HuskiesNode.accept`. */
export interface AcceptOptions {
  /** Who is on the other end (an address), for logs, events and admission. @default "unknown" */
  remote?: string;
  /** Called once when the handshake ends: true when it succeeded. */
  onHandshakeEnd?: (authenticated: boolean) => void;
}

/** The session limits among a node's options (the node passes only these to its sessions). */
export function sessionLimitsOf(options: SessionLimits): SessionLimits {
  return {
    maxFrameBytes: options.maxFrameBytes,
    maxOutboundBytes: options.maxOutboundBytes,
    maxInvalidOps: options.maxInvalidOps,
    pingIntervalMs: options.pingIntervalMs,
    pongTimeoutMs: options.pongTimeoutMs,
    liveBatchMs: options.liveBatchMs,
    compactBulk: options.compactBulk,
  };
}

/** The pool of verification Workers a node uses (see {@link NodeOptions.verifyWorkers}). */
export function verifyPoolOf(options: NodeOptions, verifier: SignatureVerifier): VerifyPool {
  const cores = navigator.hardwareConcurrency ?? 1;
  return new VerifyPool(verifier, options.verifyWorkers ?? (cores >= 2 ? Math.min(4, cores) : 0));
}

/**
 * Opens the store of the data folder `dir`: received operations group-committed every 5 ms, and
 * the integrity check run on its Worker while the node loads (the node waits for it before it
 * goes on: see `SqliteStore.integrity`).
 */
export function openDataDirStore(dir: string): SqliteStore {
  return SqliteStore.open(join(dir, STORE_FILE_NAME), {
    groupCommitMs: 5,
    quickCheck: "background",
  });
}
