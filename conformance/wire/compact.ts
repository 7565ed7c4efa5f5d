/**
 * The compact bulk form (PROTOCOL.md §6.9), written for the suite from the
 * text alone: a `cbulk` frame of operations, and its decoding back into the
 * operations (ids computed by §2.3), refusing anything off the grammar.
 * @module
 */

import { hex, unhex } from "./bytes.ts";
import { type Op, operationId } from "./operation.ts";

/** The form's name in a clock's `accept`. */
export const CBULK = "cbulk";

const BASE64_32 = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/;
const BASE64_64 = /^[A-Za-z0-9+/]{85}[AQgw]==$/;

function toBase64(hexText: string): string {
  return unhex(hexText).toBase64();
}

function fromBase64(value: unknown, pattern: RegExp, what: string): string {
  if (typeof value !== "string" || !pattern.test(value)) {
    throw new SyntaxError(`${what} is not canonical padded base64 of the right length`);
  }
  return hex(Uint8Array.fromBase64(value));
}

/** One `cbulk` frame carrying `ops` in order (runs of one author's chain share a header). */
export function cbulkFrame(ops: Op[]): string {
  const runs: unknown[][] = [];
  let last: Op | undefined;
  for (const op of ops) {
    const entry = [op.time, op.deps.map(toBase64), op.mutation, toBase64(op.sig)];
    const continues = last && last.author === op.author && last.seq + 1 === op.seq &&
      op.prev === last.id;
    if (continues) (runs[runs.length - 1][3] as unknown[]).push(entry);
    else {
      runs.push([toBase64(op.author), op.seq, op.prev === null ? null : toBase64(op.prev), [
        entry,
      ]]);
    }
    last = op;
  }
  return JSON.stringify({ type: CBULK, runs });
}

/**
 * The operations of a parsed `cbulk` frame, each rebuilt with its id computed
 * (§6.9 "Decoding"). Throws `SyntaxError` naming what breaks the grammar.
 */
export function cbulkOps(frame: Record<string, unknown>): Op[] {
  const runs = frame.runs;
  if (!Array.isArray(runs)) throw new SyntaxError("runs is not an array");
  const ops: Op[] = [];
  for (const run of runs) {
    if (!Array.isArray(run) || run.length !== 4) throw new SyntaxError("a run is not [4 items]");
    const author = fromBase64(run[0], BASE64_32, "author");
    const seq = run[1];
    if (!Number.isSafeInteger(seq) || seq < 1) throw new SyntaxError("a run's seq is not ≥ 1");
    let prev: string | null = run[2] === null ? null : fromBase64(run[2], BASE64_32, "prev");
    if (!Array.isArray(run[3])) throw new SyntaxError("a run's entries are not an array");
    run[3].forEach((entry: unknown, k: number) => {
      if (!Array.isArray(entry) || entry.length !== 4) {
        throw new SyntaxError("an entry is not [4 items]");
      }
      const [time, deps, mutation, sig] = entry;
      if (!Array.isArray(deps)) throw new SyntaxError("an entry's deps are not an array");
      const body = {
        author,
        seq: seq + k,
        prev,
        deps: deps.map((d: unknown) => fromBase64(d, BASE64_32, "a dependency")),
        time,
        mutation,
      } as Omit<Op, "id" | "sig">;
      const id = operationId(body);
      ops.push({ ...body, id, sig: fromBase64(sig, BASE64_64, "sig") });
      prev = id;
    });
  }
  return ops;
}
