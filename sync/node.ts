/**
 * The node: one replica with its identity, store, trust list, join tokens and
 * live sync sessions, reachable through a `Deno.serve` handler and able to
 * dial peers. No process-global state: several nodes run in one process.
 * @module
 */
import { join } from "node:path";
import { STORE_FILE_NAME } from "../data_dir.ts";
import {
  AccessPolicy,
  AdmissionLimiter,
  type AdmissionLimiterOptions,
  AUTH_TIMEOUT_SECS,
  ClientHandshake,
  HANDSHAKE_TIMEOUT_CLOSE,
  makeAuthorizer,
  type Scope,
  ServerHandshake,
  TokenStore,
  TrustStore,
} from "../auth/mod.ts";
import { clampCloseReason, type Step } from "../auth/handshake.ts";
import { loadOrCreateIdentity } from "../auth/keystore.ts";
import { Identity, type NodeId, SignatureVerifier } from "../crdt/identity.ts";
import { Pipeline } from "../crdt/pipeline.ts";
import { Replica } from "../crdt/replica.ts";
import { SqliteStore } from "../crdt/sqlite_store.ts";
import type { Store } from "../crdt/store.ts";
import { CloseCode, isPermanentClose } from "../protocol/close_codes.ts";
import { backoffDelay, type BackoffOptions } from "./backoff.ts";
import { type Logger, silentLogger } from "./logger.ts";
import { type SessionLimits, type SessionStats, SyncSession } from "./session.ts";

/** Interval (seconds) between heartbeats. */
export const PING_INTERVAL_SECS = 30;
/** Seconds of silence before a peer is dropped. */
export const PONG_TIMEOUT_SECS = 60;
/** Consecutive rendezvous failures after which failures log at ERROR instead of WARN. */
export const RENDEZVOUS_ERROR_THRESHOLD = 10;
/** The sync endpoint's path. */
export const SYNC_PATH = "/crdt-sync";

/** Options for {@link HuskiesNode.open}. */
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
  /** Bounds on unauthenticated connections. */
  admission?: AdmissionLimiterOptions;
  /** How often a running node rereads trust.json, ms. @default 500 */
  trustPollMs?: number;
  /** Logger. @default silent */
  logger?: Logger;
}

/** Options for {@link HuskiesNode.connect}. */
export interface ConnectOptions extends BackoffOptions {
  /** A join token (`hjt1.…`) to present; it also pins the hub's key. */
  token?: string;
  /** The hub's node id to pin. */
  hubKey?: NodeId;
  /** Stops the client when aborted. */
  signal?: AbortSignal;
  /** A session that lasted this long counts as healthy and resets the backoff, ms. @default 10000 */
  healthyAfterMs?: number;
}

/** State of a {@link RendezvousClient}. */
export type RendezvousState = "connecting" | "connected" | "waiting" | "stopped";

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
  rendezvous: { url: string; state: RendezvousState; failures: number; lastError?: string }[];
  /** Operations applied, refused as invalid, and refused as unauthorised since start. */
  counters: { applied: number; invalid: number; unauthorized: number };
}

/**
 * Closes a socket without throwing. A client may only send 1000 or 3000-4999,
 * so other codes go out as 1000 with the intended code in the reason.
 */
function closeSocket(socket: WebSocket, code: number, reason: string, client: boolean): void {
  if (client && code !== 1000 && (code < 3000 || code > 4999)) {
    reason = `${code} ${reason}`;
    code = 1000;
  }
  try {
    socket.close(code, clampCloseReason(reason));
  } catch {
    // Already closing or closed.
  }
}

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
 * // ... the item reaches the hub within milliseconds.
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
  readonly #verifier: SignatureVerifier;
  readonly #limits: SessionLimits;
  readonly #authTimeoutMs: number;
  readonly #admission: AdmissionLimiter;
  readonly #logger: Logger;
  readonly #sessions = new Set<SyncSession>();
  readonly #clients = new Set<RendezvousClient>();
  readonly #abort = new AbortController();
  readonly #tick: ReturnType<typeof setInterval>;
  readonly #counters = { applied: 0 };
  readonly #refused = { invalid: 0, unauthorized: 0 };
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
    this.pipeline = new Pipeline(replica);
    this.#logger = options.logger ?? silentLogger;
    this.#limits = {
      maxFrameBytes: options.maxFrameBytes,
      maxOutboundBytes: options.maxOutboundBytes,
      maxInvalidOps: options.maxInvalidOps,
      pingIntervalMs: options.pingIntervalMs,
      pongTimeoutMs: options.pongTimeoutMs,
      liveBatchMs: options.liveBatchMs,
    };
    this.#authTimeoutMs = options.authTimeoutMs ?? AUTH_TIMEOUT_SECS * 1000;
    this.#admission = new AdmissionLimiter(options.admission);
    replica.onApplied((ops, origin) => {
      this.#counters.applied += ops.length;
      // Never send operations back to the node they came from, over any of its links.
      const source = origin instanceof SyncSession ? origin.peer : undefined;
      for (const session of this.#sessions) if (session.peer !== source) session.enqueue(ops);
    });
    replica.onFork((proof, origin) => {
      this.#logger.log("warn", "fork detected: author signed two operations at one position", {
        author: proof.author,
        seq: proof.seq,
      });
      for (const session of this.#sessions) if (session !== origin) session.sendForkProof(proof);
    });
    // A forked author's newly quarantined operations go to every peer, the sender too: moving a
    // branch out of the chain quarantines operations that peer may lack.
    replica.onQuarantined((ops) => {
      for (const session of this.#sessions) session.enqueue(ops, true);
    });
    const ping = options.pingIntervalMs ?? PING_INTERVAL_SECS * 1000;
    const pong = options.pongTimeoutMs ?? PONG_TIMEOUT_SECS * 1000;
    const period = Math.min(1000, Math.max(10, Math.min(ping || pong, pong || ping) / 4));
    this.#tick = setInterval(() => {
      const now = Date.now();
      for (const session of this.#sessions) session.tick(now);
    }, period);
    this.trust.watch(({ added, removed, changed }) => {
      for (const session of this.#sessions) {
        if (
          removed.includes(session.peer) && this.policy.connectScope(session.peer) === undefined
        ) {
          this.#logger.log("info", "trust removed; closing session", { peer: session.peer });
          session.close(CloseCode.NOT_TRUSTED, "key no longer trusted");
        } else if (added.length + changed.length > 0) {
          // Operations refused before may be acceptable now: ask every peer for them again.
          session.resync();
        }
      }
    }, {
      signal: this.#abort.signal,
      intervalMs: options.trustPollMs ?? 500,
      onError: (error) =>
        this.#logger.log("error", "cannot reread the trust list; keeping the previous one", {
          error: error.message,
        }),
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
        mayAuthor: (author) => author === identity.nodeId || policy.mayAuthor(author),
      });
    } catch (error) {
      store?.close();
      throw error;
    }
    const node = new HuskiesNode(replica, policy, tokens, verifier, options);
    return node;
  }

  /** This node's id. */
  get nodeId(): NodeId {
    return this.replica.nodeId;
  }

  /**
   * Handles `GET /crdt-sync` (WebSocket upgrade) and returns the response;
   * returns `undefined` for other paths so the caller can serve them.
   */
  handleRequest(request: Request, info?: Deno.ServeHandlerInfo): Response | undefined {
    if (new URL(request.url).pathname !== SYNC_PATH) return undefined;
    if (this.#closed) return new Response("node is shutting down\n", { status: 503 });
    if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
      return new Response("this endpoint speaks WebSocket\n", { status: 426 });
    }
    const address = info && "hostname" in info.remoteAddr ? info.remoteAddr.hostname : "unknown";
    const admission = this.#admission.tryAdmit(address);
    if (!admission.ok) {
      this.#logger.log("warn", "connection refused", { address, reason: admission.reason });
      return new Response(`${admission.reason}\n`, {
        status: 429,
        headers: { "retry-after": "5" },
      });
    }
    const idleTimeout = Math.max(1, Math.round((this.#limits.pingIntervalMs ?? 30_000) / 1000));
    let upgraded: { socket: WebSocket; response: Response };
    try {
      upgraded = Deno.upgradeWebSocket(request, { idleTimeout });
    } catch (error) {
      admission.release(false);
      return new Response(`bad WebSocket upgrade: ${(error as Error).message}\n`, { status: 400 });
    }
    const { socket, response } = upgraded;
    const handshake = new ServerHandshake({
      identity: this.replica.identity,
      authorize: makeAuthorizer(this.policy, this.tokens, this.trust),
      verifier: this.#verifier,
    });
    this.#runSocket(socket, "inbound", handshake, admission.release, address);
    return response;
  }

  /**
   * Runs the handshake on a socket, then a sync session. Used for both
   * directions; returns a promise settled when the socket closes.
   */
  #runSocket(
    socket: WebSocket,
    direction: "inbound" | "outbound",
    handshake: ServerHandshake | ClientHandshake,
    release: (authenticated: boolean) => void,
    remote: string,
    onSession?: (session: SyncSession) => void,
  ): Promise<SocketOutcome> {
    socket.binaryType = "arraybuffer";
    let session: SyncSession | undefined;
    let scope: Scope | undefined;
    let released = false;
    const releaseOnce = (authenticated = false) => {
      if (!released) (released = true, release(authenticated));
    };
    let refusal: { code: number; reason: string } | undefined;
    const { promise, resolve } = Promise.withResolvers<SocketOutcome>();
    const timer = setTimeout(() => {
      const { code, reason } = HANDSHAKE_TIMEOUT_CLOSE;
      refusal = HANDSHAKE_TIMEOUT_CLOSE;
      this.#logger.log("warn", "handshake timed out", { remote });
      closeSocket(socket, code, reason, direction === "outbound");
      releaseOnce();
    }, this.#authTimeoutMs);
    const apply = (step: Step) => {
      if (step.send !== undefined) socket.send(step.send);
      if (step.close) {
        clearTimeout(timer);
        refusal = step.close;
        this.#logger.log("warn", "handshake refused", { remote, ...step.close });
        closeSocket(socket, step.close.code, step.close.reason, direction === "outbound");
        releaseOnce();
      } else if (step.done) {
        clearTimeout(timer);
        releaseOnce(true);
        scope = step.done.scope;
        session = this.#startSession(socket, step.done.peer, direction);
        onSession?.(session);
      }
    };
    socket.onopen = () => apply(handshake.start());
    socket.onmessage = (event) => {
      const data = typeof event.data === "string" ? event.data : new Uint8Array(event.data);
      if (session) {
        session.receive(data);
        return;
      }
      try {
        apply(typeof data === "string" ? handshake.receive(data) : handshake.receiveBinary());
      } catch (error) {
        // For example the token or trust file could not be read or written.
        this.#logger.log("error", "handshake failed on our side", {
          remote,
          error: (error as Error).message,
        });
        clearTimeout(timer);
        closeSocket(socket, CloseCode.INTERNAL_ERROR, "internal error", direction === "outbound");
        releaseOnce();
      }
    };
    socket.onerror = () => {};
    socket.onclose = (event) => {
      clearTimeout(timer);
      releaseOnce();
      session?.closed(event.code, event.reason);
      resolve({
        code: refusal?.code ?? event.code,
        reason: refusal?.reason ?? event.reason,
        session,
        scope,
      });
    };
    return promise;
  }

  #startSession(socket: WebSocket, peer: NodeId, direction: "inbound" | "outbound"): SyncSession {
    const session = new SyncSession({
      ...this.#limits,
      replica: this.replica,
      channel: {
        send: (data) => socket.send(data),
        close: (code, reason) => closeSocket(socket, code, reason, direction === "outbound"),
        get bufferedAmount() {
          return socket.bufferedAmount;
        },
      },
      peer,
      direction,
      logger: this.#logger,
      refused: this.#refused,
      onClose: (s, code, reason) => {
        this.#sessions.delete(s);
        this.#logger.log("info", "session closed", { peer, direction, code, reason });
      },
    });
    this.#sessions.add(session);
    this.#logger.log("info", "peer authenticated", { peer, direction });
    session.start();
    return session;
  }

  /**
   * Dials `url` and keeps a session with it, reconnecting with backoff until
   * a permanent refusal, {@link RendezvousClient.stop}, or the node closes.
   */
  connect(url: string, options: ConnectOptions = {}): RendezvousClient {
    if (this.#closed) throw new Error("Cannot connect: the node is closed");
    const parsed = new URL(url);
    if (parsed.protocol !== "ws:" && parsed.protocol !== "wss:") {
      throw new TypeError(`Cannot connect to ${url}: the URL must start with ws:// or wss://`);
    }
    const client = new RendezvousClient(url, options, {
      dial: (handshake, onSession, signal) => {
        let socket: WebSocket;
        try {
          socket = new WebSocket(url);
        } catch (error) {
          return Promise.resolve({ code: 1006, reason: (error as Error).message });
        }
        // Stopping mid-handshake closes the socket at once (no wait for the handshake timeout).
        const abort = () => closeSocket(socket, CloseCode.NORMAL, "client stopping", true);
        signal.addEventListener("abort", abort, { once: true });
        const outcome = this.#runSocket(socket, "outbound", handshake, () => {}, url, (session) => {
          // Joining with a token pins the hub; trust it too, so its operations are accepted.
          if (options.token !== undefined && this.trust.scopeOf(session.peer) === undefined) {
            this.trust.add(session.peer, "write", "hub joined with a token");
            this.#logger.log("info", "joined hub; trusting its key", { hub: session.peer });
          }
          onSession(session);
        });
        return outcome.finally(() => signal.removeEventListener("abort", abort));
      },
      identity: this.replica.identity,
      verifier: this.#verifier,
      logger: this.#logger,
      signal: this.#abort.signal,
      onStop: (c) => this.#clients.delete(c),
    });
    this.#clients.add(client);
    return client;
  }

  /** Live sessions. */
  sessions(): SyncSession[] {
    return [...this.#sessions];
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
      counters: { ...this.#counters, ...this.#refused },
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
    clearInterval(this.#tick);
    const stopping = [...this.#clients].map((client) => client.stop());
    for (const session of this.#sessions) session.close(CloseCode.GOING_AWAY, reason);
    await Promise.all(stopping);
    this.replica.close();
  }
}

/** How a socket ended. */
interface SocketOutcome {
  code: number;
  reason: string;
  session?: SyncSession;
  scope?: Scope;
}

interface ClientDeps {
  dial: (
    handshake: ClientHandshake,
    onSession: (session: SyncSession) => void,
    signal: AbortSignal,
  ) => Promise<SocketOutcome>;
  identity: Identity;
  verifier: SignatureVerifier;
  logger: Logger;
  signal: AbortSignal;
  onStop: (client: RendezvousClient) => void;
}

/**
 * An outbound connection that keeps itself alive: exponential backoff from
 * 1 s to 30 s with jitter, reset after a healthy session; WARN on failures,
 * ERROR from the 10th in a row; stops on permanent refusals.
 */
export class RendezvousClient {
  /** The peer URL. */
  readonly url: string;
  #state: RendezvousState = "connecting";
  #failures = 0;
  #lastError: string | undefined;
  readonly #stopped: Promise<void>;
  readonly #abort = new AbortController();
  #session: SyncSession | undefined;
  #wake: (() => void) | undefined;

  /** Created by {@link HuskiesNode.connect}. */
  constructor(url: string, options: ConnectOptions, deps: ClientDeps) {
    this.url = url;
    const signals = [deps.signal, this.#abort.signal, options.signal].filter((s) =>
      s !== undefined
    );
    const signal = AbortSignal.any(signals as AbortSignal[]);
    signal.addEventListener("abort", () => {
      this.#session?.close(CloseCode.NORMAL, "client stopping");
      this.#wake?.();
    }, { once: true });
    this.#stopped = this.#run(options, deps, signal).finally(() => {
      this.#state = "stopped";
      deps.onStop(this);
    });
  }

  async #run(options: ConnectOptions, deps: ClientDeps, signal: AbortSignal): Promise<void> {
    const healthyAfter = options.healthyAfterMs ?? 10_000;
    while (!signal.aborted) {
      this.#state = "connecting";
      let handshake: ClientHandshake;
      try {
        handshake = new ClientHandshake({
          identity: deps.identity,
          verifier: deps.verifier,
          hubKey: options.hubKey,
          token: options.token,
        });
      } catch (error) {
        this.#lastError = (error as Error).message;
        deps.logger.log("error", "rendezvous client cannot start", {
          url: this.url,
          error: this.#lastError,
        });
        return;
      }
      const started = Date.now();
      const result = await deps.dial(handshake, (session) => {
        this.#session = session;
        this.#state = "connected";
      }, signal);
      this.#session = undefined;
      if (signal.aborted) return;
      const healthy = result.session !== undefined && Date.now() - started >= healthyAfter;
      if (healthy) this.#failures = 0;
      if (isPermanentClose(result.code)) {
        this.#lastError = `${result.code} ${result.reason}`;
        deps.logger.log("error", "rendezvous refused permanently; not retrying", {
          url: this.url,
          code: result.code,
          reason: result.reason,
        });
        return;
      }
      if (!healthy) this.#failures++;
      this.#lastError = result.session
        ? `session ended: ${result.code} ${result.reason}`
        : `connection failed: ${result.code} ${result.reason || "unreachable"}`;
      const delay = backoffDelay(Math.max(1, this.#failures), options);
      deps.logger.log(
        this.#failures >= RENDEZVOUS_ERROR_THRESHOLD ? "error" : "warn",
        "rendezvous connection lost; retrying",
        { url: this.url, failures: this.#failures, retryInMs: delay, last: this.#lastError },
      );
      this.#state = "waiting";
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, delay);
        this.#wake = () => (clearTimeout(timer), resolve());
      });
      this.#wake = undefined;
    }
  }

  /** Current state, consecutive failures, and the last error. */
  info(): { url: string; state: RendezvousState; failures: number; lastError?: string } {
    return {
      url: this.url,
      state: this.#state,
      failures: this.#failures,
      lastError: this.#lastError,
    };
  }

  /** Resolves when the client has stopped for good. */
  get stopped(): Promise<void> {
    return this.#stopped;
  }

  /** Stops reconnecting and closes the current session. */
  stop(): Promise<void> {
    this.#abort.abort();
    return this.#stopped;
  }
}
