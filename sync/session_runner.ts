/**
 * Runs a pure {@link SyncSession} over a {@link Channel} on injected
 * {@link Timers}: performs its outputs (frames, close), keeps one timer at
 * its next wake-up time, and reports its events and its end.
 * @module
 */
import type { NodeId } from "../crdt/identity.ts";
import type { Operation } from "../crdt/operation.ts";
import type { ForkProof } from "../crdt/store.ts";
import { PrecheckedQueue, type VerifyPool } from "../crdt/verify_pool.ts";
import { CloseCode } from "../protocol/close_codes.ts";
import type { Channel } from "./channel.ts";
import { type InboundFrame, inboundOps } from "./frames.ts";
import type { HubMember } from "./hub.ts";
import type { Logger } from "./logger.ts";
import type { SessionEvent, SessionOutput, SessionStats, SyncSession } from "./session.ts";
import { type SharedWakeups, sharedWakeups } from "./shared_wakeups.ts";
import type { Timers } from "./timers.ts";

/** A live sync session with a peer, as the node exposes it. */
export interface PeerSession {
  /** The peer's node id. */
  readonly peer: NodeId;
  /** `inbound` or `outbound`. */
  readonly direction: "inbound" | "outbound";
  /** Who is on the other end: the address it came from, or the URL dialled. */
  readonly remote: string;
  /** True when both sides finished catch-up and live operations flow. */
  readonly isLive: boolean;
  /** True once the session has ended. */
  readonly isClosed: boolean;
  /** A snapshot of the session's counters; still answers after the session closed. */
  stats(): SessionStats;
  /** Closes the session (and its transport) with a code and a reason. */
  close(code: number, reason: string): void;
}

/** What a {@link SessionRunner} needs. */
export interface SessionRunnerOptions {
  /** The pure session to run. */
  session: SyncSession;
  /** Its transport, already authenticated. */
  channel: Channel;
  /** Who is on the other end (address or URL). */
  remote: string;
  /** The clock and timers. */
  timers: Timers;
  /** Where send failures are logged. */
  logger: Logger;
  /** Called with each of the session's events. */
  onEvent: (runner: SessionRunner, event: SessionEvent) => void;
  /** Called once when the session ends, with the close code and reason. */
  onClosed: (runner: SessionRunner, code: number, reason: string) => void;
  /** Where received frames' signatures are checked ahead (the frames kept in order); none: inline. */
  verifyPool?: VerifyPool;
}

/** Most ticks run back to back before yielding to a timer (bounds one call's work). */
const MAX_TICKS_IN_A_ROW = 64;

/** Runs one session over its channel; see the module doc. */
export class SessionRunner implements PeerSession, HubMember {
  /** The pure session. */
  readonly session: SyncSession;
  /** Who is on the other end (address or URL). */
  readonly remote: string;
  readonly #channel: Channel;
  readonly #timers: Timers;
  readonly #logger: Logger;
  readonly #onEvent: SessionRunnerOptions["onEvent"];
  readonly #onClosed: SessionRunnerOptions["onClosed"];
  readonly #wakeups: SharedWakeups;
  readonly #inbound: PrecheckedQueue<InboundFrame> | undefined;
  #cancelTimer: (() => void) | undefined;
  #timerAt = Infinity;
  #depth = 0;
  #wakeAt: number | undefined;
  #ended = false;
  readonly #endedWith = Promise.withResolvers<{ code: number; reason: string }>();

  /** Wraps a session; call {@link start} to begin. */
  constructor(options: SessionRunnerOptions) {
    this.session = options.session;
    this.remote = options.remote;
    this.#channel = options.channel;
    this.#timers = options.timers;
    this.#wakeups = sharedWakeups(options.timers);
    this.#logger = options.logger;
    this.#onEvent = options.onEvent;
    this.#onClosed = options.onClosed;
    const pool = options.verifyPool;
    this.#inbound = pool && pool.size > 0
      ? new PrecheckedQueue(pool, (frame) => this.#run((now) => this.session.receive(frame, now)))
      : undefined;
  }

  /** The peer's node id. */
  get peer(): NodeId {
    return this.session.peer;
  }

  /** `inbound` or `outbound`. */
  get direction(): "inbound" | "outbound" {
    return this.session.direction;
  }

  /** True when both sides finished catch-up. */
  get isLive(): boolean {
    return this.session.isLive;
  }

  /** True once ended. */
  get isClosed(): boolean {
    return this.session.isClosed;
  }

  /** True when `origin` (a replica listener's origin) is this runner's session. */
  owns(origin: unknown): boolean {
    return origin === this.session;
  }

  /** Sends the session's first frames. */
  start(): void {
    this.#run((now) => this.session.start(now));
  }

  /**
   * Passes one received frame to the session; with a verify pool, once the
   * signatures it carries are checked (frames stay in order).
   */
  frame(data: string | Uint8Array): void {
    if (this.#inbound === undefined) return this.#run((now) => this.session.receive(data, now));
    if (this.#ended) return;
    const inbound = this.session.decode(data);
    const { ops, amortise } = inboundOps(inbound);
    this.#inbound.push(inbound, ops, amortise, inbound.size);
  }

  /** Queues operations for the peer (see {@link SyncSession.enqueue}). */
  enqueue(ops: readonly Operation[], quarantined: boolean): void {
    // Behind a send already due later there is nothing else to do (a paced hub, per operation).
    if (!quarantined && this.session.queueBehind(ops)) return;
    this.#run((now) => this.session.enqueue(ops, now, this.#channel.bufferedAmount, quarantined));
  }

  /** Sends a fork proof. */
  sendForkProof(proof: ForkProof): void {
    this.#run((now) => this.session.sendForkProof(proof, now, this.#channel.bufferedAmount));
  }

  /** Asks the peer again for everything we lack. */
  resync(): void {
    this.#run((now) => this.session.resync(now));
  }

  /** Closes the session and its transport. */
  close(code: number, reason: string): void {
    this.#run((now) => this.session.close(code, reason, now));
  }

  /** The transport closed: the session ends (idempotent). */
  transportClosed(code: number, reason: string): void {
    this.session.closed(code, reason);
    this.#end(code, reason);
  }

  /** Resolves with the close code and reason once the session has ended (either side). */
  get ended(): Promise<{ code: number; reason: string }> {
    return this.#endedWith.promise;
  }

  /** A snapshot of the counters. */
  stats(): SessionStats {
    return this.session.stats();
  }

  #run(call: (now: number) => SessionOutput): void {
    if (this.#ended) return;
    this.#depth++;
    let output: SessionOutput;
    try {
      output = call(this.#timers.now());
    } finally {
      this.#depth--;
    }
    this.#perform(output);
    // A call made while another is running (a replica listener during receive) only records
    // its wake-up; the outermost call runs what is due.
    if (this.#depth === 0) this.#runDue();
  }

  #perform(output: SessionOutput): void {
    for (const frame of output.frames) {
      if (this.#ended) return;
      try {
        this.#channel.send(frame);
      } catch (error) {
        this.#logger.log("warn", "send failed", {
          peer: this.peer,
          error: (error as Error).message,
        });
        this.session.closed(CloseCode.GOING_AWAY, "send failed");
        this.#channel.close(CloseCode.GOING_AWAY, "send failed");
        this.#end(CloseCode.GOING_AWAY, "send failed");
        return;
      }
    }
    for (const event of output.events) this.#onEvent(this, event);
    if (output.close) {
      this.#channel.close(output.close.code, output.close.reason);
      this.#end(output.close.code, output.close.reason);
      return;
    }
    if (
      output.wakeAt !== undefined && (this.#wakeAt === undefined || output.wakeAt < this.#wakeAt)
    ) {
      this.#wakeAt = output.wakeAt;
    }
  }

  /** Ticks while something is due now, then sets the timer for the next wake-up. */
  #runDue(): void {
    for (let i = 0; i < MAX_TICKS_IN_A_ROW && !this.#ended; i++) {
      const now = this.#timers.now();
      if (this.#wakeAt === undefined || this.#wakeAt > now) break;
      this.#wakeAt = undefined;
      this.#depth++;
      let output: SessionOutput;
      try {
        output = this.session.tick(now, this.#channel.bufferedAmount);
      } finally {
        this.#depth--;
      }
      this.#perform(output);
    }
    this.#arm();
  }

  #arm(): void {
    const at = this.#ended ? Infinity : this.#wakeAt ?? Infinity;
    if (at === this.#timerAt) return;
    this.#cancelTimer?.();
    this.#cancelTimer = undefined;
    this.#timerAt = at;
    if (at === Infinity) return;
    // Sessions due at the same time share one timer (a hub's K peers after one live send).
    this.#cancelTimer = this.#wakeups.schedule(at, () => {
      this.#cancelTimer = undefined;
      this.#timerAt = Infinity;
      this.#runDue();
    });
  }

  #end(code: number, reason: string): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#wakeAt = undefined;
    this.#arm();
    this.#endedWith.resolve({ code, reason });
    this.#onClosed(this, code, reason);
  }
}
