/**
 * The types of a sync session: its limits (and their defaults) and options,
 * its explicit state, what each call returns, and its counters.
 * @module
 */
import type { NodeId } from "../crdt/identity.ts";
import type { Replica } from "../crdt/replica.ts";
import type { Logger } from "./logger.ts";

/** Tunables of a session; every field has a default. */
export interface SessionLimits {
  /** Largest frame sent or accepted, in bytes. @default 1 MiB */
  maxFrameBytes?: number;
  /** Outbound bytes (queued plus buffered) before the peer is dropped as too slow. @default 8 MiB */
  maxOutboundBytes?: number;
  /** Operations failing verification before the peer is disconnected. @default 100 */
  maxInvalidOps?: number;
  /**
   * Application heartbeat, both directions: each side sends `ping` (with its
   * clock) this often, ms (0 disables). @default 5000
   */
  pingIntervalMs?: number;
  /** Silence after which the peer is dropped (4410), ms (0 disables). @default 15000 */
  pongTimeoutMs?: number;
  /**
   * Live operations go out at once while the transport holds nothing (on a
   * node with 40 or more sessions, once its live pace since the previous send
   * has passed: `live_pace.ts`); while an earlier frame is still buffered they
   * wait for it to drain or for this window after the previous live send to
   * end, and go out together, so a busy peer gets many operations per frame.
   * ms, 0 disables. @default 2
   */
  liveBatchMs?: number;
  /**
   * List the compact bulk form (`PROTOCOL.md` §6.9) in our clocks' `accept`,
   * so peers that know it send their catch-up to us in `cbulk` frames (about
   * 40 % of the bytes of `bulk`). false: peers send JSON `bulk` frames.
   * @default true
   */
  compactBulk?: boolean;
}

/** Options for a {@link SyncSession}. */
export interface SessionOptions extends SessionLimits {
  /** The local replica. */
  replica: Replica;
  /** The authenticated peer's node id. */
  peer: NodeId;
  /** Whether we accepted (`inbound`) or dialled (`outbound`) the connection. */
  direction: "inbound" | "outbound";
  /** Behave as a legacy (v1) peer: send a full `bulk` first, never a clock or `ready`. */
  legacy?: boolean;
  /** Logger. @default silent */
  logger?: Logger;
  /** When the session was authenticated (ms, the caller's clock). */
  now: number;
  /** The node's live pace now, ms (`live_pace.ts`). @default always 0 */
  paceMs?: () => number;
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
  /**
   * Operations we hold that the peer's latest clock (sent at the start and
   * with each heartbeat) does not count.
   */
  clockLag: number;
  /** When the peer was last heard from, any frame (ms since epoch). */
  lastHeardAt: number;
  /** When the peer last sent its clock (ms since epoch); absent until it has. */
  peerClockAt?: number;
  /** Operations received from the peer. */
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

/** Where the session's own catch-up stands: frames still to send, produced lazily. */
export interface CatchUpCursor {
  /** Operations in the snapshot being sent. */
  readonly operations: number;
  /** The remaining frames (delta, fork proofs, quarantined operations, `ready`). */
  readonly frames: Iterator<string>;
}

/**
 * The session's state. `awaiting-clock`: our clock is sent, the peer's has
 * not come; `catching-up`: we are sending the peer what it lacks;
 * `awaiting-ready`: our catch-up is sent, the peer's is still coming;
 * `live`: both are done and new operations stream; `closed`: ended.
 */
export type SessionPhase =
  | { phase: "awaiting-clock"; peerReady: boolean }
  | { phase: "catching-up"; cursor: CatchUpCursor; peerReady: boolean }
  | { phase: "awaiting-ready" }
  | { phase: "live" }
  | { phase: "closed"; code: number; reason: string };

/** Something the session reports for the node's events. */
export type SessionEvent =
  | { type: "caught-up"; operations: number; durationMs: number }
  | { type: "live" }
  | {
    type: "refused";
    invalid: number;
    unauthorized: number;
    /** Per author: operations refused as invalid and as unauthorised. */
    byAuthor: Record<NodeId, { invalid: number; unauthorized: number }>;
  };

/** What the caller does after a session call, in this order. */
export interface SessionOutput {
  /** Frames to send, in order. */
  frames: (string | Uint8Array)[];
  /** Close the transport with this after sending the frames; the session has ended. */
  close?: { code: number; reason: string };
  /** Call {@link SyncSession.tick} at this time (or later); absent: no wake-up is needed. */
  wakeAt?: number;
  /** What happened. */
  events: SessionEvent[];
}

/** The default of every {@link SessionLimits} field. */
export const SESSION_DEFAULTS: Readonly<Required<SessionLimits>> = {
  maxFrameBytes: 1024 * 1024,
  maxOutboundBytes: 8 * 1024 * 1024,
  maxInvalidOps: 100,
  pingIntervalMs: 5_000,
  pongTimeoutMs: 15_000,
  liveBatchMs: 2,
  compactBulk: true,
};

/** `limits` with every field it leaves out set to its default. */
export function withSessionDefaults(limits: SessionLimits): Required<SessionLimits> {
  const all: Record<string, unknown> = { ...SESSION_DEFAULTS };
  for (const key of Object.keys(SESSION_DEFAULTS) as (keyof SessionLimits)[]) {
    if (limits[key] !== undefined) all[key] = limits[key];
  }
  return all as Required<SessionLimits>;
}
