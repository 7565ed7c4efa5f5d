/**
 * THE chain rules: when an operation may join its author's chain. One
 * implementation, used by the operation log (to apply, park or refuse an
 * operation) and by `huskies verify` (to re-check a store offline).
 *
 * An operation with `seq` n > 1 follows its author's operation at n - 1: that
 * one is held, `prev` names it, and `time` is greater than its time. Each
 * dependency is held and has a smaller `time`. A dependency held in
 * quarantine (a forked author's operation) counts as held. Operation shape
 * (seq 1 has `prev` null, deps sorted, and so on) is checked at parse time.
 * @module
 */
import type { Operation, OpId } from "./operation.ts";

/** What a chain check decided about one operation. */
export type ChainVerdict =
  /** It joins its author's chain now. */
  | { readonly kind: "ready" }
  /** It waits for an operation not held yet: its predecessor (`prev`) or a dependency. */
  | { readonly kind: "waiting"; readonly on: OpId; readonly what: "prev" | "dependency" }
  /** The position is taken: the author already has an operation at `seq`. */
  | { readonly kind: "taken"; readonly count: number }
  /** It can never join: it breaks a rule (`reason` says which). */
  | { readonly kind: "broken"; readonly reason: string };

/** The author's last operation on the chain the operation would extend. */
export interface ChainTail {
  /** Its id. */
  readonly id: OpId;
  /** Its position. */
  readonly seq: number;
  /** Its Lamport time. */
  readonly time: number;
}

/** Looks up the Lamport time of a held operation (applied or quarantined); undefined when not held. */
export type HeldTime = (id: OpId) => number | undefined;

/**
 * Checks `op` against the author's chain, whose last operation is `tail`
 * (undefined when the author has none), and against the held operations
 * (`heldTime`). Pure: the caller decides what a verdict means (park,
 * refuse, report).
 */
export function checkChain(
  op: Operation,
  tail: ChainTail | undefined,
  heldTime: HeldTime,
): ChainVerdict {
  const count = tail?.seq ?? 0;
  if (op.seq <= count) return { kind: "taken", count };
  if (op.seq > count + 1 || (tail !== undefined && tail.id !== op.prev)) {
    return { kind: "waiting", on: op.prev!, what: "prev" };
  }
  for (const dep of op.deps) {
    if (heldTime(dep) === undefined) return { kind: "waiting", on: dep, what: "dependency" };
  }
  if (tail !== undefined && op.time <= tail.time) {
    return { kind: "broken", reason: "time does not increase" };
  }
  for (const dep of op.deps) {
    if (op.time <= heldTime(dep)!) {
      return { kind: "broken", reason: "time is not after a dependency" };
    }
  }
  return { kind: "ready" };
}

/** A one-line description of a verdict that is not `ready`, for errors and reports. */
export function describeVerdict(op: Operation, verdict: ChainVerdict): string {
  switch (verdict.kind) {
    case "ready":
      return "ready";
    case "waiting":
      return verdict.what === "prev"
        ? `waits for its predecessor ${verdict.on}`
        : `waits for dependency ${verdict.on}`;
    case "taken":
      return `position ${op.seq} of ${op.author} is taken`;
    case "broken":
      return verdict.reason;
  }
}
