/**
 * When a session hands its queued live operations to the transport, as pure
 * functions of the time and the bytes the transport still holds: at once
 * while it holds at most a few frames (no added latency) and the node's pace
 * allows, batched while an earlier frame is still buffered (a busy or slow
 * peer gets many operations per frame) or within the pace of a node with many
 * sessions (`live_pace.ts`), and never more than the watermark ahead of what
 * the peer has read.
 * @module
 */

/** Bytes the transport may hold before live sends wait for it to drain. */
export const LIVE_BATCH_WATERMARK = 64 * 1024;
/**
 * Bytes the transport may hold while live sends still go out at once: a few
 * frames, so operations that arrive together (two in one turn, one frame
 * each) are not held back a clock tick, while a busy transport batches.
 */
export const LIVE_AT_ONCE_BYTES = 4 * 1024;
/** How soon to look again while the transport drains (it reports no drain event). */
export const DRAIN_POLL_MS = 2;
/**
 * How soon to look again while a live frame is still buffered: a transport
 * writes what it was given once the caller's turn ends, so a look one clock
 * tick later (the node's clock counts whole milliseconds) usually finds it
 * drained and sends what queued meanwhile as one frame.
 */
export const LIVE_RECHECK_MS = 1;

/** What the rule reads. */
export interface LiveBatchState {
  /** The time, ms. */
  readonly now: number;
  /** Bytes the transport still holds. */
  readonly buffered: number;
  /** Bytes queued for sending. */
  readonly queued: number;
  /** When the queue was last sent, ms. */
  readonly lastSend: number;
  /** The batching window after a send, ms (`liveBatchMs`). */
  readonly windowMs: number;
  /** The node's live pace, ms (`live_pace.ts`): 0 for a node with few sessions. */
  readonly paceMs: number;
}

/**
 * True when queued live operations should go out now: the transport holds
 * no more than the watermark, and either the queue itself reached it (so a
 * burst of incoming frames that starves timers cannot starve the peer) or
 * the time since the last send reached the pace (while the transport holds
 * at most {@link LIVE_AT_ONCE_BYTES}) or the longer of the pace and the
 * window (while it holds more).
 */
export function liveSendDue(state: LiveBatchState): boolean {
  const { now, buffered, queued, lastSend, windowMs, paceMs } = state;
  if (buffered > LIVE_BATCH_WATERMARK) return false;
  if (queued >= LIVE_BATCH_WATERMARK) return true;
  const wait = buffered <= LIVE_AT_ONCE_BYTES ? paceMs : Math.max(paceMs, windowMs);
  return now >= lastSend + wait;
}

/** When to look again at queued live operations that are not due (see {@link liveSendDue}). */
export function liveWakeAt(state: LiveBatchState): number {
  const { now, buffered, lastSend, windowMs, paceMs } = state;
  if (liveSendDue(state)) return now;
  if (buffered > LIVE_BATCH_WATERMARK) return now + DRAIN_POLL_MS;
  if (buffered <= LIVE_AT_ONCE_BYTES) return lastSend + paceMs;
  return Math.min(now + LIVE_RECHECK_MS, Math.max(now, lastSend + Math.max(paceMs, windowMs)));
}
