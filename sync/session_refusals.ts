/**
 * Tallies what a received batch refused, for the session's `refused` event
 * and its invalid-operation limit. Pure.
 * @module
 */
import type { ReceiveStatus } from "../crdt/batch_result.ts";
import type { NodeId } from "../crdt/identity.ts";
import type { Operation } from "../crdt/operation.ts";
import type { Logger } from "./logger.ts";
import type { SessionEvent } from "./session_types.ts";

/** Counts of refused operations in one batch, in total and per author. */
export interface RefusalTally {
  /** Operations that failed verification (the 64 KiB limit included). */
  invalid: number;
  /** Operations whose author may not write. */
  unauthorized: number;
  /** The same, per author. */
  byAuthor: Record<NodeId, { invalid: number; unauthorized: number }>;
}

/**
 * Counts the `invalid` and `unauthorized` statuses of `ops`, plus `malformed`
 * elements that were not operations at all (invalid, of no known author).
 */
export function tallyRefusals(
  ops: readonly Operation[],
  statuses: readonly ReceiveStatus[],
  malformed = 0,
): RefusalTally {
  const tally: RefusalTally = { invalid: malformed, unauthorized: 0, byAuthor: {} };
  for (let i = 0; i < ops.length; i++) {
    const status = statuses[i];
    if (status !== "invalid" && status !== "unauthorized") continue;
    const entry = tally.byAuthor[ops[i].author] ??= { invalid: 0, unauthorized: 0 };
    tally[status]++;
    entry[status]++;
  }
  return tally;
}

/** Whether an operation with this status shows what the peer holds of its author's chain. */
export function showsPeerHolds(status: ReceiveStatus): boolean {
  // Refused or dropped operations say nothing we may rely on; a forked author's operation from
  // its fork point on is quarantined and says nothing of its agreed chain.
  return status !== "invalid" && status !== "unauthorized" && status !== "dropped" &&
    status !== "forked-author";
}

/**
 * A session's count of operations that failed verification, against its
 * limit: each batch's refusals become a `refused` event, invalid ones are
 * logged, and `over` says the peer passed the limit (close 4422).
 */
export class RefusalCounter {
  /** Invalid operations so far. */
  invalid = 0;

  /** Creates the counter of one session. */
  constructor(readonly limit: number, readonly logger: Logger, readonly peer: string) {}

  /** Records one batch's tally. */
  add(tally: RefusalTally): { event?: SessionEvent; over: boolean } {
    const { invalid, unauthorized, byAuthor } = tally;
    if (invalid + unauthorized === 0) return { over: false };
    const event: SessionEvent = { type: "refused", invalid, unauthorized, byAuthor };
    if (invalid === 0) return { event, over: false };
    this.invalid += invalid;
    this.logger.log("warn", "dropped operations that failed verification", {
      peer: this.peer,
      count: invalid,
      total: this.invalid,
    });
    return { event, over: this.invalid > this.limit };
  }
}
