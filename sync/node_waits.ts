/**
 * Awaitable conditions over a node's sessions and events: "a session is
 * live" and "every session is live with nothing queued".
 * @module
 */
import type { NodeId } from "../crdt/identity.ts";
import type { NodeEventEmitter, NodeEventType } from "./events.ts";
import type { PeerSession } from "./session_runner.ts";
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
