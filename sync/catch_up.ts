/**
 * The frames of one catch-up (`PROTOCOL.md` §6.2): the delta in `bulk`
 * frames under the frame limit, the fork proofs that fit, forked authors'
 * quarantined operations, then `ready`. Pulled lazily by the session as the
 * transport drains.
 * @module
 */
import type { Operation } from "../crdt/operation.ts";
import type { Replica } from "../crdt/replica.ts";
import type { ForkProof } from "../crdt/store.ts";
import { utf8Length } from "../protocol/bytes.ts";
import { bulkFrames, encodeForkFrame, READY_FRAME } from "./frames.ts";
import { compactBulkFrames } from "./compact_bulk.ts";
import type { Logger } from "./logger.ts";

const EMPTY_BULK = '{"type":"bulk","ops":[]}';

/** What a catch-up reads and reports. */
export interface CatchUpContext {
  /** The replica whose forks and quarantine are sent. */
  readonly replica: Replica;
  /** The frame limit. */
  readonly maxFrameBytes: number;
  /** We speak as a legacy peer (no proofs, no `ready`). */
  readonly actAsLegacy: boolean;
  /** The peer is a legacy peer (no quarantine; no `ready` after a full dump). */
  readonly peerLegacy: boolean;
  /** The clock being answered listed the compact bulk form (§6.9): send `cbulk` frames. */
  readonly peerAcceptsCompact: boolean;
  /** Operations were sent; `held` when the peer now holds them on its agreed chains. */
  sent(ops: readonly Operation[], held: boolean): void;
  /** A fork proof's frame, or `undefined` when it cannot fit in a frame (not sent). */
  forkFrame(proof: ForkProof): string | undefined;
}

/** The frames of a catch-up of `ops` (`full`: a full dump, as to or from a legacy peer). */
export function* catchUpFrames(
  context: CatchUpContext,
  ops: Operation[],
  full: boolean,
  legacyStrings: boolean,
): Generator<string> {
  const bulk = (list: Operation[]) =>
    context.peerAcceptsCompact && !legacyStrings
      ? compactBulkFrames(list, context.maxFrameBytes)
      : bulkFrames(list, context.maxFrameBytes, legacyStrings);
  let frames = 0;
  for (const frame of bulk(ops)) {
    yield frame;
    frames++;
  }
  // A full dump is how a legacy peer (or an answer to one) says "I am here": send it even empty.
  if (full && frames === 0) yield EMPTY_BULK;
  context.sent(ops, true);
  if (context.actAsLegacy) return;
  for (const proof of context.replica.forks()) {
    const frame = context.forkFrame(proof);
    if (frame !== undefined) yield frame;
  }
  if (!context.peerLegacy) {
    // Forked authors' quarantined operations, after the proofs so the peer quarantines them
    // too: honest operations made on either branch may depend on them.
    const quarantined = context.replica.quarantineToSend();
    yield* bulk(quarantined);
    context.sent(quarantined, false);
  }
  if (!full || !context.peerLegacy) yield READY_FRAME;
}

/**
 * Fork proofs as frames, within the frame limit like any other frame: a
 * proof that cannot fit is not sent, counted, and logged once per session.
 */
export class ForkFrames {
  /** Proofs not sent because they cannot fit in a frame. */
  skipped = 0;

  /** Creates the filter of one session. */
  constructor(
    readonly maxFrameBytes: number,
    readonly logger: Logger,
    readonly peer: string,
  ) {}

  /** The proof's frame, or `undefined` when it is over the frame limit. */
  frame(proof: ForkProof): string | undefined {
    const frame = encodeForkFrame(proof);
    if (utf8Length(frame) <= this.maxFrameBytes) return frame;
    if (this.skipped++ === 0) {
      this.logger.log("warn", "fork proof too big for a frame; not sent", {
        peer: this.peer,
        author: proof.author,
      });
    }
    return undefined;
  }
}

/**
 * The next frame of a catch-up, or the error making it raised (a stored
 * operation that could not be read): the session closes, the node runs on.
 */
export function nextFrame(frames: Iterator<string>): IteratorResult<string> | Error {
  try {
    return frames.next();
  } catch (error) {
    return error instanceof Error ? error : new Error(String(error));
  }
}
