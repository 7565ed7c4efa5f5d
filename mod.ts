/**
 * huskies-sync: replicate signed CRDT pipeline state between nodes over
 * WebSocket.
 *
 * Every change is an operation signed with its author's Ed25519 key and
 * chained to the author's previous one. Nodes authenticate each other with a
 * mutual handshake, catch up by exchanging vector clocks and sending only the
 * missing operations (in chunks), then stream new operations live. A
 * {@link HuskiesNode} owns everything (no process-global state), so several
 * nodes can run in one process.
 *
 * The public API, by theme:
 * - the node: {@link HuskiesNode} (open, serve with {@link crdtSyncHandler},
 *   dial with {@link HuskiesNode.connect}, trust with `node.trust.add`), its
 *   options, status and typed events, and the {@link RendezvousClient} that
 *   `connect` returns;
 * - replicated state: {@link Replica}, {@link Pipeline}, the operation types,
 *   the stores ({@link MemoryStore}, {@link SqliteStore}, {@link Store});
 * - identity and trust: {@link Identity}, {@link NodeId}, {@link TrustStore},
 *   {@link TokenStore};
 * - every error the library throws on purpose, each a named class;
 * - close codes: {@link CloseCode}, {@link isPermanentClose};
 * - the reference implementation's entry points and constants
 *   ({@link initTrustedKeys}, {@link addJoinToken},
 *   {@link spawnRendezvousClient}, the `*_SECS` constants).
 *
 * Test kits (in-memory channels, virtual timers, the simulated network, the
 * store conformance suite) are in `@huskies/sync/testing`; the wire-level
 * conformance suite is `@huskies/sync/conformance`.
 *
 * @example Two nodes in one process
 * ```ts
 * import assert from "node:assert/strict";
 * import { crdtSyncHandler, HuskiesNode } from "@huskies/sync";
 *
 * await using hub = await HuskiesNode.open();
 * await using server = Deno.serve(
 *   { hostname: "127.0.0.1", port: 0, onListen() {} },
 *   crdtSyncHandler(hub),
 * );
 * await using spoke = await HuskiesNode.open();
 * spoke.connect(`ws://127.0.0.1:${server.addr.port}/crdt-sync`);
 * await spoke.connected(hub.nodeId, { timeoutMs: 5000 });
 *
 * spoke.pipeline.put("S-1", { stage: "coding", name: "Parser" });
 * await hub.once("applied", { timeoutMs: 5000 });
 * assert.equal(hub.pipeline.get("S-1")?.name, "Parser");
 * ```
 * @module
 */

// The node: options, status, events, waits, its outbound clients.
export { HuskiesNode, type NodeOptions, type NodeStatus } from "./sync/node.ts";
export { type ConnectOptions, type WriteGateStatus } from "./sync/node_options.ts";
export { PeersTimeoutError } from "./sync/node_waits.ts";
export type { NodeEventListener, NodeEvents, NodeEventType, OnceOptions } from "./sync/events.ts";
export type { PeerSession } from "./sync/session_runner.ts";
export type { SessionLimits, SessionStats } from "./sync/session_types.ts";
export type {
  RendezvousClient,
  RendezvousInfo,
  RendezvousOptions,
  RendezvousOutcome,
} from "./sync/rendezvous_client.ts";
export type { BackoffOptions } from "./sync/backoff.ts";
export type { LogFields, Logger, LogLevel } from "./sync/logger.ts";

// Reference-style entry points and constants (seconds, under the reference's names).
export {
  addJoinToken,
  crdtSyncHandler,
  initTrustedKeys,
  spawnRendezvousClient,
} from "./sync/api.ts";
export { PING_INTERVAL_SECS, PONG_TIMEOUT_SECS } from "./sync/node_options.ts";
export { RENDEZVOUS_ERROR_THRESHOLD } from "./sync/rendezvous_client.ts";
export { AUTH_TIMEOUT_SECS } from "./auth/handshake.ts";

// Close codes.
export { CloseCode, isPermanentClose } from "./protocol/close_codes.ts";

// Identity, trust and join tokens (node.trust, node.tokens, node.policy).
export { Identity, type NodeId } from "./crdt/identity.ts";
export {
  type AccessPolicy,
  type Scope,
  type TrustEntry,
  TrustStore,
  type TrustStoreOptions,
} from "./auth/trust.ts";
export type { AdmissionLimiterOptions } from "./auth/limits.ts";
export {
  type CreatedToken,
  type CreateTokenOptions,
  type TokenInfo,
  TokenStore,
} from "./auth/tokens.ts";

// Replicated state: the replica, the pipeline, operations, stores.
export {
  type AppliedListener,
  type ForkListener,
  Replica,
  type ReplicaOptions,
} from "./crdt/replica.ts";
export { WriteRefusedError } from "./crdt/write_guard.ts";
export {
  ItemNotFoundError,
  Pipeline,
  type PipelineHost,
  type Stage,
  type StageEvent,
  STAGES,
  type WorkItem,
  type WorkItemPatch,
} from "./crdt/pipeline.ts";
export type { Mutation, Operation, OpId, Path, UnsignedOperation } from "./crdt/operation.ts";
export type { JsonValue } from "./crdt/canonical.ts";
export type { VectorClock } from "./crdt/clock.ts";
export type { CrdtDocument } from "./crdt/document.ts";
export { type ForkProof, MemoryStore, type Store } from "./crdt/store.ts";
export { SqliteStore, type SqliteStoreOptions } from "./crdt/sqlite_store.ts";

// Errors, each a named class (`error.name` is the class name).
export { ProtocolError } from "./sync/frames.ts";
export { ReplayError } from "./crdt/replica.ts";
export { StoreCorruptError, StoreLockedError } from "./crdt/sqlite_file.ts";
export { OperationTooLargeError } from "./crdt/operation.ts";
export { KeyFileError } from "./auth/keystore.ts";
export { DataFileError } from "./auth/files.ts";

// Mesh membership (PROTOCOL.md §5b): node.members.
export type { NodeMembers } from "./sync/members.ts";
export type { MemberRecord } from "./crdt/membership.ts";
export type { Scope as MemberScope } from "./crdt/membership_ops.ts";
export { MembershipRefusedError } from "./crdt/replica_members.ts";
