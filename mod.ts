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
 * @example Two nodes in one process
 * ```ts
 * import { crdtSyncHandler, HuskiesNode } from "./mod.ts";
 *
 * const hub = await HuskiesNode.open();
 * const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, crdtSyncHandler(hub));
 * const spoke = await HuskiesNode.open();
 * spoke.connect(`ws://127.0.0.1:${server.addr.port}/crdt-sync`);
 * spoke.pipeline.put("S-1", { stage: "coding", name: "Parser" });
 * // hub.pipeline.get("S-1") shows the item once it has arrived.
 * await spoke.close();
 * await hub.close();
 * await server.shutdown();
 * ```
 * @module
 */

// The node, its network endpoints, and the reference-style entry points.
export {
  type AcceptOptions,
  type ConnectOptions,
  HuskiesNode,
  type NodeOptions,
  type NodeStatus,
  PING_INTERVAL_SECS,
  PONG_TIMEOUT_SECS,
  SYNC_PATH,
} from "./sync/node.ts";
export {
  type AttemptResult,
  RENDEZVOUS_ERROR_THRESHOLD,
  type RendezvousAttempt,
  RendezvousClient,
  type RendezvousInfo,
  type RendezvousOptions,
  type RendezvousOutcome,
  type RendezvousState,
} from "./sync/rendezvous_client.ts";
export type { Channel, ChannelReceiver, Dialer, DialResult } from "./sync/channel.ts";
export { realTimers, type TimerHandle, type Timers } from "./sync/timers.ts";
export type {
  Direction,
  NodeEventListener,
  NodeEvents,
  NodeEventType,
  OnceOptions,
} from "./sync/events.ts";
export type { ConnectionOutcome } from "./sync/connection.ts";
export type { WaitOptions } from "./sync/node_waits.ts";
export type { PeerSession } from "./sync/session_runner.ts";
export { webSocketDialer } from "./sync/websocket.ts";
export { STORE_FILE_NAME } from "./data_dir.ts";
export {
  addJoinToken,
  crdtSyncHandler,
  initTrustedKeys,
  spawnRendezvousClient,
} from "./sync/api.ts";
export {
  type CatchUpCursor,
  type SessionEvent,
  type SessionLimits,
  type SessionOptions,
  type SessionOutput,
  type SessionPhase,
  type SessionStats,
  SyncSession,
} from "./sync/session.ts";
export { CloseCode, type CloseCodeValue, isPermanentClose } from "./protocol/close_codes.ts";
export { backoffDelay, type BackoffOptions } from "./sync/backoff.ts";
export {
  consoleLogger,
  type ConsoleLoggerOptions,
  type LogFields,
  type Logger,
  type LogLevel,
  MemoryLogger,
  silentLogger,
} from "./sync/logger.ts";

// Authentication, trust and join tokens.
export * from "./auth/mod.ts";

// Replicated state: operations, the log, the document, the pipeline, storage.
export {
  Identity,
  type NodeId,
  publicKeyProblem,
  SignatureVerifier,
  type VerifyEngine,
} from "./crdt/identity.ts";
export {
  decodeOperation,
  encodeOperation,
  type Mutation,
  type Operation,
  OPERATION_LIMITS,
  operationId,
  OperationTooLargeError,
  type OpId,
  parseOperation,
  type ParseOptions,
  type Path,
  signOperation,
  type UnsignedOperation,
  verifyBatch,
  verifyOperation,
} from "./crdt/operation.ts";
export { canonicalJson, type JsonValue } from "./crdt/canonical.ts";
export { type ClockHeads, type VectorClock } from "./crdt/clock.ts";
export { type BatchResult, type PendingLimits, type ReceiveStatus } from "./crdt/log.ts";
export { type ForkProofLimits } from "./crdt/forks.ts";
export {
  type AppliedListener,
  type ForkListener,
  LOCAL_ORIGIN,
  type ReceiveOptions,
  ReplayError,
  Replica,
  type ReplicaOptions,
  type WriteGate,
  type WriteGateState,
  type WriteRefusal,
  type WriteRefusalReason,
  WriteRefusedError,
} from "./crdt/replica.ts";
export { CrdtDocument, type DocumentOperation } from "./crdt/document.ts";
export {
  Pipeline,
  type PipelineHost,
  type Stage,
  type StageEvent,
  STAGES,
  type WorkItem,
  type WorkItemPatch,
} from "./crdt/pipeline.ts";
export {
  type AppendOptions,
  type ForkProof,
  MemoryStore,
  type OwnHead,
  type Store,
} from "./crdt/store.ts";
export {
  SqliteStore,
  type SqliteStoreOptions,
  StoreCorruptError,
  StoreLockedError,
} from "./crdt/sqlite_store.ts";
// Mesh membership (PROTOCOL.md §5b).
export {
  type GrantOptions,
  type ImportTrustResult,
  NodeMembers,
  readMeshId,
  writeMeshId,
} from "./sync/members.ts";
export {
  type AddResult,
  type MemberRecord,
  Membership,
  type MembershipOptions,
  type Verdict,
  type VerdictChange,
} from "./crdt/membership.ts";
export { type Scope as MemberScope, SCOPES as MEMBER_SCOPES } from "./crdt/membership_ops.ts";
export { type FeedResult, MembershipRefusedError, ReplicaMembers } from "./crdt/replica_members.ts";
export { MESH_FILE_NAME } from "./data_dir.ts";
