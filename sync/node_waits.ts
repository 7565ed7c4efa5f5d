/**
 * Awaitable conditions over a node's sessions and events: "a session is
 * live", "every session is live with nothing queued", and "N peers hold
 * these operations".
 * @module
 */
import type { VectorClock } from "../crdt/clock.ts";
import type { NodeId } from "../crdt/identity.ts";
import type { NodeEventEmitter, NodeEventType } from "./events.ts";
import type { PeerSession, SessionRunner } from "./session_runner.ts";
import { sleep, type Timers } from "./timers.ts";

/** How often {@link waitSynced} looks again when no event arrives, ms. */
const SYNCED_RECHECK_MS = 20;

/** Options of the waits. */
export interface WaitOptions {
  /** Rejects (with the signal's reason) when aborted. */
  signal?: AbortSignal;
  /** Rejects with a "Timed out" error after this many ms (on the node's timers). */
  timeoutMs?: number;
}

/** Resolves once a session (with `peer`, when given) is live; at once when one already is. */
export function waitConnected(
  events: NodeEventEmitter,
  sessions: () => PeerSession[],
  peer: NodeId | undefined,
  options: WaitOptions,
): Promise<void> {
  const matches = (s: { peer: NodeId }) => peer === undefined || s.peer === peer;
  if (sessions().some((s) => s.isLive && matches(s))) return Promise.resolve();
  return events.once("live", { ...options, filter: matches }).then(() => {});
}

/** Resolves once there is a session and every session is live with nothing queued. */
export async function waitSynced(
  events: NodeEventEmitter,
  timers: Timers,
  sessions: () => PeerSession[],
  options: WaitOptions,
): Promise<void> {
  const done = () => {
    const all = sessions();
    return all.length > 0 && all.every((s) => s.isLive && s.stats().queuedOps === 0);
  };
  const start = timers.now();
  while (!done()) {
    options.signal?.throwIfAborted();
    const left = options.timeoutMs === undefined
      ? SYNCED_RECHECK_MS
      : options.timeoutMs - (timers.now() - start);
    if (left <= 0) throw new Error(`Timed out after ${options.timeoutMs} ms waiting to be synced`);
    // Sessions going live or closing and operations arriving change the answer; a queue that
    // drains raises no event, so look again after a short while too.
    const stop = new AbortController();
    const signal = options.signal ? AbortSignal.any([options.signal, stop.signal]) : stop.signal;
    const next = (type: NodeEventType) => events.once(type, { signal }).catch(() => {});
    await Promise.race([
      next("live"),
      next("session-closed"),
      next("applied"),
      sleep(timers, Math.min(left, SYNCED_RECHECK_MS), signal),
    ]);
    stop.abort();
  }
}

/** Where an operation sits in its author's chain; an `Operation` is one. */
export interface OperationRef {
  /** The author's node id. */
  readonly author: NodeId;
  /** Its position in the author's chain (1-based). */
  readonly seq: number;
}

/** How often {@link waitForPeers} looks at the peers' clocks again, ms (heartbeats raise no event). */
const PEER_CLOCK_RECHECK_MS = 50;

/** {@link waitForPeers} timed out: fewer peers than asked hold the operations. */
export class PeersTimeoutError extends Error {
  /** Peers asked for. */
  readonly wanted: number;
  /** Peers whose latest clock covers the operations. */
  readonly reached: NodeId[];
  /** The timeout, ms. */
  readonly timeoutMs: number;

  /** Creates the error. */
  constructor(wanted: number, reached: NodeId[], timeoutMs: number) {
    super(
      `Cannot confirm the write at ${wanted} peer${wanted === 1 ? "" : "s"}: after ` +
        `${timeoutMs} ms the latest clock of ${reached.length} covers it; the write is applied ` +
        "and durable on this node and still spreads to peers as they connect",
    );
    this.name = "PeersTimeoutError";
    this.wanted = wanted;
    this.reached = reached;
    this.timeoutMs = timeoutMs;
  }
}

/**
 * The peers whose latest reported clock (sent at the start and with every
 * heartbeat) counts every one of `targets` (pure): `clockOf(peer)[author]`
 * is at least the target's `seq`.
 */
export function peersCovering(
  sessions: readonly PeerSession[],
  clockOf: (peer: NodeId) => VectorClock | undefined,
  targets: readonly OperationRef[],
): NodeId[] {
  const peers = new Set<NodeId>();
  for (const session of sessions) {
    if (session.isClosed) continue;
    const clock = clockOf(session.peer);
    if (clock === undefined) continue;
    if (targets.every((t) => (clock[t.author] ?? 0) >= t.seq)) peers.add(session.peer);
  }
  return [...peers];
}

/**
 * Resolves with the peers (at least `count`) whose latest clock counts every
 * one of `targets`; rejects with {@link PeersTimeoutError} after
 * `options.timeoutMs`, or with the signal's reason when aborted.
 * Rejects with a RangeError when `count` is not a whole number >= 0.
 */
export async function waitForPeers(
  events: NodeEventEmitter,
  timers: Timers,
  sessions: () => PeerSession[],
  clockOf: (peer: NodeId) => VectorClock | undefined,
  targets: readonly OperationRef[],
  count: number,
  options: WaitOptions,
): Promise<NodeId[]> {
  if (!Number.isSafeInteger(count) || count < 0) {
    throw new RangeError(
      `Cannot wait for peers: the count must be a whole number >= 0, got ${count}`,
    );
  }
  const start = timers.now();
  for (;;) {
    const covering = peersCovering(sessions(), clockOf, targets);
    if (covering.length >= count) return covering;
    options.signal?.throwIfAborted();
    const left = options.timeoutMs === undefined
      ? PEER_CLOCK_RECHECK_MS
      : options.timeoutMs - (timers.now() - start);
    if (left <= 0) throw new PeersTimeoutError(count, covering, options.timeoutMs!);
    const stop = new AbortController();
    const signal = options.signal ? AbortSignal.any([options.signal, stop.signal]) : stop.signal;
    const next = (type: NodeEventType) => events.once(type, { signal }).catch(() => {});
    await Promise.race([
      next("live"),
      next("caught-up"),
      sleep(timers, Math.min(left, PEER_CLOCK_RECHECK_MS), signal),
    ]);
    stop.abort();
  }
}

/**
 * The newest clock `peer` reported on any of its sessions (pure): what the
 * waits and `HuskiesNode.behind` compare against.
 */
export function reportedClockOf(
  sessions: Iterable<SessionRunner>,
  peer: NodeId,
): VectorClock | undefined {
  let newest: { clock: VectorClock; at: number } | undefined;
  for (const runner of sessions) {
    const reported = runner.peer === peer ? runner.session.reported : undefined;
    if (reported && (newest === undefined || reported.at >= newest.at)) newest = reported;
  }
  return newest?.clock;
}
