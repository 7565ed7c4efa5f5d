/**
 * One authenticated sync session with a peer, as pure logic: clock exchange,
 * chunked delta catch-up, `ready`, live streaming, fork proofs, heartbeat and
 * backpressure. In the shape of y-protocols' `readSyncMessage`: every method
 * takes the time and returns what to do ({@link SessionOutput}: frames to
 * send, a close, the next wake-up time). The caller owns the transport and
 * the clock (`session_runner.ts` does this for a node); nothing here reads a
 * clock, sets a timer or polls.
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
  encodePingFrame,
  PING_FRAME,
  PONG_FRAME,
  ProtocolError,
} from "./frames.ts";
import { catchUpFrames } from "./catch_up.ts";
import { type Logger, silentLogger } from "./logger.ts";
import {
  type CatchUpCursor,
  SESSION_DEFAULTS,
  type SessionLimits,
  type SessionOptions,
  type SessionOutput,
  type SessionPhase,
  type SessionStats,
} from "./session_types.ts";

export type {
  CatchUpCursor,
  SessionEvent,
  SessionLimits,
  SessionOptions,
  SessionOutput,
  SessionPhase,
  SessionStats,
} from "./session_types.ts";

/** Bytes the transport may hold before live sends wait, so that operations batch up. */
const LIVE_BATCH_WATERMARK = 64 * 1024;
/** How soon to look again while the transport drains (it reports no drain event). */
export const DRAIN_POLL_MS = 2;

/**
 * One sync session. Create it after authentication, call {@link start}, pass
 * every received frame to {@link receive}, call {@link tick} at the
 * `wakeAt` times it asks for, and report the transport's close through
 * {@link closed}.
 */
export class SyncSession {
  /** The peer's node id. */
  readonly peer: NodeId;
  /** `inbound` or `outbound`. */
  readonly direction: "inbound" | "outbound";
  readonly #replica: Replica;
  readonly #logger: Logger;
  readonly #limits: Required<SessionLimits>;
  readonly #actAsLegacy: boolean;
  #state: SessionPhase = { phase: "awaiting-clock", peerReady: false };
  #peerLegacy = false;
  #peerSpoke = false;
  #queue: Operation[] = [];
  #queuedBytes = 0;
  #lastLiveSend = -Infinity;
  /** What we know the peer holds: its clock, plus what we sent it since (filters what we send). */
  #peerClock: VectorClock = {};
  /** The peer's own latest clock, for status. */
  #reportedClock: VectorClock | undefined;
  #reportedAt: number | undefined;
  #lastReceived: number;
  #lastPing: number;
  readonly #since: number;
  #liveAt: number | undefined;
  #caughtUp = false;
  #stats = { opsIn: 0, opsOut: 0, bytesIn: 0, bytesOut: 0, invalidOps: 0 };
  #out: SessionOutput = { frames: [], events: [] };

  /** Creates a session; nothing is sent until {@link start}. */
  constructor(options: SessionOptions) {
    this.peer = options.peer;
    this.direction = options.direction;
    this.#replica = options.replica;
    this.#logger = options.logger ?? silentLogger;
    this.#actAsLegacy = options.legacy ?? false;
    this.#since = this.#lastReceived = this.#lastPing = options.now;
    this.#limits = { ...SESSION_DEFAULTS };
    for (const key of Object.keys(SESSION_DEFAULTS) as (keyof SessionLimits)[]) {
      const value = options[key];
      if (value !== undefined) this.#limits[key] = value;
    }
  }

  /** The current state. */
  get state(): Readonly<SessionPhase> {
    return this.#state;
  }

  /** True once the session has ended. */
  get isClosed(): boolean {
    return this.#state.phase === "closed";
  }

  /** True when both sides finished catch-up and live operations flow. */
  get isLive(): boolean {
    return this.#state.phase === "live";
  }

  /** Sends the first sync frame: our clock (or, acting as a legacy peer, a full bulk). */
  start(now: number): SessionOutput {
    if (this.#actAsLegacy) {
      // A legacy peer never waits for `ready`.
      this.#beginCatchUp(this.#replica.opsSince({}), true, true);
      return this.tick(now, 0);
    }
    this.#send(encodeClockFrame(this.#replica.clock(), this.#replica.heads()));
    return this.#take(now);
  }

  /** Handles one frame from the peer. */
  receive(data: string | Uint8Array, now: number): SessionOutput {
    if (this.isClosed) return this.#take(now);
    this.#lastReceived = now;
    const size = typeof data === "string" ? utf8Length(data) : data.byteLength;
    this.#stats.bytesIn += size;
    if (size > this.#limits.maxFrameBytes) {
      this.#close(
        CloseCode.TOO_BIG,
        `frame of ${size} bytes exceeds ${this.#limits.maxFrameBytes}`,
      );
      return this.#take(now);
    }
    try {
      this.#handle(data, now);
    } catch (error) {
      if (error instanceof ProtocolError) {
        this.#close(CloseCode.PROTOCOL_ERROR, `protocol violation: ${error.message}`);
      } else {
        this.#logger.log("error", "sync session failed", {
          peer: this.peer,
          error: (error as Error).message,
        });
        this.#close(CloseCode.INTERNAL_ERROR, "internal error");
      }
    }
    return this.#take(now);
  }

  #handle(data: string | Uint8Array, now: number): void {
    if (typeof data !== "string") {
      this.#applyOps([decodeBinaryFrame(data)], false);
      return;
    }
    const frame = decodeTextFrame(data);
    switch (frame.type) {
      case "clock":
        this.#peerSpoke = true;
        this.#peerClock = { ...frame.clock };
        this.#noteReported(frame.clock, now);
        this.#replica.notePeerClock(frame.clock, this.peer);
        if (!this.#actAsLegacy) {
          this.#beginCatchUp(this.#replica.opsSince(frame.clock, frame.heads), false, false);
        }
        break;
      case "bulk":
        if (!this.#peerSpoke) {
          // A bulk before any clock: a legacy peer. Answer with everything we hold.
          this.#peerSpoke = true;
          this.#peerLegacy = true;
          this.#peerIsReady(now);
          this.#applyOps(frame.ops, true);
          if (!this.#actAsLegacy && !this.isClosed) {
            this.#beginCatchUp(this.#replica.opsSince({}), true, true, frame.legacyStrings);
          }
        } else {
          this.#applyOps(frame.ops, true);
        }
        break;
      case "ready":
        // The peer sent all it meant to for our clock: a claim it left unmet was empty.
        this.#replica.notePeerCaughtUp(this.peer);
        this.#peerIsReady(now);
        break;
      case "fork":
        this.#replica.addForkProof(frame.proof, this);
        break;
      case "ping":
        if (frame.clock) this.#noteReported(frame.clock, now);
        this.#send(PONG_FRAME);
        break;
      case "pong":
      case "unknown":
        break;
    }
  }

  #noteReported(clock: VectorClock, now: number): void {
    this.#reportedClock = clock;
    this.#reportedAt = now;
  }

  #peerIsReady(now: number): void {
    if (!this.#caughtUp) {
      this.#caughtUp = true;
      this.#out.events.push({
        type: "caught-up",
        operations: this.#stats.opsIn,
        durationMs: now - this.#since,
      });
    }
    const state = this.#state;
    if (state.phase === "awaiting-clock" || state.phase === "catching-up") {
      state.peerReady = true;
    } else if (state.phase === "awaiting-ready") {
      this.#goLive(now);
    }
  }

  #goLive(now: number): void {
    this.#state = { phase: "live" };
    if (this.#liveAt === undefined) {
      this.#liveAt = now;
      this.#out.events.push({ type: "live" });
    }
  }

  #applyOps(ops: Operation[], amortise: boolean): void {
    if (ops.length === 0) return;
    this.#stats.opsIn += ops.length;
    const result = this.#replica.receive(ops, { amortise, origin: this });
    let invalid = 0;
    let unauthorized = 0;
    const byAuthor: Record<NodeId, { invalid: number; unauthorized: number }> = {};
    for (let i = 0; i < ops.length; i++) {
      const status = result.statuses[i];
      if (status === "invalid" || status === "unauthorized") {
        const entry = byAuthor[ops[i].author] ??= { invalid: 0, unauthorized: 0 };
        if (status === "invalid") (invalid++, entry.invalid++);
        else (unauthorized++, entry.unauthorized++);
      } else if (status !== "forked-author") this.#notePeerHas(ops[i]);
    }
    if (invalid + unauthorized > 0) {
      this.#out.events.push({ type: "refused", invalid, unauthorized, byAuthor });
    }
    if (invalid > 0) {
      this.#stats.invalidOps += invalid;
      this.#logger.log("warn", "dropped operations that failed verification", {
        peer: this.peer,
        count: invalid,
        total: this.#stats.invalidOps,
      });
      if (this.#stats.invalidOps > this.#limits.maxInvalidOps) {
        this.#close(CloseCode.TOO_MANY_INVALID, "too many invalid operations");
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
   * Starts (or restarts, when the peer sends its clock again) sending a
   * snapshot: the delta (or a full dump), known fork proofs, forked authors'
   * quarantined operations, then `ready`. Live operations queued so far are
   * covered by the snapshot.
   */
  #beginCatchUp(ops: Operation[], full: boolean, peerReady: boolean, legacyStrings = false): void {
    if (this.isClosed) return;
    this.#queue = [];
    this.#queuedBytes = 0;
    const state = this.#state;
    const ready = peerReady || state.phase === "live" ||
      ((state.phase === "awaiting-clock" || state.phase === "catching-up") && state.peerReady);
    const cursor: CatchUpCursor = {
      operations: ops.length,
      frames: catchUpFrames(this.#replica, {
        ops,
        full,
        legacyStrings,
        actAsLegacy: this.#actAsLegacy,
        peerLegacy: () => this.#peerLegacy,
        maxFrameBytes: this.#limits.maxFrameBytes,
        onSent: (sent, delta) => {
          this.#stats.opsOut += sent.length;
          if (delta) { for (const op of sent) this.#notePeerHas(op); }
        },
      }),
    };
    this.#state = { phase: "catching-up", cursor, peerReady: ready };
  }

  /**
   * Queues operations applied elsewhere for this peer. They are sent once the
   * peer is ready, in the order given, batched into as few frames as fit.
   * With `quarantined` (operations newly quarantined, with their anchors),
   * the peer's clock does not filter them, and a legacy peer gets none.
   * `bufferedAmount` is what the transport still holds; queue plus buffer
   * over the limit drops the peer as too slow.
   */
  enqueue(
    ops: readonly Operation[],
    now: number,
    bufferedAmount = 0,
    quarantined = false,
  ): SessionOutput {
    if (this.isClosed) return this.#take(now);
    if (quarantined && (this.#peerLegacy || this.#actAsLegacy)) return this.#take(now);
    for (const op of ops) {
      if (!quarantined && (this.#peerClock[op.author] ?? 0) >= op.seq) continue;
      this.#queue.push(op);
      this.#queuedBytes += encodeOperation(op).length + 1;
    }
    if (this.#queuedBytes + bufferedAmount > this.#limits.maxOutboundBytes) {
      this.#logger.log("warn", "peer fell too far behind; disconnecting", {
        peer: this.peer,
        queued: this.#queue.length,
        buffered: bufferedAmount,
      });
      this.#close(CloseCode.SLOW_CONSUMER, "outbound buffer over limit; reconnect to catch up");
    }
    return this.#take(now);
  }

  /**
   * Sends our clock again, asking the peer for everything we lack. Used when
   * something changed what we accept (a key was trusted or its scope changed),
   * so operations refused earlier are fetched again.
   */
  resync(now: number): SessionOutput {
    if (!this.isClosed && !this.#actAsLegacy && !this.#peerLegacy) {
      this.#send(encodeClockFrame(this.#replica.clock(), this.#replica.heads()));
    }
    return this.#take(now);
  }

  /** Sends a fork proof to the peer. */
  sendForkProof(proof: ForkProof, now: number): SessionOutput {
    if (!this.isClosed) this.#send(encodeForkFrame(proof));
    return this.#take(now);
  }

  /**
   * Does what is due at `now`, given the bytes the transport still holds:
   * advances the catch-up cursor while the transport has room, sends queued
   * live operations once the batching window has passed, and runs the
   * heartbeat (both sides ping with their clock; a silent peer is dropped).
   */
  tick(now: number, bufferedAmount: number): SessionOutput {
    if (this.isClosed) return this.#take(now);
    const { pingIntervalMs, pongTimeoutMs } = this.#limits;
    if (pongTimeoutMs > 0 && now - this.#lastReceived > pongTimeoutMs) {
      this.#logger.log("warn", "peer silent; dropping", {
        peer: this.peer,
        silentMs: now - this.#lastReceived,
      });
      this.#close(CloseCode.KEEPALIVE_TIMEOUT, "keepalive timeout");
      return this.#take(now);
    }
    if (pingIntervalMs > 0 && now - this.#lastPing >= pingIntervalMs) {
      this.#lastPing = now;
      this.#sendPing();
    }
    let buffered = bufferedAmount;
    const state = this.#state;
    if (state.phase === "catching-up") {
      const budget = this.#limits.maxOutboundBytes / 2;
      while (buffered <= budget) {
        const next = state.cursor.frames.next();
        if (next.done) {
          if (state.peerReady || this.#actAsLegacy) this.#goLive(now);
          else this.#state = { phase: "awaiting-ready" };
          this.#logger.log("debug", "catch-up sent", {
            peer: this.peer,
            ops: state.cursor.operations,
          });
          break;
        }
        this.#send(next.value);
        buffered += utf8Length(next.value);
      }
    }
    if (
      this.isLive && this.#queue.length > 0 && now >= this.#lastLiveSend + this.#limits.liveBatchMs
    ) {
      if (buffered <= LIVE_BATCH_WATERMARK) this.#flush(now);
    }
    return this.#take(now, buffered);
  }

  #flush(now: number): void {
    const ops = this.#queue;
    this.#queue = [];
    this.#queuedBytes = 0;
    this.#lastLiveSend = now;
    if (ops.length === 1) this.#send(encodeBinaryFrame(ops[0]));
    else for (const frame of bulkFrames(ops, this.#limits.maxFrameBytes)) this.#send(frame);
    this.#stats.opsOut += ops.length;
    for (const op of ops) this.#notePeerHas(op);
  }

  /** When the session next needs {@link tick}. */
  #nextWake(now: number, buffered: number): number | undefined {
    const state = this.#state;
    if (state.phase === "closed") return undefined;
    let wake = Infinity;
    if (state.phase === "catching-up") {
      wake = buffered > this.#limits.maxOutboundBytes / 2 ? now + DRAIN_POLL_MS : now;
    }
    if (state.phase === "live" && this.#queue.length > 0) {
      const due = Math.max(now, this.#lastLiveSend + this.#limits.liveBatchMs);
      wake = Math.min(wake, buffered > LIVE_BATCH_WATERMARK ? now + DRAIN_POLL_MS : due);
    }
    const { pingIntervalMs, pongTimeoutMs } = this.#limits;
    if (pingIntervalMs > 0) wake = Math.min(wake, this.#lastPing + pingIntervalMs);
    if (pongTimeoutMs > 0) wake = Math.min(wake, this.#lastReceived + pongTimeoutMs + 1);
    return wake === Infinity ? undefined : wake;
  }

  /** A heartbeat; it carries our clock unless one side speaks the legacy protocol or it is too big. */
  #sendPing(): void {
    if (this.#actAsLegacy || this.#peerLegacy) {
      this.#send(PING_FRAME);
      return;
    }
    const frame = encodePingFrame(this.#replica.clock());
    this.#send(utf8Length(frame) <= this.#limits.maxFrameBytes ? frame : PING_FRAME);
  }

  #send(data: string | Uint8Array): void {
    if (this.isClosed) return;
    this.#out.frames.push(data);
    this.#stats.bytesOut += typeof data === "string" ? utf8Length(data) : data.byteLength;
  }

  #close(code: number, reason: string): void {
    if (this.isClosed) return;
    this.closed(code, reason);
    this.#out.close = { code, reason };
  }

  #take(now: number, buffered = 0): SessionOutput {
    const out = this.#out;
    this.#out = { frames: [], events: [] };
    const wakeAt = this.#nextWake(now, buffered);
    if (wakeAt !== undefined) out.wakeAt = wakeAt;
    return out;
  }

  /** Ends the session from our side: returns the close to perform. */
  close(code: number, reason: string, now: number): SessionOutput {
    this.#close(code, reason);
    return this.#take(now);
  }

  /** Reports that the transport closed (or a send failed). Idempotent. */
  closed(code: number, reason: string): void {
    if (this.isClosed) return;
    this.#state = { phase: "closed", code, reason };
    this.#queue = [];
    this.#queuedBytes = 0;
  }

  /** A snapshot of the session's counters. */
  stats(): SessionStats {
    return {
      peer: this.peer,
      direction: this.direction,
      state: this.isClosed ? "closed" : this.isLive ? "live" : "syncing",
      legacy: this.#peerLegacy,
      clockLag: clockLag(this.#replica.clock(), this.#reportedClock ?? this.#peerClock),
      lastHeardAt: this.#lastReceived,
      ...(this.#reportedAt === undefined ? {} : { peerClockAt: this.#reportedAt }),
      queuedOps: this.#queue.length,
      since: this.#since,
      ...(this.#liveAt === undefined ? {} : { liveAt: this.#liveAt }),
      ...this.#stats,
    };
  }
}
