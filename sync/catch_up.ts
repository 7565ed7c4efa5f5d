/**
 * The frames of one catch-up round, produced lazily so a session sends them
 * only as fast as the transport drains: the delta (or a full dump), known
 * fork proofs, forked authors' quarantined operations, then `ready`.
 * @module
 */
import type { Operation } from "../crdt/operation.ts";
import type { Replica } from "../crdt/replica.ts";
import { bulkFrames, encodeForkFrame, READY_FRAME } from "./frames.ts";

const EMPTY_BULK = '{"type":"bulk","ops":[]}';

/** What a catch-up round sends and to whom. */
export interface CatchUpPlan {
  /** The snapshot to send (the peer's delta, or everything for a full dump). */
  ops: readonly Operation[];
  /** A full dump (to or as a legacy peer), sent even when empty. */
  full: boolean;
  /** Encode operations as JSON strings, as legacy peers send them. */
  legacyStrings: boolean;
  /** We speak as a legacy peer: the dump only. */
  actAsLegacy: boolean;
  /** The peer speaks the legacy protocol: no quarantined operations, no `ready` after a dump. */
  peerLegacy: () => boolean;
  /** Largest frame, bytes. */
  maxFrameBytes: number;
  /**
   * Called once the frames of a batch have all been produced: the snapshot
   * (`delta` true), then the quarantined operations with their anchors.
   */
  onSent: (ops: readonly Operation[], delta: boolean) => void;
}

/** The round's frames, in order (see the module doc). */
export function* catchUpFrames(replica: Replica, plan: CatchUpPlan): Generator<string> {
  let frames = 0;
  for (const frame of bulkFrames(plan.ops, plan.maxFrameBytes, plan.legacyStrings)) {
    yield frame;
    frames++;
  }
  // A full dump is how a legacy peer (or an answer to one) says "I am here": send it even empty.
  if (plan.full && frames === 0) yield EMPTY_BULK;
  plan.onSent(plan.ops, true);
  if (plan.actAsLegacy) return;
  for (const proof of replica.forks()) yield encodeForkFrame(proof);
  if (!plan.peerLegacy()) {
    // Forked authors' quarantined operations, after the proofs so the peer quarantines them
    // too: honest operations made on either branch may depend on them.
    const quarantined = replica.quarantineToSend();
    yield* bulkFrames(quarantined, plan.maxFrameBytes);
    plan.onSent(quarantined, false);
  }
  if (!plan.full || !plan.peerLegacy()) yield READY_FRAME;
}
