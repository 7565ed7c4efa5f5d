/**
 * The node: the composition root. It wires one replica with its identity,
 * store, trust list and join tokens to the hub forwarding rule
 * (`hub.ts`), connections over any transport (`connection.ts` over a
 * `Channel`; WebSocket in `websocket.ts`), reconnecting clients
 * (`rendezvous_client.ts`) and typed events (`events.ts`), all on injectable
 * timers. No process-global state: several nodes run in one process.
 * @module
 */
import { clockLag } from "../crdt/clock.ts";
import type { Operation } from "../crdt/operation.ts";
import type { Store } from "../crdt/store.ts";
import { watchStoreCheck } from "./store_check.ts";
import { joinerAdmitter, NodeMembers, readMeshId, watchMembers, writeMeshId } from "./members.ts";
import { AccessPolicy, AdmissionLimiter, TokenStore, TrustStore } from "../auth/mod.ts";
import { loadOrCreateIdentity } from "../auth/keystore.ts";
import { makeAuthorizer } from "../auth/authorize.ts";
import { PreauthServer } from "../auth/preauth.ts";
import { Identity, type NodeId, SignatureVerifier } from "../crdt/identity.ts";
import { Pipeline } from "../crdt/pipeline.ts";
import { Replica } from "../crdt/replica.ts";
import { CloseCode } from "../protocol/close_codes.ts";
import type { Channel, Dialer } from "./channel.ts";
import type { ConnectionOutcome } from "./connection.ts";
import {
  NodeEventEmitter,
  type NodeEventListener,
  type NodeEvents,
  type NodeEventType,
  type OnceOptions,
} from "./events.ts";
import { Hub } from "./hub.ts";
import { logRefusedKey, PeerConnections } from "./peer_connections.ts";
import { type Logger, silentLogger } from "./logger.ts";
import { checkRendezvousOptions, RendezvousClient } from "./rendezvous_client.ts";
import {
  type AcceptOptions,
  type ConnectOptions,
  DIAL_TIMEOUT_SECS,
  MAX_IN_BAND_HANDSHAKES,
  type NodeOptions,
  type NodeStatus,
  openDataDirStore,
  PING_INTERVAL_SECS,
  sessionLimitsOf,
  STARTUP_GRACE_SECS,
  verifyPoolOf,
} from "./node_options.ts";
import type { SessionLimits } from "./session.ts";
import type { PeerSession, SessionRunner } from "./session_runner.ts";
import { realTimers, type Timers } from "./timers.ts";
import {
  emitReplicaEvents,
  logCatchUps,
  reportWriteGateAtOpen,
  saveStateWhenQuiet,
  summariseRefusals,
  watchStartup,
  watchTrust,
  writeGateStatus,
} from "./node_wiring.ts";
import {
  type OperationRef,
  reportedClockOf,
  waitConnected,
  waitForPeers,
  waitSynced,
} from "./node_waits.ts";
import { handleSyncRequest, slotPool } from "./websocket.ts";
import { defaultDialer, isWebSocketDialer } from "./ws_dialer.ts";

export { SYNC_PATH } from "./websocket.ts";
export { type OperationRef, PeersTimeoutError, type WaitOptions } from "./node_waits.ts";
export {
  RENDEZVOUS_ERROR_THRESHOLD,
  RendezvousClient,
  type RendezvousInfo,
  type RendezvousOutcome,
  type RendezvousState,
} from "./rendezvous_client.ts";

export {
  type AcceptOptions,
  type ConnectOptions,
  DIAL_TIMEOUT_SECS,
  HEARTBEAT_INTERVAL_SECS,
  HEARTBEAT_TIMEOUT_SECS,
  MAX_IN_BAND_HANDSHAKES,
  type NodeOptions,
  type NodeStatus,
  PING_INTERVAL_SECS,
  PONG_TIMEOUT_SECS,
  STARTUP_GRACE_SECS,
  WRITE_GATE_STATES,
  type WriteGateStateName,
  type WriteGateStatus,
} from "./node_options.ts";

/** True when the store holds, or its own-head record counts, operations of the node's own key. */
function hasOwnHistory(replica: Replica): boolean {
  return (replica.clock()[replica.nodeId] ?? 0) > 0 ||
    replica.writeGate.state().lostHistory !== null;
}

/**
 * A huskies-sync node: one replica with its identity, store, trust list,
 * join tokens and sessions. Serve it with `crdtSyncHandler(node)` (or
 * {@link HuskiesNode.handleRequest}), dial peers with
 * {@link HuskiesNode.connect}, trust keys with `node.trust.add(id, scope)`,
 * and close it with {@link HuskiesNode.close} or `await using`.
 *
 * @example A hub and a spoke that trust each other
 * ```ts
 * import assert from "node:assert/strict";
 * import { crdtSyncHandler, HuskiesNode } from "@huskies/sync";
 *
 * await using hub = await HuskiesNode.open({ open: false });
 * await using server = Deno.serve(
 *   { hostname: "127.0.0.1", port: 0, onListen() {} },
 *   crdtSyncHandler(hub),
 * );
 * await using spoke = await HuskiesNode.open({ open: false });
 * hub.trust.add(spoke.nodeId, "write");
 * spoke.trust.add(hub.nodeId, "write");
 *
 * const client = spoke.connect(`ws://127.0.0.1:${server.addr.port}/crdt-sync`);
 * await spoke.connected(hub.nodeId, { timeoutMs: 5000 });
 * assert.equal(client.info().state, "connected");
 *
 * const applied = hub.once("applied", { timeoutMs: 5000 });
 * spoke.pipeline.put("S-1", { stage: "coding" });
 * assert.equal((await applied).from, spoke.nodeId);
 * assert.equal(hub.pipeline.get("S-1")?.stage, "coding");
 * assert.equal(hub.status().stateHash, spoke.status().stateHash);
 * ```
 */
export class HuskiesNode {
  /** The replica. */
  readonly replica: Replica;
  /** Typed access to the pipeline state. */
  readonly pipeline: Pipeline;
  /** The trust list. */
  readonly trust: TrustStore;
  /** Join tokens. */
  readonly tokens: TokenStore;
  /** The access policy (open or closed mesh, scopes). */
  readonly policy: AccessPolicy;
  /** The node's clock and timers. */
  readonly timers: Timers;
  /** Mesh membership: list, grant, revoke (see `members.ts`). */
  readonly members: NodeMembers;
  readonly #limits: SessionLimits;
  readonly #admission: AdmissionLimiter;
  readonly #preauth: PreauthServer;
  /** Slots for in-band handshakes (each may make the node hold a whole 64 MiB message). */
  readonly #inBandSlots: () => (() => void) | undefined;
  readonly #logger: Logger;
  readonly #dialer: Dialer;
  readonly #hub = new Hub<SessionRunner>();
  readonly #peers: PeerConnections;
  readonly #events: NodeEventEmitter;
  readonly #clients = new Set<RendezvousClient>();
  readonly #abort = new AbortController();
  readonly #counters = { applied: 0, invalid: 0, unauthorized: 0 };
  /** Stops the start-up watch and the summary logs, at close. */
  readonly #stops: (() => void)[];
  #closed = false;

  private constructor(
    replica: Replica,
    policy: AccessPolicy,
    tokens: TokenStore,
    verifier: SignatureVerifier,
    options: NodeOptions,
    startupGraceMs: number,
    store: Store | undefined,
  ) {
    this.replica = replica;
    this.policy = policy;
    this.trust = policy.trust;
    this.tokens = tokens;
    this.timers = options.timers ?? realTimers;
    this.pipeline = new Pipeline(replica, () => this.timers.now());
    this.#logger = options.logger ?? silentLogger;
    this.#dialer = options.dialer ?? defaultDialer();
    this.#limits = sessionLimitsOf(options);
    this.#admission = new AdmissionLimiter(options.admission);
    this.#inBandSlots = slotPool(options.maxInBandHandshakes ?? MAX_IN_BAND_HANDSHAKES);
    const dir = options.dataDir;
    this.members = new NodeMembers(replica, (mesh) => dir && writeMeshId(dir, mesh));
    policy.useMembers(() => replica.members?.state);
    const admitJoiner = joinerAdmitter(
      this.members,
      this.trust,
      this.#logger,
      this.timers,
      this.#abort.signal,
    );
    this.#preauth = new PreauthServer({
      identity: replica.identity,
      authorize: makeAuthorizer(policy, tokens, policy.trust, admitJoiner),
      verifier,
      now: () => this.timers.now(),
      allowInBand: (options.inBandHandshake ?? (options.open === true ? "allow" : "refuse")) ===
        "allow",
      mesh: () => replica.members?.mesh,
    });
    this.#events = new NodeEventEmitter(
      this.timers,
      (error) =>
        this.#logger.log("error", "event listener failed", { error: (error as Error).message }),
    );
    const verifyPool = verifyPoolOf(options, verifier);
    this.#peers = new PeerConnections({
      replica,
      policy,
      trust: this.trust,
      tokens,
      verifier,
      verifyPool,
      timers: this.timers,
      logger: this.#logger,
      limits: this.#limits,
      authTimeoutMs: options.authTimeoutMs,
      dialTimeoutMs: options.dialTimeoutMs ?? DIAL_TIMEOUT_SECS * 1000,
      legacy: options.legacy,
      preauthDial: isWebSocketDialer(this.#dialer),
      hub: this.#hub,
      events: this.#events,
      counters: this.#counters,
      admitJoiner,
      learnMesh: (mesh, hub) => {
        this.#logger.log("info", "joined the hub's mesh", { mesh, hub });
        this.members.join(mesh);
      },
    });
    this.#hub.attach(replica);
    emitReplicaEvents(replica, this.#hub, this.#events, this.#counters, this.#logger);
    watchMembers(replica, policy, this.#hub, this.#events, this.#logger);
    reportWriteGateAtOpen(replica, this.#logger, this.timers.now());
    const catchingUp = () =>
      this.sessions().some((session) => !session.isLive && !session.isClosed);
    this.#stops = [
      watchStartup(replica, this.#events, this.timers, this.#logger, startupGraceMs),
      summariseRefusals(this.#events, this.timers, this.#logger),
      logCatchUps(this.#events, this.timers, this.#logger),
      watchStoreCheck(store, this.timers, this.#logger, (e) => this.#storeCorrupt(e), catchingUp),
      saveStateWhenQuiet(replica, this.timers, catchingUp),
      () => verifyPool.close(),
    ];
    watchTrust(this.trust, policy, this.#hub, this.#logger, {
      signal: this.#abort.signal,
      intervalMs: options.trustPollMs ?? 500,
    });
  }

  /** Opens a node: loads (or creates) its identity, opens its store, watches its trust list. */
  static async open(options: NodeOptions = {}): Promise<HuskiesNode> {
    const dir = options.dataDir;
    const loaded = options.identity === undefined && dir
      ? await loadOrCreateIdentity(dir)
      : undefined;
    const identity = options.identity ?? loaded?.identity ?? Identity.generate();
    // A restarted key may have operations at peers that this store lost; a new one cannot.
    const keyExisted = loaded !== undefined && !loaded.created;
    let startupGraceMs = options.startupGraceMs ?? (keyExisted ? STARTUP_GRACE_SECS * 1000 : 0);
    const timers = options.timers ?? realTimers;
    const trust = options.trust ??
      (dir
        ? TrustStore.open(dir, { configKeys: options.trustedKeys })
        : TrustStore.memory(options.trustedKeys));
    const tokens = options.tokens ?? (dir ? TokenStore.open(dir) : TokenStore.memory());
    const opened = options.store || !dir ? undefined : openDataDirStore(dir);
    const store = options.store ?? opened;
    const verifier = new SignatureVerifier();
    const policy = new AccessPolicy(trust, { open: options.open ?? "when-empty" });
    let replica: Replica;
    try {
      replica = Replica.open({
        identity,
        store,
        verifier,
        pending: options.pending,
        mesh: options.mesh ?? (dir ? readMeshId(dir) : undefined),
        mayAuthor: (author) => author === identity.nodeId || policy.mayAuthor(author),
        startupGraceMs: startupGraceMs > 0 ? startupGraceMs : undefined,
        acceptLostHistory: options.acceptLostHistory,
        claimTimeoutMs: options.claimTimeoutMs,
        now: () => timers.now(),
      });
      await opened?.integrity(); // before anything is written to it
    } catch (error) {
      const corrupt = await opened?.integrity().then(() => undefined, (e: Error) => e);
      store?.close();
      throw corrupt ?? error;
    }
    if (options.startupGraceMs === undefined && startupGraceMs > 0 && !hasOwnHistory(replica)) {
      // A key that never signed here (`huskies keys create`, then a first start) has nothing
      // to lose; only an explicit grace covers a key restored alone.
      replica.writeGate.startupComplete();
      startupGraceMs = 0;
    }
    return new HuskiesNode(replica, policy, tokens, verifier, options, startupGraceMs, store);
  }

  /** A stored operation failed the background check: the node stops, as the open would have. */
  #storeCorrupt(error: Error): void {
    this.#events.emit("store-corrupt", { message: error.message });
    void this.close();
  }

  /** This node's id. */
  get nodeId(): NodeId {
    return this.replica.nodeId;
  }

  /**
   * Handles `GET /crdt-sync/challenge` (pre-upgrade challenge) and
   * `GET /crdt-sync` (WebSocket upgrade, authenticated before it; see
   * `PROTOCOL.md` §3.10) and returns the response; returns `undefined` for
   * other paths so the caller can serve them.
   */
  handleRequest(request: Request, info?: Deno.ServeHandlerInfo): Response | undefined {
    return handleSyncRequest(
      {
        closing: this.#closed,
        admit: (address) => this.#admission.tryAdmit(address),
        preauth: this.#preauth,
        admitInBand: this.#inBandSlots,
        idleTimeoutSecs: PING_INTERVAL_SECS,
        logger: this.#logger,
        onRefused: (remote, code, reason, key) => {
          if (key !== undefined) logRefusedKey(this.#logger, remote, { code, reason, key });
          const refusal = {
            kind: "handshake",
            direction: "inbound",
            remote,
            code,
            reason,
          } as const;
          this.#events.emit("refused", key === undefined ? refusal : { ...refusal, key });
        },
        accept: (channel, remote, release, preauthenticated) => {
          const accepted = preauthenticated && !this.#closed
            ? this.#peers.accept(channel, remote, release, preauthenticated)
            : this.accept(channel, { remote, onHandshakeEnd: release });
          accepted.catch((error) =>
            this.#logger.log("error", "connection failed", { error: (error as Error).message })
          );
        },
      },
      request,
      info,
    );
  }

  /** Accepts an inbound connection on an open channel: handshake, then a session, until it closes. */
  accept(channel: Channel, options: AcceptOptions = {}): Promise<ConnectionOutcome> {
    const remote = options.remote ?? "unknown";
    if (this.#closed) {
      channel.listen({ frame() {}, closed() {} });
      channel.close(CloseCode.GOING_AWAY, "node is shutting down");
      options.onHandshakeEnd?.(false);
      return Promise.resolve({ code: CloseCode.GOING_AWAY, reason: "node is shutting down" });
    }
    return this.#peers.accept(channel, remote, options.onHandshakeEnd);
  }

  /**
   * Dials `url` (through the node's dialer) and keeps a session with it,
   * reconnecting with backoff until a permanent refusal,
   * {@link RendezvousClient.stop}, or the node closes.
   * @throws {RangeError} an option is out of range ("Cannot connect: ...").
   * @throws {TypeError} a `ws:` URL is malformed, or `token`/`hubKey` are invalid.
   */
  connect(url: string, options: ConnectOptions = {}): RendezvousClient {
    if (this.#closed) throw new Error("Cannot connect: the node is closed");
    if (isWebSocketDialer(this.#dialer) && !/^wss?:$/.test(new URL(url).protocol)) {
      throw new TypeError(`Cannot connect to ${url}: the URL must start with ws:// or wss://`);
    }
    checkRendezvousOptions(options);
    const attempt = this.#peers.dialAttempt(url, this.#dialer, options);
    const client = new RendezvousClient(url, attempt, {
      ...options,
      signal: options.signal
        ? AbortSignal.any([options.signal, this.#abort.signal])
        : this.#abort.signal,
      timers: this.timers,
      logger: this.#logger,
      self: this.nodeId,
    });
    this.#clients.add(client);
    client.stopped.then(() => this.#clients.delete(client));
    return client;
  }

  /** Live sessions. */
  sessions(): PeerSession[] {
    return this.#hub.members();
  }

  /** Calls `listener` on every `type` event; returns the unsubscribe function. */
  on<K extends NodeEventType>(type: K, listener: NodeEventListener<K>): () => void {
    return this.#events.on(type, listener);
  }

  /** Resolves with the next `type` event that passes `options.filter`. */
  once<K extends NodeEventType>(type: K, options?: OnceOptions<K>): Promise<NodeEvents[K]> {
    return this.#events.once(type, options);
  }

  /** Resolves once a session (with `peer`, when given) is live; at once when one already is. */
  connected(
    peer?: NodeId,
    options: { signal?: AbortSignal; timeoutMs?: number } = {},
  ): Promise<void> {
    return waitConnected(this.#events, () => this.sessions(), peer, options);
  }

  /** Resolves once the node has a session and every session is live with nothing queued for its peer. */
  synced(options: { signal?: AbortSignal; timeoutMs?: number } = {}): Promise<void> {
    return waitSynced(this.#events, this.timers, () => this.sessions(), options);
  }

  /** Where this node's newest own operation sits, for {@link waitForPeers}; undefined before its first. */
  ownHead(): Pick<Operation, "author" | "seq"> | undefined {
    const seq = this.replica.clock()[this.nodeId];
    return seq === undefined ? undefined : { author: this.nodeId, seq };
  }

  /**
   * Resolves with the peers (at least `count`) whose latest clock (sent at
   * the start of a session and with every heartbeat, so within one heartbeat
   * interval of arriving) counts `operations`: the write has reached them.
   * Rejects with `PeersTimeoutError` after `options.timeoutMs` (the write
   * stays applied here and keeps spreading), or when `options.signal` aborts.
   * Rejects with a RangeError when `count` is not a whole number >= 0.
   */
  waitForPeers(
    operations: Pick<Operation, "author" | "seq"> | readonly Pick<Operation, "author" | "seq">[],
    count: number,
    options: { signal?: AbortSignal; timeoutMs?: number } = {},
  ): Promise<NodeId[]> {
    const targets = Array.isArray(operations) ? operations : [operations as OperationRef];
    return waitForPeers(
      this.#events,
      this.timers,
      () => this.sessions(),
      (peer) => reportedClockOf(this.#hub.members(), peer),
      targets,
      count,
      options,
    );
  }

  /**
   * How many operations `peer`'s latest clock (from its `clock` frame or
   * heartbeat) counts that this node lacks: how far behind it this node is,
   * also while catching up. Undefined when it has reported no clock.
   */
  behind(peer: NodeId): number | undefined {
    const theirs = reportedClockOf(this.#hub.members(), peer);
    return theirs === undefined ? undefined : clockLag(theirs, this.replica.clock());
  }

  /** A snapshot of the node's state, peers and counters. */
  status(): NodeStatus {
    return {
      nodeId: this.nodeId,
      operations: this.replica.size,
      stateHash: this.replica.stateHash(),
      pending: this.replica.pendingSize(),
      forks: this.replica.forks().map((proof) => proof.author),
      peers: this.sessions().map((session) => session.stats()),
      rendezvous: [...this.#clients].map((client) => client.info()),
      counters: { ...this.#counters },
      writeGate: writeGateStatus(this.replica.writeGate.state(), this.timers.now()),
    };
  }

  /**
   * Stops the node: rendezvous clients stop, sessions close with 1001, the
   * store is flushed and closed. Safe to call twice.
   */
  async close(reason = "node shutting down"): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const stop of this.#stops) stop();
    this.#abort.abort();
    const stopping = [...this.#clients].map((client) => client.stop());
    for (const session of this.#hub.members()) session.close(CloseCode.GOING_AWAY, reason);
    await Promise.all(stopping);
    this.replica.close();
  }

  /** Closes the node (`await using node = await HuskiesNode.open()`). */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
