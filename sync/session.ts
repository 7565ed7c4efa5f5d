/**
 * One authenticated sync session with a peer, as pure logic: clock exchange, chunked delta
 * catch-up, `ready`, live streaming, fork proofs, heartbeat and backpressure. In the shape of
 * y-protocols' `readSyncMessage`: every method takes the time and returns what to do
 * ({@link SessionOutput}: frames to send, a close, the next wake-up time). The caller owns the
 * transport and the clock (`session_runner.ts` does this for a node); nothing here reads a clock,
 * sets a timer or polls.
 * @module
 */
import { frameLength, utf8Length } from "../protocol/bytes.ts";
import { clockLag, type VectorClock } from "../crdt/clock.ts";
import type { NodeId } from "../crdt/identity.ts";
import type { Operation } from "../crdt/operation.ts";
import type { Replica } from "../crdt/replica.ts";
import { AwaitingRuns } from "../crdt/awaiting_runs.ts";
import type { ForkProof } from "../crdt/store.ts";
import { CloseCode } from "../protocol/close_codes.ts";
import {
  type ClockFrame,
  decodeInbound,
  encodeClockFrame,
  type InboundFrame,
  liveFrames,
  pingFrame,
  PONG_FRAME,
  ProtocolError,
} from "./frames.ts";
import { type Logger, silentLogger } from "./logger.ts";
import { LiveQueue, SlowConsumerCheck } from "./live_queue.ts";
import { DRAIN_POLL_MS, type LiveBatchState, liveSendDue, liveWakeAt } from "./live_batch.ts";
import { Heartbeat } from "./heartbeat.ts";
import { type CatchUpContext, catchUpFrames, ForkFrames, nextFrame } from "./catch_up.ts";
import { CLOCK_FLOOD_REASON, ClockGate, ClockResend } from "./clock_gate.ts";
import { RefusalCounter, showsPeerHolds, tallyRefusals } from "./session_refusals.ts";
import {
  type CatchUpCursor,
  type SessionLimits,
  type SessionOptions,
  type SessionOutput,
  type SessionPhase,
  type SessionStats,
  withSessionDefaults,
} from "./session_types.ts";

export type * from "./session_types.ts";

const everyOp = () => true;

/**
 * One sync session. Create it after authentication, call {@link start}, pass every received frame
 * to {@link receive}, call {@link tick} at the `wakeAt` times it asks for, and report the
 * transport's close through {@link closed}.
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
  #peerAcceptsCompact = false; // the clock being answered listed `cbulk` (§6.9)
  readonly #queue = new LiveQueue();
  readonly #paceMs: () => number;
  #peerClock: VectorClock = {}; // what we know the peer holds: its clock, plus what we sent since
  #reported: { clock: VectorClock; at: number } | undefined; // see `reported`
  readonly #heartbeat: Heartbeat;
  readonly #since: number;
  #liveAt: number | undefined;
  #caughtUp = false;
  #stats = { opsIn: 0, opsOut: 0, bytesIn: 0, bytesOut: 0 };
  #out: SessionOutput = { frames: [], events: [] };
  readonly #forkFrames: ForkFrames;
  readonly #refusals: RefusalCounter;
  readonly #slow: SlowConsumerCheck;
  readonly #clocks = new ClockGate<ClockFrame>(); // the peer's: one catch-up at a time, rate-limited
  readonly #resend = new ClockResend(); // when to send our clock again (operations were dropped)
  readonly #awaiting = new AwaitingRuns(); // runs whose last signature failed, for the next frame

  /** Creates a session; nothing is sent until {@link start}. */
  constructor(options: SessionOptions) {
    this.peer = options.peer;
    this.direction = options.direction;
    this.#replica = options.replica;
    this.#logger = options.logger ?? silentLogger;
    this.#actAsLegacy = options.legacy ?? false;
    this.#paceMs = options.paceMs ?? (() => 0);
    this.#since = options.now;
    this.#limits = withSessionDefaults(options);
    const { pingIntervalMs, pongTimeoutMs } = this.#limits;
    this.#heartbeat = new Heartbeat(options.now, pingIntervalMs, pongTimeoutMs);
    this.#forkFrames = new ForkFrames(this.#limits.maxFrameBytes, this.#logger, this.peer);
    this.#slow = new SlowConsumerCheck(this.#limits.maxOutboundBytes);
    this.#refusals = new RefusalCounter(this.#limits.maxInvalidOps, this.#logger, this.peer);
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
    if (this.#actAsLegacy) { // a legacy peer never waits for `ready`
      this.#beginCatchUp(this.#replica.opsSince({}), true, true);
      return this.tick(now, 0);
    }
    this.#sendClock(now);
    return this.#take(now);
  }

  /** Sends our clock (asking the peer for what we lack). */
  #sendClock(now: number): void {
    this.#resend.sent(now);
    const { compactBulk } = this.#limits;
    this.#send(encodeClockFrame(this.#replica.clock(), this.#replica.heads(), compactBulk));
  }

  /** Decodes a frame from the peer ahead of {@link receive} (which also takes it as it came). */
  decode(data: string | Uint8Array): InboundFrame {
    return decodeInbound(data, this.#limits.maxFrameBytes);
  }

  /** Handles one frame from the peer, as it came or from {@link decode}. */
  receive(data: string | Uint8Array | InboundFrame, now: number): SessionOutput {
    if (this.isClosed) return this.#take(now);
    this.#heartbeat.lastReceived = now;
    const inbound = typeof data === "string" || data instanceof Uint8Array
      ? this.decode(data)
      : data;
    this.#stats.bytesIn += inbound.size;
    try {
      if (inbound.kind === "too-big") this.#close(CloseCode.TOO_BIG, "frame too big");
      else if (inbound.kind === "broken") throw inbound.error;
      else this.#handle(inbound, now);
    } catch (error) {
      if (error instanceof ProtocolError) {
        this.#close(CloseCode.PROTOCOL_ERROR, `protocol violation: ${error.message}`);
      } else this.#fail(error);
    }
    return this.#take(now);
  }

  #handle(inbound: InboundFrame & { kind: "text" | "binary" }, now: number): void {
    if (inbound.kind === "binary") {
      const op = inbound.op;
      this.#applyOps(op ? [op] : [], false, op ? 0 : 1, now);
      return;
    }
    const frame = inbound.frame;
    switch (frame.type) {
      case "clock": {
        this.#peerSpoke = true;
        this.#reported = { clock: frame.clock, at: now };
        const verdict = this.#clocks.offer(frame, now, this.#state.phase === "catching-up");
        if (verdict === "flood") this.#close(CloseCode.RATE_LIMITED, CLOCK_FLOOD_REASON);
        else if (verdict === "apply") this.#applyClock(frame);
        break;
      }
      case "bulk": {
        const legacy = !this.#peerSpoke && !frame.compact; // a bulk before any clock: legacy
        if (legacy) (this.#peerSpoke = this.#peerLegacy = true, this.#peerIsReady(now));
        this.#applyOps(frame.ops, true, frame.invalid, now);
        if (legacy && !this.#actAsLegacy && !this.isClosed) { // answer with everything we hold
          this.#beginCatchUp(this.#replica.opsSince({}), true, true, frame.legacyStrings);
        }
        break;
      }
      case "ready": // the peer sent all it meant to: a claim it left unmet was empty
        this.#applyOps([], true, 0, now, true); // what waited for a next frame is received now
        this.#replica.notePeerCaughtUp(this.peer);
        this.#peerIsReady(now);
        break;
      case "fork":
        if (frame.proof) this.#replica.addForkProof(frame.proof, this);
        else this.#applyOps([], false, 1, now);
        break;
      case "ping":
        if (frame.clock) this.#reported = { clock: frame.clock, at: now };
        this.#send(PONG_FRAME);
        break;
      case "pong":
      case "unknown":
        break;
    }
  }

  /** Answers a peer's clock: what we know it holds, then a catch-up of what it lacks. */
  #applyClock(frame: ClockFrame): void {
    this.#peerClock = { ...frame.clock };
    this.#peerAcceptsCompact = frame.compactBulk;
    this.#replica.notePeerClock(frame.clock, this.peer);
    if (!this.#actAsLegacy) {
      this.#beginCatchUp(this.#replica.opsSince(frame.clock, frame.heads), false, false);
    }
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

  /** Applies received operations; `malformed` more were not valid operations at all. */
  #applyOps(got: Operation[], bulk: boolean, malformed: number, now: number, last = false) {
    const { ops, amortise } = this.#awaiting.take(got, bulk, !last, this.#replica, now);
    if (ops.length + malformed === 0) return;
    this.#stats.opsIn += ops.length + malformed;
    const result = ops.length > 0
      ? this.#replica.receive(ops, { amortise, origin: this })
      : { statuses: [], dropped: [] };
    for (let i = 0; i < ops.length; i++) {
      if (showsPeerHolds(result.statuses[i])) this.#notePeerHas(ops[i]);
    }
    if (result.dropped.length > 0) this.#resend.want(now); // ask again soon for what was dropped
    const { event, over } = this.#refusals.add(tallyRefusals(ops, result.statuses, malformed));
    if (event) this.#out.events.push(event);
    if (over) this.#close(CloseCode.TOO_MANY_INVALID, "too many invalid operations");
  }

  #notePeerHas(op: Operation): void {
    // A forked author's quarantined operations say nothing of its agreed ones the peer holds.
    const point = this.#replica.forkPoint(op.author);
    if (point !== undefined && op.seq >= point) return;
    if ((this.#peerClock[op.author] ?? 0) < op.seq) this.#peerClock[op.author] = op.seq;
  }

  /**
   * Starts (or restarts, on a new clock) sending the delta (or a full dump), known fork proofs,
   * forked authors' quarantined operations, then `ready`; it covers live operations queued so far.
   */
  #beginCatchUp(ops: Operation[], full: boolean, peerReady: boolean, legacyStrings = false): void {
    if (this.isClosed) return;
    this.#queue.clear();
    const state = this.#state;
    const ready = peerReady || state.phase === "live" ||
      ((state.phase === "awaiting-clock" || state.phase === "catching-up") && state.peerReady);
    const cursor: CatchUpCursor = {
      operations: ops.length,
      frames: catchUpFrames(this.#catchUpContext(), ops, full, legacyStrings),
    };
    this.#state = { phase: "catching-up", cursor, peerReady: ready };
  }

  #catchUpContext(): CatchUpContext {
    return {
      replica: this.#replica,
      maxFrameBytes: this.#limits.maxFrameBytes,
      actAsLegacy: this.#actAsLegacy,
      peerLegacy: this.#peerLegacy,
      peerAcceptsCompact: this.#peerAcceptsCompact,
      sent: (ops, held) => {
        this.#stats.opsOut += ops.length;
        if (held) { for (const op of ops) this.#notePeerHas(op); }
      },
      forkFrame: (proof) => this.#forkFrames.frame(proof),
    };
  }

  /**
   * Queues operations applied elsewhere for the peer, sent once it is ready, in order, in as few
   * frames as fit. `quarantined` ones (with their anchors) skip the peer's clock; a legacy peer
   * gets none. `bufferedAmount`: what the transport holds; over the limit, the peer is too slow.
   */
  enqueue(
    ops: readonly Operation[],
    now: number,
    bufferedAmount = 0,
    quarantined = false,
  ): SessionOutput {
    if (this.isClosed) return this.#take(now);
    if (quarantined && (this.#peerLegacy || this.#actAsLegacy)) return this.#take(now);
    this.#queue.push(ops, quarantined ? everyOp : this.#lacks);
    // Sent now when due, not on a timer a burst of incoming frames can starve.
    let buffered = bufferedAmount;
    if (this.#liveSendDue(now, buffered)) buffered += this.#flush(now);
    this.#checkSlow(buffered, now);
    return this.#take(now, buffered);
  }

  /** Queues live operations behind a send already due, if that is all; false: use {@link enqueue}. */
  queueBehind(ops: readonly Operation[]): boolean {
    return this.isLive && this.#queue.length > 0 && this.#queue.pushBehind(ops, this.#lacks);
  }

  readonly #lacks = (op: Operation) => (this.#peerClock[op.author] ?? 0) < op.seq; // by its clock

  #batchState(now: number, buffered: number): LiveBatchState {
    const { lastSend, bytes: queued } = this.#queue, paceMs = this.#paceMs();
    return { now, buffered, queued, lastSend, windowMs: this.#limits.liveBatchMs, paceMs };
  }

  #liveSendDue(now: number, buffered: number): boolean {
    return this.isLive && this.#queue.length > 0 && liveSendDue(this.#batchState(now, buffered));
  }

  /** Drops the peer when what it has not read stays over the limit (see SlowConsumerCheck). */
  #checkSlow(buffered: number, now: number): void {
    if (!this.#slow.tooSlow(this.#queue.bytes + buffered, now)) return;
    const queued = this.#queue.length, message = "peer fell too far behind; disconnecting";
    this.#logger.log("warn", message, { peer: this.peer, queued, buffered });
    this.#close(CloseCode.SLOW_CONSUMER, "outbound buffer over limit; reconnect to catch up");
  }

  /**
   * Sends our clock again, asking the peer for everything we lack. Used when something changed
   * what we accept (a key was trusted or its scope changed), so refused operations come again.
   */
  resync(now: number): SessionOutput {
    if (!this.isClosed && !this.#actAsLegacy && !this.#peerLegacy) this.#sendClock(now);
    return this.#take(now);
  }

  /** Sends a fork proof to the peer, queued like live operations (it waits for the drain). */
  sendForkProof(proof: ForkProof, now: number, bufferedAmount = 0): SessionOutput {
    const frame = this.isClosed ? undefined : this.#forkFrames.frame(proof);
    if (frame !== undefined) this.#queue.pushFrame(frame);
    return this.enqueue([], now, bufferedAmount);
  }

  /**
   * Does what is due at `now`, given the bytes the transport still holds:
   * advances the catch-up cursor while the transport has room, sends queued
   * live operations once the batching window has passed, and runs the
   * heartbeat (both sides ping with their clock; a silent peer is dropped).
   */
  tick(now: number, bufferedAmount: number): SessionOutput {
    if (this.isClosed) return this.#take(now);
    if (now >= this.#awaiting.dueAt) this.#applyOps([], true, 0, now, true);
    const beat = this.#heartbeat.due(now);
    if (beat === "silent") {
      const silentMs = now - this.#heartbeat.lastReceived;
      this.#logger.log("warn", "peer silent; dropping", { peer: this.peer, silentMs });
      this.#close(CloseCode.KEEPALIVE_TIMEOUT, "keepalive timeout");
      return this.#take(now);
    }
    if (beat === "ping") this.#sendPing();
    if (this.#resend.isDue(now)) {
      if (!this.#actAsLegacy && !this.#peerLegacy) this.#sendClock(now);
      else this.#resend.dueAt = undefined;
    }
    const waiting = this.#clocks.due(now, this.#state.phase === "catching-up");
    if (waiting) this.#applyClock(waiting);
    let buffered = bufferedAmount;
    const state = this.#state;
    if (state.phase === "catching-up") {
      const budget = this.#limits.maxOutboundBytes / 2;
      while (buffered <= budget) {
        const next = nextFrame(state.cursor.frames);
        if (next instanceof Error) return this.#fail(next), this.#take(now);
        if (next.done) {
          if (state.peerReady || this.#actAsLegacy) this.#goLive(now);
          else this.#state = { phase: "awaiting-ready" };
          const ops = state.cursor.operations;
          this.#logger.log("debug", "catch-up sent", { peer: this.peer, ops });
          break;
        }
        const bytes = utf8Length(next.value); // counted once: for the budget and the stats
        this.#send(next.value, bytes);
        buffered += bytes;
      }
    }
    if (this.#liveSendDue(now, buffered)) buffered += this.#flush(now);
    if (this.isLive) this.#checkSlow(buffered, now);
    return this.#take(now, buffered);
  }

  /** Closes on an unexpected error, logged (a stored operation that cannot be read, a bug). */
  #fail(error: unknown): void {
    const message = (error as Error).message;
    this.#logger.log("error", "sync session failed", { peer: this.peer, error: message });
    this.#close(CloseCode.INTERNAL_ERROR, "internal error");
  }

  /** Sends the queued live operations; returns the bytes handed to the transport. */
  #flush(now: number): number {
    const before = this.#stats.bytesOut;
    const { frames, ops } = this.#queue.take(now);
    for (const frame of frames) this.#send(frame);
    // Encoded once per batch: every peer given the same batch sends the same frames.
    for (const out of liveFrames(ops, this.#limits.maxFrameBytes)) this.#send(out.data, out.bytes);
    this.#stats.opsOut += ops.length;
    for (const op of ops) this.#notePeerHas(op);
    return this.#stats.bytesOut - before;
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
      wake = Math.min(wake, liveWakeAt(this.#batchState(now, buffered)));
    }
    wake = Math.min(wake, this.#resend.dueAt ?? Infinity);
    const clockDue = this.#clocks.dueAt;
    if (clockDue !== undefined && state.phase !== "catching-up") wake = Math.min(wake, clockDue);
    wake = Math.min(wake, this.#heartbeat.wakeAt, this.#slow.wakeAt, this.#awaiting.dueAt);
    return wake === Infinity ? undefined : wake;
  }

  /** A heartbeat; it carries our clock unless one side speaks the legacy protocol or it is too big. */
  #sendPing(): void {
    const legacy = this.#actAsLegacy || this.#peerLegacy;
    this.#send(pingFrame(legacy ? undefined : this.#replica.clock(), this.#limits.maxFrameBytes));
  }

  /** Queues a frame for the transport; `bytes` is its size when the encoder counted it. */
  #send(data: string | Uint8Array, bytes?: number): void {
    if (this.isClosed) return;
    this.#out.frames.push(data);
    this.#stats.bytesOut += bytes ?? frameLength(data);
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
    this.#queue.clear();
  }

  /** The peer's latest reported clock (its `clock` frame or a heartbeat) and when it came. */
  get reported(): { clock: VectorClock; at: number } | undefined {
    return this.#reported;
  }

  /** A snapshot of the session's counters. */
  stats(): SessionStats {
    return {
      peer: this.peer,
      direction: this.direction,
      state: this.isClosed ? "closed" : this.isLive ? "live" : "syncing",
      legacy: this.#peerLegacy,
      clockLag: clockLag(this.#replica.clock(), this.#reported?.clock ?? this.#peerClock),
      lastHeardAt: this.#heartbeat.lastReceived,
      ...(this.#reported === undefined ? {} : { peerClockAt: this.#reported.at }),
      queuedOps: this.#queue.length,
      since: this.#since,
      ...(this.#liveAt === undefined ? {} : { liveAt: this.#liveAt }),
      ...this.#stats,
      invalidOps: this.#refusals.invalid,
    };
  }
}
