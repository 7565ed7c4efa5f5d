/**
 * The signature checks applied to operations from outside: one at a time, or
 * a batch amortised over chain runs. Verdicts found elsewhere (the Workers of
 * `verify_pool.ts`) are recorded here per operation, so a later check of the
 * same author, id and signature answers without verifying again.
 * @module
 */
import { fromHex } from "../protocol/bytes.ts";
import type { SignatureVerifier } from "./identity.ts";
import { ObjectSlot } from "./object_slot.ts";
import { hasValidId, type Operation, type OpId } from "./operation.ts";

/** The author, id and signature each operation was found validly signed with, elsewhere. */
const verifiedElsewhere = new ObjectSlot<{ author: string; id: string; sig: string }>(
  "huskies-sync.verifiedElsewhere",
);

/**
 * Records that `op`'s signature of its id by its author was verified under
 * the same rule as {@link SignatureVerifier.verify} (by `verify_pool.ts`).
 * The record holds only while those three fields are unchanged.
 */
export function recordVerifiedSignature(op: Operation): void {
  verifiedElsewhere.set(op, { author: op.author, id: op.id, sig: op.sig });
}

/** True when `op.sig` is a valid signature of `op.id` by `op.author`. */
export function hasValidSignature(op: Operation, verifier: SignatureVerifier): boolean {
  const known = verifiedElsewhere.get(op);
  if (known && known.author === op.author && known.id === op.id && known.sig === op.sig) {
    return true;
  }
  return verifier.verify(op.author, fromHex(op.id), fromHex(op.sig));
}

/** Checks a single operation's id and signature. */
export function verifyOperation(op: Operation, verifier: SignatureVerifier): boolean {
  return hasValidId(op) && hasValidSignature(op, verifier);
}

/**
 * Splits a batch into chain runs: maximal sequences of one author's
 * operations where each names the previous one as `prev` with consecutive
 * `seq`. Returns positions in `ops`, each run in input order.
 */
export function chainRuns(ops: readonly Operation[]): number[][] {
  const openRun = new Map<OpId, number[]>(); // last id of an open run -> positions
  const runs: number[][] = [];
  // The previous operation's run, not yet in `openRun` under that operation's id: most
  // operations continue it, and then skip the map (it is entered only when one does not).
  let current: number[] | undefined;
  for (let i = 0; i < ops.length; i++) {
    const op = ops[i];
    if (current !== undefined) {
      const previous = ops[i - 1];
      if (op.prev === previous.id && previous.author === op.author && previous.seq + 1 === op.seq) {
        // An earlier run ending in the same id (a repeated operation) is no longer open.
        if (openRun.size > 0) openRun.delete(op.prev);
        current.push(i);
        continue;
      }
      openRun.set(previous.id, current);
    }
    const run = op.prev === null ? undefined : openRun.get(op.prev);
    const last = run ? ops[run[run.length - 1]] : undefined;
    if (run && last && last.author === op.author && last.seq + 1 === op.seq) {
      openRun.delete(op.prev!);
      run.push(i);
      current = run;
    } else {
      current = [i];
      runs.push(current);
    }
  }
  return runs;
}

/**
 * Verifies a batch with amortised signature checks. The batch is split into
 * {@link chainRuns}. In a run, every id is checked and the last operation's
 * signature authenticates the whole run, since each id covers its
 * predecessor's id. When that signature fails, each operation is checked on
 * its own and the valid prefix is kept.
 *
 * Returns a boolean per operation, in input order.
 */
export function verifyBatch(ops: readonly Operation[], verifier: SignatureVerifier): boolean[] {
  const valid = new Array<boolean>(ops.length).fill(false);
  for (const run of chainRuns(ops)) {
    // Ids must be right for the chain to mean anything; a bad id ends the run.
    let end = 0;
    while (end < run.length && hasValidId(ops[run[end]])) end++;
    if (end === 0) continue;
    const tail = ops[run[end - 1]];
    if (hasValidSignature(tail, verifier)) {
      for (let k = 0; k < end; k++) valid[run[k]] = true;
      continue;
    }
    for (let k = 0; k < end; k++) {
      if (!hasValidSignature(ops[run[k]], verifier)) break;
      valid[run[k]] = true;
    }
  }
  return valid;
}

/**
 * The operations whose signatures a receive of `ops` checks first (see
 * `Replica.receive`): with `amortise`, the last of each chain run; otherwise
 * every one. Those already recorded as verified are left out.
 */
export function signaturesToCheck(ops: readonly Operation[], amortise: boolean): Operation[] {
  const picked = amortise ? chainRuns(ops).map((run) => ops[run[run.length - 1]]) : ops;
  return picked.filter((op) => verifiedElsewhere.get(op)?.sig !== op.sig);
}
