/**
 * The node: the composition root. It wires one replica with its identity,
 * store, trust list and join tokens to the hub forwarding rule
 * (`hub.ts`), connections over any transport (`connection.ts` over a
 * `Channel`; WebSocket in `websocket.ts`), reconnecting clients
 * (`rendezvous_client.ts`) and typed events (`events.ts`), all on injectable
 * timers. No process-global state: several nodes run in one process.
 * @module
 */
import { join } from "node:path";
import { STORE_FILE_NAME } from "../data_dir.ts";
import { AccessPolicy, AdmissionLimiter, TokenStore, TrustStore } from "../auth/mod.ts";
import { loadOrCreateIdentity } from "../auth/keystore.ts";
import { makeAuthorizer } from "../auth/authorize.ts";
import { PreauthServer } from "../auth/preauth.ts";
import { Identity, type NodeId, SignatureVerifier } from "../crdt/identity.ts";
import { Pipeline } from "../crdt/pipeline.ts";
import { Replica } from "../crdt/replica.ts";
import { SqliteStore } from "../crdt/sqlite_store.ts";
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
import { PeerConnections } from "./peer_connections.ts";
import { type Logger, silentLogger } from "./logger.ts";
import { checkRendezvousOptions, RendezvousClient } from "./rendezvous_client.ts";
import {
  type AcceptOptions,
  type ConnectOptions,
  DIAL_TIMEOUT_SECS,
  MAX_IN_BAND_HANDSHAKES,
  type NodeOptions,
  type NodeStatus,
  PING_INTERVAL_SECS,
} from "./node_options.ts";
import type { SessionLimits } from "./session.ts";
import type { PeerSession, SessionRunner } from "./session_runner.ts";
import { realTimers, type Timers } from "./timers.ts";
import { emitReplicaEvents, watchTrust } from "./node_wiring.ts";
import { waitConnected, type WaitOptions, waitSynced } from "./node_waits.ts";
import { handleSyncRequest, webSocketDialer } from "./websocket.ts";

export { SYNC_PATH } from "./websocket.ts";
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
} from "./node_options.ts";

/**
 * A huskies-sync node.
 *
 * @example
 * ```ts
 * import { HuskiesNode } from "./node.ts";
 * const hub = await HuskiesNode.open({});
 * const server = Deno.serve({ port: 0, onListen() {} }, (req, info) =>
 *   hub.handleRequest(req, info) ?? new Response("not found", { status: 404 }));
 * const spoke = await HuskiesNode.open({});
 * spoke.connect(`ws://127.0.0.1:${server.addr.port}/crdt-sync`);
 * spoke.pipeline.put("S-1", { stage: "coding" });
 * await hub.once("applied", { timeoutMs: 5000 });
 * await spoke.close();
 * await hub.close();
 * await server.shutdown();
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
  readonly #verifier: SignatureVerifier;
  readonly #options: NodeOptions;
  readonly #limits: SessionLimits;
  readonly #admission: AdmissionLimiter;
  readonly #preauth: PreauthServer;
  /** In-band handshakes running now (each may make the node hold a whole 64 MiB message). */
  #inBandHandshakes = 0;
  readonly #logger: Logger;
  readonly #dialer: Dialer;
  readonly #hub = new Hub<SessionRunner>();
  readonly #peers: PeerConnections;
  readonly #events: NodeEventEmitter;
  readonly #clients = new Set<RendezvousClient>();
  readonly #abort = new AbortController();
  readonly #counters = { applied: 0, invalid: 0, unauthorized: 0 };
  #closed = false;

  private constructor(
    replica: Replica,
    policy: AccessPolicy,
    tokens: TokenStore,
    verifier: SignatureVerifier,
    options: NodeOptions,
  ) {
    this.replica = replica;
    this.policy = policy;
    this.trust = policy.trust;
    this.tokens = tokens;
    this.#verifier = verifier;
    this.#options = options;
    this.timers = options.timers ?? realTimers;
    this.pipeline = new Pipeline(replica, () => this.timers.now());
    this.#logger = options.logger ?? silentLogger;
    this.#dialer = options.dialer ?? webSocketDialer;
    this.#limits = {
      maxFrameBytes: options.maxFrameBytes,
      maxOutboundBytes: options.maxOutboundBytes,
      maxInvalidOps: options.maxInvalidOps,
      pingIntervalMs: options.pingIntervalMs,
      pongTimeoutMs: options.pongTimeoutMs,
      liveBatchMs: options.liveBatchMs,
    };
    this.#admission = new AdmissionLimiter(options.admission);
    this.#preauth = new PreauthServer({
      identity: replica.identity,
      authorize: makeAuthorizer(policy, tokens, policy.trust),
      verifier,
      now: () => this.timers.now(),
      allowInBand: (options.inBandHandshake ?? "refuse") === "allow",
    });
    this.#events = new NodeEventEmitter(
      this.timers,
      (error) =>
        this.#logger.log("error", "event listener failed", { error: (error as Error).message }),
    );
    this.#peers = new PeerConnections({
      replica,
      policy,
      trust: this.trust,
      tokens,
      verifier,
      timers: this.timers,
      logger: this.#logger,
      limits: this.#limits,
      authTimeoutMs: options.authTimeoutMs,
      dialTimeoutMs: options.dialTimeoutMs ?? DIAL_TIMEOUT_SECS * 1000,
      legacy: options.legacy,
      preauthDial: this.#dialer === webSocketDialer,
      hub: this.#hub,
      events: this.#events,
      counters: this.#counters,
    });
    this.#hub.attach(replica);
    emitReplicaEvents(replica, this.#hub, this.#events, this.#counters, this.#logger);
    watchTrust(this.trust, policy, this.#hub, this.#logger, {
      signal: this.#abort.signal,
      intervalMs: options.trustPollMs ?? 500,
    });
  }

  /**
   * Opens a node: loads (or creates) its identity, replays its store, and
   * starts watching its trust list.
   */
  static async open(options: NodeOptions = {}): Promise<HuskiesNode> {
    const dir = options.dataDir;
    const identity = options.identity ??
      (dir ? (await loadOrCreateIdentity(dir)).identity : Identity.generate());
    const trust = options.trust ??
      (dir
        ? TrustStore.open(dir, { configKeys: options.trustedKeys })
        : TrustStore.memory(options.trustedKeys));
    const tokens = options.tokens ?? (dir ? TokenStore.open(dir) : TokenStore.memory());
    const store = options.store ?? (dir ? SqliteStore.open(join(dir, STORE_FILE_NAME)) : undefined);
    const verifier = new SignatureVerifier();
    const policy = new AccessPolicy(trust, { open: options.open ?? "when-empty" });
    let replica: Replica;
    try {
      replica = Replica.open({
        identity,
        store,
        verifier,
        pending: options.pending,
        mayAuthor: (author) => author === identity.nodeId || policy.mayAuthor(author),
      });
    } catch (error) {
      store?.close();
      throw error;
    }
    return new HuskiesNode(replica, policy, tokens, verifier, options);
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
        admitInBand: () => this.#admitInBand(),
        idleTimeoutSecs: PING_INTERVAL_SECS,
        logger: this.#logger,
        onRefused: (remote, code, reason) =>
          this.#events.emit("refused", {
            kind: "handshake",
            direction: "inbound",
            remote,
            code,
            reason,
          }),
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

  /** One in-band handshake slot, under the strict cap; `undefined` when none is free. */
  #admitInBand(): (() => void) | undefined {
    const cap = this.#options.maxInBandHandshakes ?? MAX_IN_BAND_HANDSHAKES;
    if (this.#inBandHandshakes >= cap) return undefined;
    this.#inBandHandshakes++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#inBandHandshakes--;
    };
  }

  /**
   * Accepts an inbound connection on an open channel: runs the server side
   * of the handshake, then a sync session. Resolves when the channel closes.
   */
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
    if (this.#dialer === webSocketDialer) {
      const parsed = new URL(url);
      if (parsed.protocol !== "ws:" && parsed.protocol !== "wss:") {
        throw new TypeError(`Cannot connect to ${url}: the URL must start with ws:// or wss://`);
      }
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

  /**
   * Resolves once a session (with `peer`, when given) is live; at once when
   * one already is.
   */
  connected(peer?: NodeId, options: WaitOptions = {}): Promise<void> {
    return waitConnected(this.#events, () => this.sessions(), peer, options);
  }

  /**
   * Resolves once the node has a session and every session is live with
   * nothing queued for its peer.
   */
  synced(options: WaitOptions = {}): Promise<void> {
    return waitSynced(this.#events, this.timers, () => this.sessions(), options);
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
    };
  }

  /**
   * Stops the node: rendezvous clients stop, sessions close with 1001, the
   * store is flushed and closed. Safe to call twice.
   */
  async close(reason = "node shutting down"): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
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
