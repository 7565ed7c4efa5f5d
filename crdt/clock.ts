/**
 * Vector clocks: for each author, how many of its operations a replica holds
 * (always a gap-free prefix of the author's chain) and the id of the last one.
 * @module
 */
import { isHex64 } from "../protocol/bytes.ts";
import type { NodeId } from "./identity.ts";
import type { OpId } from "./operation.ts";

/** Author -> count of that author's operations held. */
export type VectorClock = Record<NodeId, number>;

/** Author -> id of the last operation held (the head of its chain). */
export type ClockHeads = Record<NodeId, OpId>;

/** Most authors a clock received from a peer may name. */
export const MAX_CLOCK_AUTHORS = 100_000;

/**
 * Parses a clock received from a peer. Throws `SyntaxError` naming the problem.
 */
export function parseClock(value: unknown): VectorClock {
  const entries = plainEntries(value, "clock");
  const clock: VectorClock = Object.create(null);
  for (const [author, count] of entries) {
    if (!isHex64(author)) throw new SyntaxError("Cannot parse clock: keys must be node ids");
    if (!Number.isSafeInteger(count) || (count as number) < 0) {
      throw new SyntaxError("Cannot parse clock: counts must be non-negative integers");
    }
    clock[author] = count as number;
  }
  return clock;
}

/** Parses the heads that accompany a clock. Throws `SyntaxError` naming the problem. */
export function parseHeads(value: unknown): ClockHeads {
  const heads: ClockHeads = Object.create(null);
  for (const [author, id] of plainEntries(value, "heads")) {
    if (!isHex64(author) || !isHex64(id)) {
      throw new SyntaxError("Cannot parse heads: keys and values must be hex ids");
    }
    heads[author] = id;
  }
  return heads;
}

function plainEntries(value: unknown, what: string): [string, unknown][] {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new SyntaxError(`Cannot parse ${what}: not an object`);
  }
  const entries = Object.entries(value);
  if (entries.length > MAX_CLOCK_AUTHORS) {
    throw new SyntaxError(`Cannot parse ${what}: more than ${MAX_CLOCK_AUTHORS} authors`);
  }
  return entries;
}

/** How many operations `ours` holds that `theirs` lacks (the peer's lag behind us). */
export function clockLag(ours: VectorClock, theirs: VectorClock): number {
  let lag = 0;
  for (const author in ours) lag += Math.max(0, ours[author] - (theirs[author] ?? 0));
  return lag;
}
