/**
 * Runs of a received bulk frame whose last signature fails, held back for
 * the same session's next frames (PROTOCOL.md §2.5). A node that accepted an
 * operation through a validly signed descendant holds it with the signature
 * it came with, which may be bad (a relay altered it); serving its store in
 * frames cut elsewhere, it may end a frame's run on that operation, and the
 * rest of the chain follows in the next frame. Held back, the run is joined
 * to that continuation, whose last signature authenticates both; a run whose
 * last signature fails is also authenticated up to its last operation that
 * is validly signed, and only what follows it waits.
 *
 * A run waits at most {@link MAX_HELD_FRAMES} frames in a row (the chain
 * between two signatures a node checked came in one frame, and may span a
 * few of another size or encoding) and {@link MAX_HELD_MS} (the session
 * wakes then); then, or when the peer says `ready`, it is received as before
 * (each signature checked, the valid prefix kept). So a peer can make a
 * session hold at most that many frames of operations, for about a second.
 * @module
 */
import type { Operation } from "./operation.ts";
import type { Replica } from "./replica.ts";
import { chainRuns, hasValidSignature, recordVerifiedSignature } from "./signatures.ts";

/** Most frames in a row a run waits for the rest of its chain. */
export const MAX_HELD_FRAMES = 4;

/** How long a run waits at most, ms: the session receives it at its first tick after this. */
export const MAX_HELD_MS = 1_000;

/** One session's held runs; see the module doc. */
export class AwaitingRuns {
  #held: Operation[] = [];
  #frames = 0; // frames in a row that a held run was carried over
  #since = 0; // when what is held first waited

  /**
   * The operations to receive now, and whether amortised: those held before
   * first, then `ops`; with `hold` (a bulk frame that more may follow), the
   * runs whose last signature fails stay held instead, while they may. With
   * a single (binary) operation, what is held is amortised with it (it is
   * checked as the last of its run, as a single operation is); it waits only
   * as the continuation of a held run. A run whose last operation `replica`
   * holds already is passed on unchecked: its receive finds duplicates.
   */
  take(
    ops: Operation[],
    amortise: boolean,
    hold: boolean,
    replica: Pick<Replica, "verifier" | "getOperation">,
    now: number,
  ): { ops: Operation[]; amortise: boolean } {
    const before = this.#held.length;
    const joined = before > 0 ? [...this.#held, ...ops] : ops;
    this.#held = [];
    if (!hold || (!amortise && before === 0)) {
      this.#frames = 0;
      return { ops: joined, amortise: amortise || before > 0 };
    }
    const waits = new Set<number>();
    let carried = false;
    const valid = (i: number) => {
      const ok = hasValidSignature(joined[i], replica.verifier);
      if (ok) recordVerifiedSignature(joined[i]); // the receive that follows does not check it again
      return ok;
    };
    for (const run of chainRuns(joined)) {
      const last = run[run.length - 1];
      if (replica.getOperation(joined[last].id) !== undefined || valid(last)) continue;
      // The last operation that arrived since (held ones failed already) and is validly signed
      // authenticates the run up to it; the rest waits for its chain.
      let k = run.length - 2;
      while (k >= 0 && run[k] >= before && !valid(run[k])) k--;
      if (k >= 0 && run[k] >= before) {
        for (const i of run.slice(k + 1)) waits.add(i);
        continue;
      }
      const waited = run[0] < before; // held over already: it may wait until the limit
      if (waited ? this.#frames >= MAX_HELD_FRAMES : !amortise) continue; // a single is judged now
      carried ||= waited;
      for (const i of run) waits.add(i);
    }
    if (!carried) this.#since = now;
    this.#frames = carried ? this.#frames + 1 : 0;
    if (waits.size === 0) return { ops: joined, amortise: true };
    this.#held = joined.filter((_, i) => waits.has(i));
    return { ops: joined.filter((_, i) => !waits.has(i)), amortise: true };
  }

  /** When what is held has waited {@link MAX_HELD_MS} (Infinity when nothing is). */
  get dueAt(): number {
    return this.#held.length > 0 ? this.#since + MAX_HELD_MS : Infinity;
  }
}
