/**
 * The latest clock each peer reported (its `clock` frame at the start of a
 * session and the clock in each heartbeat), seen on the way into the
 * session, so that status can say how far behind a peer this node is while
 * it catches up, and `waitForPeers` can tell which peers hold a write. The
 * session itself decodes every frame; this only reads the clock-bearing ones
 * (with the same `decodeTextFrame`).
 * @module
 */
import { clockLag, type VectorClock } from "../crdt/clock.ts";
import type { NodeId } from "../crdt/identity.ts";
import { decodeTextFrame } from "./frames.ts";

/** Text frames that may carry a clock start like this (as `frames.ts` encodes them). */
const CLOCK_PREFIXES = ['{"type":"clock"', '{"type":"ping","clock"'];

/** The latest reported clock per peer. */
export class PeerClocks {
  readonly #clocks = new Map<NodeId, VectorClock>();

  /** Records the clock in `data` when it is a frame `peer` sent that carries one. */
  note(peer: NodeId, data: string | Uint8Array): void {
    if (typeof data !== "string" || !CLOCK_PREFIXES.some((p) => data.startsWith(p))) return;
    try {
      const frame = decodeTextFrame(data);
      if ((frame.type === "clock" || frame.type === "ping") && frame.clock) {
        this.#clocks.set(peer, frame.clock);
      }
    } catch {
      // Malformed: the session refuses it; nothing to record.
    }
  }

  /** Forgets `peer` (its last session ended). */
  forget(peer: NodeId): void {
    this.#clocks.delete(peer);
  }

  /**
   * Operations `peer`'s latest clock counts that `ours` lacks: how far this
   * node is behind it; undefined before it reported a clock.
   */
  behind(peer: NodeId, ours: VectorClock): number | undefined {
    const theirs = this.#clocks.get(peer);
    return theirs === undefined ? undefined : clockLag(theirs, ours);
  }

  /** `peer`'s latest reported clock, if any. */
  clockOf(peer: NodeId): VectorClock | undefined {
    return this.#clocks.get(peer);
  }
}
