/**
 * Connections of a node with its peers: an inbound channel runs the server
 * handshake, a dial runs the client handshake, and an authenticated
 * connection becomes a session runner that joins the hub. Reports
 * authentications, refusals, session events and closes as node events.
 * @module
 */
import { type JoinerAdmitter, makeAuthorizer } from "../auth/authorize.ts";
import {
  AUTH_TIMEOUT_SECS,
  ClientHandshake,
  type ClientHandshakeOptions,
  type HandshakeDone,
  ServerHandshake,
} from "../auth/handshake.ts";
import { PreauthClient } from "../auth/preauth.ts";
import { preauthenticate, type PreauthUpgrade } from "../auth/preauth_http.ts";
import type { AccessPolicy, TokenStore, TrustStore } from "../auth/mod.ts";
import type { NodeId, SignatureVerifier } from "../crdt/identity.ts";
import type { VerifyPool } from "../crdt/verify_pool.ts";
import type { Replica } from "../crdt/replica.ts";
import { CloseCode } from "../protocol/close_codes.ts";
import type { Channel, Dialer, DialResult } from "./channel.ts";
import { type ConnectionOutcome, runConnection } from "./connection.ts";
import type { Direction, NodeEventEmitter } from "./events.ts";
import type { Hub } from "./hub.ts";
import { livePaceMs } from "./live_pace.ts";
import type { Logger } from "./logger.ts";
import { emitSessionEvent, type NodeCounters } from "./node_wiring.ts";
import type { RendezvousAttempt } from "./rendezvous_client.ts";
import { SyncSession } from "./session.ts";
import type { SessionLimits } from "./session_types.ts";
import { SessionRunner } from "./session_runner.ts";
import type { Timers } from "./timers.ts";
import { type Handshake, preauthClientHandshake, welcomeHandshake } from "./preauth_handshakes.ts";
import type { Preauthenticated } from "./websocket.ts";

/** Everything a node's connections share. */
export interface PeerConnectionsOptions {
  /** The replica. */
  replica: Replica;
  /** Who may connect. */
  policy: AccessPolicy;
  /** The trust list (a hub joined with a token is trusted here). */
  trust: TrustStore;
  /** Join tokens. */
  tokens: TokenStore;
  /** Shared signature verifier. */
  verifier: SignatureVerifier;
  /** Where sessions check received signatures ahead, off the event loop. */
  verifyPool?: VerifyPool;
  /** The clock and timers. */
  timers: Timers;
  /** The logger. */
  logger: Logger;
  /** Session limits. */
  limits: SessionLimits;
  /** Handshake deadline, ms. @default AUTH_TIMEOUT_SECS × 1000 */
  authTimeoutMs?: number;
  /** Time a dial may take to open, ms. */
  dialTimeoutMs: number;
  /** Speak as a legacy (v1) peer. */
  legacy?: boolean;
  /**
   * Whether dials pre-authenticate over HTTP first (`PROTOCOL.md` §3.10),
   * falling back to the in-band handshake when the server has no challenge
   * route. True for the WebSocket dialer.
   */
  preauthDial?: boolean;
  /** The hub every session joins. */
  hub: Hub<SessionRunner>;
  /** Where events go. */
  events: NodeEventEmitter;
  /** Admits a key that redeemed a join token (a grant in a mesh; see `members.ts`). */
  admitJoiner?: JoinerAdmitter;
  /** A pinned hub told us its mesh id and this node has none yet: adopt it. */
  learnMesh?: (mesh: string, hub: NodeId) => void;
  /** Node-wide counters. */
  counters: NodeCounters;
  /** Where peers' reported clocks are kept. */
}

/** How a failed dial ends its attempt. */
type DialFailure = { code: number; reason: string };

/** Logs a refused key with the fix that lets it in (one line, on every refusal path). */
export function logRefusedKey(
  logger: Logger,
  remote: string,
  refusal: { code: number; reason: string; key: NodeId },
): void {
  logger.log(
    "warn",
    `refused key ${refusal.key}: to let it in, run \`huskies trust add ${refusal.key}\`` +
      " here (in a mesh: `huskies members grant` on an admin), or give it a join token" +
      " (`huskies token create`)",
    { remote, code: refusal.code, reason: refusal.reason, key: refusal.key },
  );
}

/** See the module doc. */
export class PeerConnections {
  readonly #o: PeerConnectionsOptions;

  /** Creates the connection factory of one node. */
  constructor(options: PeerConnectionsOptions) {
    this.#o = options;
  }

  /**
   * Runs the server handshake on an inbound channel (or, for a peer
   * authenticated before the upgrade, sends its welcome), then a session.
   */
  accept(
    channel: Channel,
    remote: string,
    onHandshakeEnd?: (authenticated: boolean) => void,
    preauthenticated?: Preauthenticated,
  ): Promise<ConnectionOutcome> {
    const { replica, policy, tokens, trust, verifier } = this.#o;
    const handshake = preauthenticated ? welcomeHandshake(preauthenticated) : new ServerHandshake({
      identity: replica.identity,
      authorize: makeAuthorizer(policy, tokens, trust, this.#o.admitJoiner),
      verifier,
      mesh: () => replica.members?.mesh,
    });
    return this.#run(channel, "inbound", handshake, remote, onHandshakeEnd);
  }

  /**
   * The attempt function of a rendezvous client for `url`: dial, client
   * handshake (pinning `hubKey` or the token's hub), session.
   * @throws {TypeError} `token` or `hubKey` is invalid (checked now, not per attempt).
   */
  dialAttempt(
    url: string,
    dialer: Dialer,
    options: { token?: string; hubKey?: NodeId },
  ): RendezvousAttempt {
    const { replica, verifier, trust, logger } = this.#o;
    const handshakeOptions: ClientHandshakeOptions = {
      identity: replica.identity,
      verifier,
      hubKey: options.hubKey,
      token: options.token,
    };
    new ClientHandshake(handshakeOptions); // checks the token and hub key up front
    return async (signal, onAuthenticated) => {
      let handshake: Handshake = new ClientHandshake(handshakeOptions);
      let headers: Record<string, string> | undefined;
      if (this.#o.preauthDial) {
        const client = new PreauthClient(handshakeOptions);
        const upgrade = await this.#timed<PreauthUpgrade>(
          (bounded) => this.#preauthenticate(url, client, bounded),
          signal,
          (ms) => ({ close: { code: 1006, reason: `no challenge after ${ms} ms` } }),
        );
        if ("close" in upgrade) return this.#dialRefused(url, upgrade.close);
        if ("headers" in upgrade) {
          headers = upgrade.headers;
          handshake = preauthClientHandshake(client);
        }
      }
      const dialed = await this.#timed<DialResult>(
        (bounded) => dialer(url, bounded, headers),
        signal,
        (ms) => ({ ok: false, code: 1006, reason: `not open after ${ms} ms` }),
      );
      if (!dialed.ok) return this.#dialRefused(url, dialed);
      const { channel } = dialed;
      // Stopping mid-handshake or mid-session closes at once.
      const abort = () => channel.close(CloseCode.NORMAL, "client stopping");
      signal.addEventListener("abort", abort, { once: true });
      if (signal.aborted) abort();
      const outcome = await this.#run(channel, "outbound", handshake, url, undefined, (done) => {
        const peer = done.peer;
        // A pinned hub (token or key) signed its mesh id: the mesh this node joins.
        const pinned = options.token !== undefined || options.hubKey !== undefined;
        if (done.mesh && pinned && replica.members === undefined) {
          this.#o.learnMesh?.(done.mesh, peer);
        }
        // Joining with a token pins the hub; trust it too, so its operations are accepted.
        if (options.token !== undefined && trust.scopeOf(peer) === undefined) {
          trust.add(peer, "write", "hub joined with a token");
          logger.log("info", "joined hub; trusting its key", { hub: peer });
        }
        onAuthenticated();
      });
      signal.removeEventListener("abort", abort);
      return outcome;
    };
  }

  /** Fetches a challenge and proves our key; a network error is an unreachable server. */
  async #preauthenticate(
    url: string,
    client: PreauthClient,
    signal: AbortSignal,
  ): Promise<PreauthUpgrade> {
    try {
      return await preauthenticate(url, client, { signal });
    } catch (error) {
      return {
        close: { code: 1006, reason: `challenge request failed: ${(error as Error).name}` },
      };
    }
  }

  /** A dial that failed; a refusal by the server (4xxx) is reported as a `refused` event. */
  #dialRefused(url: string, close: { code: number; reason: string }): DialFailure {
    if (close.code >= 4000) {
      this.#o.events.emit("refused", {
        kind: "handshake",
        direction: "outbound",
        remote: url,
        code: close.code,
        reason: close.reason,
      });
    }
    return { code: close.code, reason: close.reason };
  }

  /**
   * Runs `step` (a challenge request or a dial), giving up after the dial
   * timeout (a dead link should not wait on TCP) with `timedOut`'s result.
   */
  async #timed<T>(
    step: (signal: AbortSignal) => Promise<T>,
    signal: AbortSignal,
    timedOut: (ms: number) => T,
  ): Promise<T> {
    const { timers, dialTimeoutMs } = this.#o;
    const timeout = new AbortController();
    const timer = timers.setTimeout(() => timeout.abort(), dialTimeoutMs);
    try {
      const result = await step(AbortSignal.any([signal, timeout.signal]));
      const failed = typeof result === "object" && result !== null &&
        (("ok" in result && !result.ok) || "close" in result);
      if (failed && timeout.signal.aborted && !signal.aborted) return timedOut(dialTimeoutMs);
      return result;
    } finally {
      timers.clearTimeout(timer);
    }
  }

  #run(
    channel: Channel,
    direction: Direction,
    handshake: Handshake,
    remote: string,
    onHandshakeEnd?: (authenticated: boolean) => void,
    onSession?: (done: HandshakeDone) => void,
  ): Promise<ConnectionOutcome> {
    const { events, timers, logger } = this.#o;
    return runConnection({
      channel,
      direction,
      handshake,
      timers,
      authTimeoutMs: this.#o.authTimeoutMs ?? AUTH_TIMEOUT_SECS * 1000,
      remote,
      logger,
      onHandshakeEnd,
      onRefused: (refusal) => {
        if (refusal.key !== undefined) {
          logRefusedKey(logger, remote, { ...refusal, key: refusal.key });
        }
        events.emit("refused", { kind: "handshake", direction, remote, ...refusal });
      },
      startSession: (done, open) => {
        const { peer, scope } = done;
        onSession?.(done);
        events.emit("peer-authenticated", { peer, direction, remote, scope });
        return this.#startSession(open, peer, direction, remote);
      },
    });
  }

  #startSession(
    channel: Channel,
    peer: NodeId,
    direction: Direction,
    remote: string,
  ): SessionRunner {
    const { replica, timers, logger, hub, events, counters } = this.#o;
    const session = new SyncSession({
      ...this.#o.limits,
      replica,
      peer,
      direction,
      legacy: this.#o.legacy,
      logger,
      now: timers.now(),
      paceMs: () => livePaceMs(hub.size),
    });
    const runner = new SessionRunner({
      session,
      channel,
      remote,
      timers,
      logger,
      verifyPool: this.#o.verifyPool,
      onEvent: (_, event) => emitSessionEvent(events, counters, event, peer, direction),
      onClosed: (closed, code, reason) => {
        hub.delete(closed);
        logger.log("info", "session closed", { peer, direction, code, reason });
        events.emit("session-closed", { peer, direction, code, reason });
      },
    });
    hub.add(runner);
    logger.log("info", "peer authenticated", { peer, direction });
    runner.start();
    return runner;
  }
}
