/**
 * One authenticated sync session with a peer: clock exchange, chunked delta
 * catch-up, `ready`, live streaming, fork proofs, heartbeat and backpressure.
 * The session speaks through a {@link Channel}, so the same code runs over a
 * WebSocket or an in-memory simulated network.
 * @module
 */
import { utf8Length } from "../protocol/bytes.ts";
import { clockLag, type VectorClock } from "../crdt/clock.ts";
import type { NodeId } from "../crdt/identity.ts";
import { encodeOperation, type Operation } from "../crdt/operation.ts";
import type { Replica } from "../crdt/replica.ts";
import type { ForkProof } from "../crdt/store.ts";
import { CloseCode } from "../protocol/close_codes.ts";
import {
  bulkFrames,
  decodeBinaryFrame,
  decodeTextFrame,
  encodeBinaryFrame,
  encodeClockFrame,
  encodeForkFrame,
  PING_FRAME,
  PONG_FRAME,
  ProtocolError,
  READY_FRAME,
} from "./frames.ts";
import { type Logger, silentLogger } from "./logger.ts";

/** The transport a session writes to. */
export interface Channel {
  /** Sends one text or binary frame. */
  send(data: string | Uint8Array): void;
  /** Closes the transport with a code and a short reason. */
  close(code: number, reason: string): void;
  /** Bytes accepted by `send` but not yet written out. */
  readonly bufferedAmount: number;
}

/** Tunables of a session; every field has a default. */
export interface SessionLimits {
  /** Largest frame sent or accepted, in bytes. @default 1 MiB */
  maxFrameBytes?: number;
  /** Outbound bytes (queued plus buffered) before the peer is dropped as too slow. @default 8 MiB */
  maxOutboundBytes?: number;
  /** Operations failing verification before the peer is disconnected. @default 100 */
  maxInvalidOps?: number;
  /** Heartbeat interval for outbound sessions, ms (0 disables). @default 30000 */
  pingIntervalMs?: number;
  /** Silence after which an outbound session is dropped, ms (0 disables). @default 60000 */
  pongTimeoutMs?: number;
  /**
   * Live operations sent within this window after a previous live send wait
   * for the window to end and go out together, so a busy peer gets many
   * operations per frame; an idle one gets each at once. ms, 0 disables.
   * @default 2
   */
  liveBatchMs?: number;
}

/** Options for a {@link SyncSession}. */
export interface SessionOptions extends SessionLimits {
  /** The local replica. */
  replica: Replica;
  /** The transport. */
  channel: Channel;
  /** The authenticated peer's node id. */
  peer: NodeId;
  /** Whether we accepted (`inbound`) or dialled (`outbound`) the connection. */
  direction: "inbound" | "outbound";
  /** Behave as a legacy (v1) peer: send a full `bulk` first, never a clock or `ready`. */
  legacy?: boolean;
  /** Logger. @default silent */
  logger?: Logger;
  /** Called once when the session ends. */
  onClose?: (session: SyncSession, code: number, reason: string) => void;
  /** Node-wide counters of refused operations, incremented by every session. */
  refused?: { invalid: number; unauthorized: number };
}

/** Counters and state of a session, as shown by `huskies status`. */
export interface SessionStats {
  /** The peer's node id. */
  peer: NodeId;
  /** `inbound` or `outbound`. */
  direction: "inbound" | "outbound";
  /** `syncing` until both sides are ready, then `live`, then `closed`. */
  state: "syncing" | "live" | "closed";
  /** True when the peer spoke the legacy (v1) protocol. */
  legacy: boolean;
  /** Operations we hold that the peer is not known to hold. */
  clockLag: number;
  /** Operations received from / sent to the peer. */
  opsIn: number;
  /** Operations sent to the peer. */
  opsOut: number;
  /** Frame bytes received. */
  bytesIn: number;
  /** Frame bytes sent. */
  bytesOut: number;
  /** Operations from the peer that failed verification. */
  invalidOps: number;
  /** Operations queued for the peer, not yet sent. */
  queuedOps: number;
  /** When the session was authenticated (ms since epoch). */
  since: number;
  /** When catch-up finished both ways and the session went live (ms since epoch). */
  liveAt?: number;
}

const DEFAULTS = {
  maxFrameBytes: 1024 * 1024,
  maxOutboundBytes: 8 * 1024 * 1024,
  maxInvalidOps: 100,
  pingIntervalMs: 30_000,
  pongTimeoutMs: 60_000,
  liveBatchMs: 2,
};

/** Bytes the socket may hold before live sends wait, so that operations batch up. */
const LIVE_BATCH_WATERMARK = 64 * 1024;

/**
 * One sync session. Create it after authentication, call {@link start}, feed
 * it every received frame through {@link receive} and report the transport's
 * close through {@link closed}.
 */
export class SyncSession {
  /** The peer's node id. */
  readonly peer: NodeId;
  /** `inbound` or `outbound`. */
  readonly direction: "inbound" | "outbound";
  readonly #replica: Replica;
  readonly #channel: Channel;
  readonly #logger: Logger;
  readonly #limits: Required<SessionLimits>;
  readonly #onClose?: SessionOptions["onClose"];
  readonly #actAsLegacy: boolean;
  readonly #refused: { invalid: number; unauthorized: number };
  #peerLegacy = false;
  #peerSpoke = false;
  #peerReady = false;
  #deltaSent = false;
  #closed = false;
  #queue: Operation[] = [];
  #queuedBytes = 0;
  #flushScheduled = false;
  #lastLiveSend = 0;
  #peerClock: VectorClock = {};
  #lastReceived = Date.now();
  #lastPing = Date.now();
  readonly #since = Date.now();
  #liveAt: number | undefined;
  #stats = { opsIn: 0, opsOut: 0, bytesIn: 0, bytesOut: 0, invalidOps: 0 };

  /** Creates a session; nothing is sent until {@link start}. */
  constructor(options: SessionOptions) {
    this.peer = options.peer;
    this.direction = options.direction;
    this.#replica = options.replica;
    this.#channel = options.channel;
    this.#logger = options.logger ?? silentLogger;
    this.#onClose = options.onClose;
    this.#actAsLegacy = options.legacy ?? false;
    this.#refused = options.refused ?? { invalid: 0, unauthorized: 0 };
    this.#limits = {
      maxFrameBytes: options.maxFrameBytes ?? DEFAULTS.maxFrameBytes,
      maxOutboundBytes: options.maxOutboundBytes ?? DEFAULTS.maxOutboundBytes,
      maxInvalidOps: options.maxInvalidOps ?? DEFAULTS.maxInvalidOps,
      pingIntervalMs: options.pingIntervalMs ?? DEFAULTS.pingIntervalMs,
      pongTimeoutMs: options.pongTimeoutMs ?? DEFAULTS.pongTimeoutMs,
      liveBatchMs: options.liveBatchMs ?? DEFAULTS.liveBatchMs,
    };
  }

  /** True once the session has ended. */
  get isClosed(): boolean {
    return this.#closed;
  }

  #noteLive(): void {
    if (this.#liveAt === undefined && this.isLive) this.#liveAt = Date.now();
  }

  /** True when both sides finished catch-up and live operations flow. */
  get isLive(): boolean {
    return this.#peerReady && this.#deltaSent && !this.#closed;
  }

  /** Sends the first sync frame: our clock (or, acting as a legacy peer, a full bulk). */
  start(): void {
    if (this.#actAsLegacy) {
      this.#peerReady = true; // a legacy peer never waits for `ready`
      void this.#sendBulk(this.#replica.opsSince({}), true);
      return;
    }
    this.#send(encodeClockFrame(this.#replica.clock(), this.#replica.heads()));
  }

  /** Handles one frame from the peer. */
  receive(data: string | Uint8Array): void {
    if (this.#closed) return;
    this.#lastReceived = Date.now();
    const size = typeof data === "string" ? utf8Length(data) : data.byteLength;
    this.#stats.bytesIn += size;
    if (size > this.#limits.maxFrameBytes) {
      this.close(CloseCode.TOO_BIG, `frame of ${size} bytes exceeds ${this.#limits.maxFrameBytes}`);
      return;
    }
    try {
      if (typeof data !== "string") {
        this.#applyOps([decodeBinaryFrame(data)], false);
        return;
      }
      const frame = decodeTextFrame(data);
      switch (frame.type) {
        case "clock":
          this.#peerSpoke = true;
          this.#peerClock = { ...frame.clock };
          this.#replica.notePeerClock(frame.clock, this.peer);
          if (!this.#actAsLegacy) {
            void this.#sendBulk(this.#replica.opsSince(frame.clock, frame.heads), false);
          }
          break;
        case "bulk":
          if (!this.#peerSpoke) {
            // A bulk before any clock: a legacy peer. Answer with everything we hold.
            this.#peerSpoke = true;
            this.#peerLegacy = true;
            this.#peerReady = true;
            this.#noteLive();
            this.#applyOps(frame.ops, true);
            if (!this.#actAsLegacy) {
              void this.#sendBulk(this.#replica.opsSince({}), true, frame.legacyStrings);
            }
          } else {
            this.#applyOps(frame.ops, true);
          }
          break;
        case "ready":
          this.#peerReady = true;
          // The peer sent all it meant to for our clock: a claim it left unmet was empty.
          this.#replica.notePeerCaughtUp(this.peer);
          this.#noteLive();
          this.#scheduleFlush();
          break;
        case "fork":
          this.#replica.addForkProof(frame.proof, this);
          break;
        case "ping":
          this.#send(PONG_FRAME);
          break;
        case "pong":
        case "unknown":
          break;
      }
    } catch (error) {
      if (error instanceof ProtocolError) {
        this.close(CloseCode.PROTOCOL_ERROR, `protocol violation: ${error.message}`);
      } else {
        this.#logger.log("error", "sync session failed", {
          peer: this.peer,
          error: (error as Error).message,
        });
        this.close(CloseCode.INTERNAL_ERROR, "internal error");
      }
    }
  }

  #applyOps(ops: Operation[], amortise: boolean): void {
    if (ops.length === 0) return;
    this.#stats.opsIn += ops.length;
    const result = this.#replica.receive(ops, { amortise, origin: this });
    let invalid = 0;
    for (let i = 0; i < ops.length; i++) {
      const status = result.statuses[i];
      if (status === "invalid") invalid++;
      else if (status === "unauthorized") this.#refused.unauthorized++;
      else if (status !== "forked-author") this.#notePeerHas(ops[i]);
    }
    if (invalid > 0) {
      this.#refused.invalid += invalid;
      this.#stats.invalidOps += invalid;
      this.#logger.log("warn", "dropped operations that failed verification", {
        peer: this.peer,
        count: invalid,
        total: this.#stats.invalidOps,
      });
      if (this.#stats.invalidOps > this.#limits.maxInvalidOps) {
        this.close(CloseCode.TOO_MANY_INVALID, "too many invalid operations");
      }
    }
  }

  #notePeerHas(op: Operation): void {
    // A forked author's operation from its fork point on is quarantined: it says nothing of
    // which of that author's agreed operations the peer holds.
    const point = this.#replica.forkPoint(op.author);
    if (point !== undefined && op.seq >= point) return;
    if ((this.#peerClock[op.author] ?? 0) < op.seq) this.#peerClock[op.author] = op.seq;
  }

  /**
   * Sends the delta (or a full dump) in frames no larger than the limit,
   * waiting for the socket to drain between frames so memory stays bounded,
   * then known fork proofs and `ready`.
   */
  async #sendBulk(ops: Operation[], full: boolean, legacyStrings = false): Promise<void> {
    // Live operations queued so far are covered by this snapshot.
    this.#queue = [];
    this.#queuedBytes = 0;
    let frames = 0;
    for (const frame of bulkFrames(ops, this.#limits.maxFrameBytes, legacyStrings)) {
      await this.#drainBelow(this.#limits.maxOutboundBytes / 2);
      if (this.#closed) return;
      this.#send(frame);
      frames++;
    }
    // A full dump is how a legacy peer (or an answer to one) says "I am here": send it even empty.
    if (full && frames === 0) this.#send('{"type":"bulk","ops":[]}');
    this.#stats.opsOut += ops.length;
    for (const op of ops) this.#notePeerHas(op);
    if (!this.#actAsLegacy) {
      for (const proof of this.#replica.forks()) this.#send(encodeForkFrame(proof));
      if (!this.#peerLegacy) {
        // Forked authors' quarantined operations, after the proofs so the peer quarantines them
        // too: honest operations made on either branch may depend on them.
        const quarantined = this.#replica.quarantineToSend();
        for (const frame of bulkFrames(quarantined, this.#limits.maxFrameBytes)) {
          await this.#drainBelow(this.#limits.maxOutboundBytes / 2);
          if (this.#closed) return;
          this.#send(frame);
        }
        this.#stats.opsOut += quarantined.length;
      }
      if (!full || !this.#peerLegacy) this.#send(READY_FRAME);
    }
    this.#deltaSent = true;
    this.#noteLive();
    this.#logger.log("debug", "catch-up sent", { peer: this.peer, ops: ops.length });
    this.#scheduleFlush();
  }

  async #drainBelow(bytes: number): Promise<void> {
    while (!this.#closed && this.#channel.bufferedAmount > bytes) {
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
  }

  /**
   * Queues operations applied elsewhere for this peer. They are sent once the
   * peer is ready, in the order given, batched into as few frames as fit.
   * With `quarantined` (operations newly quarantined, with their anchors),
   * the peer's clock does not filter them, and a legacy peer gets none.
   */
  enqueue(ops: readonly Operation[], quarantined = false): void {
    if (this.#closed) return;
    if (quarantined && (this.#peerLegacy || this.#actAsLegacy)) return;
    for (const op of ops) {
      if (!quarantined && (this.#peerClock[op.author] ?? 0) >= op.seq) continue;
      this.#queue.push(op);
      this.#queuedBytes += encodeOperation(op).length + 1;
    }
    if (this.#queuedBytes + this.#channel.bufferedAmount > this.#limits.maxOutboundBytes) {
      this.#logger.log("warn", "peer fell too far behind; disconnecting", {
        peer: this.peer,
        queued: this.#queue.length,
        buffered: this.#channel.bufferedAmount,
      });
      this.close(CloseCode.SLOW_CONSUMER, "outbound buffer over limit; reconnect to catch up");
      return;
    }
    this.#scheduleFlush();
  }

  /**
   * Sends our clock again, asking the peer for everything we lack. Used when
   * something changed what we accept (a key was trusted or its scope changed),
   * so operations refused earlier are fetched again.
   */
  resync(): void {
    if (!this.#closed && !this.#actAsLegacy && !this.#peerLegacy) {
      this.#send(encodeClockFrame(this.#replica.clock(), this.#replica.heads()));
    }
  }

  /** Sends a fork proof to the peer. */
  sendForkProof(proof: ForkProof): void {
    if (!this.#closed) this.#send(encodeForkFrame(proof));
  }

  #scheduleFlush(): void {
    if (this.#flushScheduled || !this.isLive || this.#queue.length === 0) return;
    this.#flushScheduled = true;
    const wait = this.#lastLiveSend + this.#limits.liveBatchMs - performance.now();
    if (wait > 0) setTimeout(() => void this.#flush(), wait);
    else queueMicrotask(() => void this.#flush());
  }

  async #flush(): Promise<void> {
    await this.#drainBelow(LIVE_BATCH_WATERMARK);
    this.#flushScheduled = false;
    if (this.#closed || this.#queue.length === 0) return;
    const ops = this.#queue;
    this.#queue = [];
    this.#queuedBytes = 0;
    this.#lastLiveSend = performance.now();
    if (ops.length === 1) this.#send(encodeBinaryFrame(ops[0]));
    else for (const frame of bulkFrames(ops, this.#limits.maxFrameBytes)) this.#send(frame);
    this.#stats.opsOut += ops.length;
    for (const op of ops) this.#notePeerHas(op);
  }

  #send(data: string | Uint8Array): void {
    if (this.#closed) return;
    try {
      this.#channel.send(data);
      this.#stats.bytesOut += typeof data === "string" ? utf8Length(data) : data.byteLength;
    } catch (error) {
      this.#logger.log("warn", "send failed", { peer: this.peer, error: (error as Error).message });
      this.closed(CloseCode.GOING_AWAY, "send failed");
    }
  }

  /**
   * Keepalive check, called periodically by the owner. Outbound sessions send
   * a heartbeat every ping interval; a session silent past the timeout closes.
   */
  tick(now: number = Date.now()): void {
    if (this.#closed || this.direction !== "outbound") return;
    const { pingIntervalMs, pongTimeoutMs } = this.#limits;
    if (pongTimeoutMs > 0 && now - this.#lastReceived > pongTimeoutMs) {
      this.#logger.log("warn", "peer silent; dropping", { peer: this.peer });
      this.close(CloseCode.KEEPALIVE_TIMEOUT, "keepalive timeout");
      return;
    }
    if (pingIntervalMs > 0 && now - this.#lastPing >= pingIntervalMs) {
      this.#lastPing = now;
      this.#send(PING_FRAME);
    }
  }

  /** Closes the transport and ends the session. */
  close(code: number, reason: string): void {
    if (this.#closed) return;
    try {
      this.#channel.close(code, reason);
    } catch {
      // The transport may already be gone.
    }
    this.closed(code, reason);
  }

  /** Reports that the transport closed. Idempotent. */
  closed(code: number, reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#queue = [];
    this.#queuedBytes = 0;
    this.#onClose?.(this, code, reason);
  }

  /** A snapshot of the session's counters. */
  stats(): SessionStats {
    return {
      peer: this.peer,
      direction: this.direction,
      state: this.#closed ? "closed" : this.isLive ? "live" : "syncing",
      legacy: this.#peerLegacy,
      clockLag: clockLag(this.#replica.clock(), this.#peerClock),
      queuedOps: this.#queue.length,
      since: this.#since,
      ...(this.#liveAt === undefined ? {} : { liveAt: this.#liveAt }),
      ...this.#stats,
    };
  }
}
