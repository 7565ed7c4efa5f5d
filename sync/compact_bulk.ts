/**
 * The compact bulk form (`PROTOCOL.md` §6.9), offered in a `clock` frame's
 * `accept` list: a `cbulk` frame carries the same operations as a `bulk`
 * frame, grouped in runs of one author's chain, each author, first `seq` and
 * first `prev` said once per run, no `id` (the receiver computes it, as it
 * checks it anyway), and 32/64-byte values in base64. Pure encoding and
 * decoding, no sockets. The decoder rebuilds exactly the {@link Operation}
 * the JSON form would give and hands it to `parseOperation`, so every rule of
 * §2 and §4 is checked by the same code on either form (the hex forms of
 * values decoded from base64 hold by construction and are not checked again).
 * @module
 */
import { utf8Length } from "../protocol/bytes.ts";
import { type Operation, OperationTooLargeError, parseOperation } from "../crdt/operation.ts";
import { materialize, StoredOperation } from "../crdt/stored_operation.ts";

/** The name a peer lists in its clock's `accept` to be sent `cbulk` frames. */
export const COMPACT_BULK_FORM = "cbulk";

/**
 * Padded base64 (RFC 4648 §4) of 32 bytes (an author, `prev` or dependency
 * id) is 44 characters, of 64 bytes (a signature) 88.
 */
const B64_LENGTH = { 32: 44, 64: 88 } as const;
/** Padding required, unused bits zero: with the length, only the canonical text decodes. */
const STRICT = { lastChunkHandling: "strict" } as const;

/** A `cbulk` frame that breaks the compact grammar (the caller closes with 1002). */
export class CompactFormError extends Error {
  /** Creates the error; `message` is a fixed description, never peer data. */
  constructor(message: string) {
    super(message);
    this.name = "CompactFormError";
  }
}

const toB64 = (hex: string): string => Uint8Array.fromHex(hex).toBase64();

function fromB64(value: unknown, bytes: 32 | 64, what: string): string {
  // The decoder skips whitespace: a text of the full length holding any decodes short.
  let decoded: Uint8Array | undefined;
  if (typeof value === "string" && value.length === B64_LENGTH[bytes]) {
    try {
      decoded = Uint8Array.fromBase64(value, STRICT);
    } catch {
      decoded = undefined;
    }
  }
  if (decoded?.length !== bytes) {
    throw new CompactFormError(`cbulk ${what} is not base64 of the right length`);
  }
  return decoded.toHex();
}

/** Ids derived from the body (none is sent), hex fields made from base64 here. */
const DERIVE = { deriveId: true, hexDecoded: true } as const;

/**
 * One operation's entry `[time,[deps…],mutation,sig]` and its UTF-8 bytes.
 * An operation kept on disk gives its mutation's text and its signature
 * sliced from the stored row, not parsed whole (about a third less); any
 * other is encoded from its fields. Not cached: a cache per operation object
 * would keep about 300 bytes per operation on a hub for good once it had
 * served one compact catch-up (measured), for a few µs per operation per
 * catch-up.
 */
function entryOf(stored: Operation): { text: string; bytes: number } {
  const sliced = stored instanceof StoredOperation ? stored.storedParts() : undefined;
  const op = sliced === undefined ? materialize(stored) : stored; // one read of a body on disk
  const mutation = sliced?.mutation ?? JSON.stringify(op.mutation);
  const deps = op.deps.length === 0 ? "[]" : JSON.stringify(op.deps.map(toB64));
  const text = `[${op.time},${deps},${mutation},"${toB64(sliced?.sig ?? op.sig)}"]`;
  // All but the mutation is ASCII.
  const mutationBytes = sliced?.mutationBytes ?? utf8Length(mutation);
  return { text, bytes: text.length - mutation.length + mutationBytes };
}

function runHead(op: Operation): string {
  return `["${toB64(op.author)}",${op.seq},${op.prev === null ? "null" : `"${toB64(op.prev)}"`},[`;
}

const FRAME_HEAD = '{"type":"cbulk","runs":[';
const FRAME_TAIL = "]}";
const RUN_TAIL = "]]";

/**
 * Splits operations into `cbulk` frames of at most `maxBytes` UTF-8 bytes
 * each, in the given order (an operation is never split, and one always fits:
 * its entry is shorter than its JSON form). Within a frame, an operation
 * continues the current run when it has the run's author, the next `seq`
 * and the previous operation's id as `prev`; otherwise it opens a run.
 */
export function* compactBulkFrames(
  ops: readonly Operation[],
  maxBytes: number,
): Generator<string> {
  let frame = "";
  let size = 0;
  let last: Operation | undefined;
  for (const op of ops) {
    const entry = entryOf(op);
    const continues = last !== undefined && last.author === op.author &&
      last.seq + 1 === op.seq && op.prev === last.id;
    const head = continues ? "," : (last === undefined ? "" : RUN_TAIL + ",") + runHead(op);
    const bytes = head.length + entry.bytes; // a run's head is ASCII
    if (last !== undefined && size + bytes + RUN_TAIL.length + FRAME_TAIL.length > maxBytes) {
      yield frame + RUN_TAIL + FRAME_TAIL;
      last = undefined;
    }
    if (last === undefined) {
      const runStart = runHead(op);
      frame = FRAME_HEAD + runStart + entry.text;
      size = FRAME_HEAD.length + runStart.length + entry.bytes;
    } else {
      frame += head + entry.text;
      size += bytes;
    }
    last = op;
  }
  if (last !== undefined) yield frame + RUN_TAIL + FRAME_TAIL;
}

/** A decoded `cbulk` frame: the operations rebuilt, and how many were not valid operations. */
export interface CompactBulk {
  /** Valid operations, in frame order, exactly as their JSON form would parse. */
  ops: Operation[];
  /** Entries that are not valid operations (dropped and counted, as in `bulk`). */
  invalid: number;
}

function asArray(value: unknown, what: string): unknown[] {
  if (!Array.isArray(value)) throw new CompactFormError(`cbulk ${what} is not an array`);
  return value;
}

/**
 * Decodes the `runs` member of a parsed `cbulk` frame. Throws
 * {@link CompactFormError} when the frame breaks the compact grammar (a run
 * or entry of the wrong arity, a base64 value of the wrong length, `seq` not
 * a positive safe integer). An entry whose rebuilt operation fails
 * `parseOperation` is counted invalid. When it fails on its shape (so it has
 * no id), the rest of its run is counted invalid too; when only on its size,
 * its id is still the next entry's `prev`.
 */
export function decodeCompactBulk(runs: unknown): CompactBulk {
  const ops: Operation[] = [];
  let invalid = 0;
  for (const run of asArray(runs, "runs")) {
    const [authorB64, firstSeq, prevB64, list, ...extra] = asArray(run, "run");
    if (extra.length > 0 || list === undefined) throw new CompactFormError("cbulk run arity");
    const author = fromB64(authorB64, 32, "author");
    if (!Number.isSafeInteger(firstSeq) || (firstSeq as number) < 1) {
      throw new CompactFormError("cbulk run seq is not a positive integer");
    }
    let prev: string | null = prevB64 === null ? null : fromB64(prevB64, 32, "prev");
    const items = asArray(list, "run operations");
    let broken = false;
    for (let i = 0; i < items.length; i++) {
      const [time, depsB64, mutation, sigB64, ...rest] = asArray(items[i], "entry");
      if (rest.length > 0 || sigB64 === undefined) throw new CompactFormError("cbulk entry arity");
      const deps = asArray(depsB64, "deps").map((d) => fromB64(d, 32, "dependency"));
      const sig = fromB64(sigB64, 64, "sig");
      if (broken) {
        invalid++;
        continue;
      }
      const seq = (firstSeq as number) + i;
      try {
        const op = parseOperation({ author, seq, prev, deps, time, mutation, sig }, DERIVE);
        ops.push(op);
        prev = op.id;
      } catch (error) {
        invalid++;
        if (error instanceof OperationTooLargeError) prev = error.op.id;
        else broken = true;
      }
    }
  }
  return { ops, invalid };
}
