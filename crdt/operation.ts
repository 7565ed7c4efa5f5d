/**
 * Signed operations: their shape, canonical id, signature, JSON wire form and
 * the checks applied to every operation that arrives from outside.
 *
 * id = SHA-256( "huskies-sync/op/v1\n" || canonicalJson(body) ), where body is
 * `{author, seq, prev, deps, time, mutation}`; the signature is Ed25519 over
 * the 32 id bytes. PROTOCOL.md specifies the encoding and the test vectors in
 * `tests/vectors.json` pin it.
 * @module
 */
import { createHash } from "node:crypto";
import { ObjectSlot } from "./object_slot.ts";
import { fromHex, isHex128, isHex64, toHex, utf8Length } from "../protocol/bytes.ts";
import {
  canonicalJson,
  checkJsonValue,
  type JsonValue,
  keysSorted,
  withSortedKeys,
} from "./canonical.ts";
import type { Identity, NodeId } from "./identity.ts";

/** An operation id: lowercase hex SHA-256. */
export type OpId = string;

/** A document path: map keys from the root. */
export type Path = string[];

/**
 * A change to the document.
 * - `update`: sets each field register under `path` (last writer wins per field).
 * - `remove`: removes everything under `path` written before this operation.
 * - `append`: appends `value` to the append-only list at `path`.
 */
export type Mutation =
  | { type: "update"; path: Path; fields: { [field: string]: JsonValue } }
  | { type: "remove"; path: Path }
  | { type: "append"; path: Path; value: JsonValue };

/** The signed part of an operation. */
export interface UnsignedOperation {
  /** Node id of the author. */
  author: NodeId;
  /** Position in the author's chain: 1, 2, 3, ... with no gaps. */
  seq: number;
  /** Id of the author's previous operation; `null` exactly when `seq` is 1. */
  prev: OpId | null;
  /** Ids of the operations this one was made on top of, sorted, unique. */
  deps: OpId[];
  /** Lamport timestamp, greater than that of `prev` and of every dependency. */
  time: number;
  /** The change. */
  mutation: Mutation;
}

/** A signed operation. */
export interface Operation extends UnsignedOperation {
  /** SHA-256 over the canonical encoding of the unsigned fields. */
  id: OpId;
  /** Ed25519 signature by `author` over the 32 id bytes, hex. */
  sig: string;
}

/** Limits on what an operation from outside may contain. */
export const OPERATION_LIMITS = {
  /** Most dependencies one operation may name. */
  maxDeps: 64,
  /** Most segments in a path. */
  maxPathLength: 16,
  /** Longest path segment or field name, in characters. */
  maxKeyLength: 256,
  /** Most fields in one `update`. */
  maxFields: 64,
  /**
   * Largest canonical encoding of one whole signed operation, in UTF-8 bytes
   * ({@link encodedSize}): measured on the form this code re-encodes, never on
   * the literal text received, so `9e15`-style literals count at their
   * canonical (plain decimal) length.
   */
  maxBytes: 64 * 1024,
} as const;

const ID_DOMAIN = "huskies-sync/op/v1\n";

/** The canonical body string an operation's id is computed over. */
export function canonicalBody(op: UnsignedOperation): string {
  // Keys in sorted order, so canonicalJson can take its fast path.
  return canonicalJson({
    author: op.author,
    deps: op.deps,
    mutation: op.mutation as unknown as JsonValue,
    prev: op.prev,
    seq: op.seq,
    time: op.time,
  });
}

/**
 * SHA-256 state after the domain prefix: each id copies it (one call) instead
 * of creating a hash and hashing a concatenated copy of the body.
 */
const ID_PREFIX_HASH = createHash("sha256").update(ID_DOMAIN);

/** Computes an operation's id from its unsigned fields. */
export function operationId(op: UnsignedOperation): OpId {
  return ID_PREFIX_HASH.copy().update(canonicalBody(op)).digest("hex");
}

/**
 * The id of `op` computed from its fields, with its wire encoding cached as
 * {@link encodeOperation}'s from the same field encodings: the canonical body
 * and the wire form hold the same members in other orders (plus `id` and
 * `sig`), so each field, the mutation above all, is encoded once for both.
 * `op.mutation` must have its keys sorted (`sortedMutation`), `sorted` when
 * that was found so (their order is not checked again); `op.id` may be a
 * placeholder until the caller sets it to what this returns. The id counts
 * as checked when `id` (the one sent) is the one computed, or when none was
 * sent (the caller then takes the computed one).
 */
function idAndWire(op: Operation, id: OpId | undefined, sorted: boolean): OpId {
  // Hex strings (checked by every caller) need no escaping: quoting them is their JSON.
  const author = `"${op.author}"`;
  const deps = op.deps.length === 0 ? "[]" : JSON.stringify(op.deps);
  const prev = op.prev === null ? "null" : `"${op.prev}"`;
  const wireMutation = JSON.stringify(op.mutation);
  const mutation = sorted || keysSorted(op.mutation as unknown as JsonValue)
    ? wireMutation
    : canonicalJson(op.mutation as unknown as JsonValue);
  const body = `{"author":${author},"deps":${deps},"mutation":${mutation},"prev":${prev},` +
    `"seq":${op.seq},"time":${op.time}}`;
  const computed = ID_PREFIX_HASH.copy().update(body).digest("hex");
  computedSlot.set(op, {
    wire: `{"author":${author},"seq":${op.seq},"prev":${prev},"deps":${deps},"time":${op.time},` +
      `"mutation":${wireMutation},"id":"${id ?? computed}","sig":"${op.sig}"}`,
    bytes: -1,
    idChecked: id === undefined || id === computed,
  });
  return computed;
}

/**
 * An operation refused because its canonical encoding is over
 * {@link OPERATION_LIMITS}.maxBytes. A `SyntaxError` like every other parse
 * refusal; its own class so that a receiver can drop and count it as an
 * invalid operation rather than as a malformed frame.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { HuskiesNode, OperationTooLargeError } from "@huskies/sync";
 *
 * await using node = await HuskiesNode.open();
 * // Two 40 kB strings: each within its own limit, together over the 64 KiB of one operation.
 * const value = ["x".repeat(40_000), "y".repeat(40_000)];
 * assert.throws(
 *   () => node.replica.commit([{ type: "append", path: ["log"], value }]),
 *   OperationTooLargeError,
 * );
 * assert.equal(node.replica.size, 0); // nothing was signed or stored
 * ```
 */
export class OperationTooLargeError extends SyntaxError {
  /** The canonical encoding's size in bytes. */
  readonly bytes: number;
  /**
   * The operation (its shape checked), so that a receiver can hand it to
   * `Replica.receive`, which counts it as invalid like any other.
   */
  readonly op: Operation;

  /** Creates the error for `op`, whose encoding is `bytes` bytes. */
  constructor(action: string, bytes: number, op: Operation) {
    super(
      `Cannot ${action}: its canonical encoding is ${bytes} bytes, over the limit of ` +
        `${OPERATION_LIMITS.maxBytes}`,
    );
    this.name = "OperationTooLargeError";
    this.bytes = bytes;
    this.op = op;
  }
}

/**
 * UTF-8 bytes of the operation's canonical encoding: the whole signed
 * operation, integers in plain decimal, strings escaped as `JSON.stringify`
 * does (the unit of {@link OPERATION_LIMITS}.maxBytes).
 */
export function encodedSize(op: Operation): number {
  if (isStoredWire(op)) return op.bytes;
  const encoding = encodingOf(op);
  if (encoding.bytes < 0) encoding.bytes = utf8Length(encoding.wire);
  return encoding.bytes;
}

/** Computes the id and signs it with `identity`, whose node id must be the author. */
export function signOperation(op: UnsignedOperation, identity: Identity): Operation {
  if (op.author !== identity.nodeId) {
    throw new TypeError("Cannot sign operation: author is not this identity");
  }
  const problem = unsignedOperationProblem(op);
  if (problem) throw new TypeError(`Cannot sign operation: ${problem}`);
  const unsigned = { ...op, mutation: sortedMutation(op.mutation) };
  const id = operationId(unsigned);
  const sig = toHex(identity.sign(fromHex(id)));
  const signed = { ...unsigned, id, sig };
  const bytes = encodedSize(signed);
  if (bytes > OPERATION_LIMITS.maxBytes) {
    throw new OperationTooLargeError("sign operation", bytes, signed);
  }
  return signed;
}

function pathProblem(path: unknown, where: string): string | undefined {
  if (!Array.isArray(path)) return `${where} must be an array of strings`;
  if (path.length === 0 || path.length > OPERATION_LIMITS.maxPathLength) {
    return `${where} must have 1 to ${OPERATION_LIMITS.maxPathLength} segments`;
  }
  for (const segment of path) {
    if (typeof segment !== "string" || segment.length === 0) {
      return `${where} segments must be non-empty strings`;
    }
    if (segment.length > OPERATION_LIMITS.maxKeyLength) {
      return `${where} has a segment longer than ${OPERATION_LIMITS.maxKeyLength} characters`;
    }
  }
  return undefined;
}

/** Returns `undefined` when `mutation` is well formed, otherwise a message. */
export function mutationProblem(mutation: unknown): string | undefined {
  if (typeof mutation !== "object" || mutation === null || Array.isArray(mutation)) {
    return "mutation must be an object";
  }
  const m = mutation as Record<string, unknown>;
  const keys = Object.keys(m);
  const expectKeys = (allowed: string[]) =>
    keys.length === allowed.length && allowed.every((k) => k in m)
      ? undefined
      : `mutation of type ${m.type} must have exactly the fields ${allowed.join(", ")}`;
  switch (m.type) {
    case "update": {
      const problem = expectKeys(["type", "path", "fields"]) ?? pathProblem(m.path, "path");
      if (problem) return problem;
      const fields = m.fields;
      if (
        typeof fields !== "object" || fields === null || Array.isArray(fields) ||
        Object.getPrototypeOf(fields) !== Object.prototype
      ) return "update fields must be an object";
      const names = Object.keys(fields);
      if (names.length === 0 || names.length > OPERATION_LIMITS.maxFields) {
        return `update must set 1 to ${OPERATION_LIMITS.maxFields} fields`;
      }
      for (const name of names) {
        if (name.length === 0 || name.length > OPERATION_LIMITS.maxKeyLength) {
          return `field names must have 1 to ${OPERATION_LIMITS.maxKeyLength} characters`;
        }
      }
      return checkJsonValue(fields, {}, "fields");
    }
    case "remove":
      return expectKeys(["type", "path"]) ?? pathProblem(m.path, "path");
    case "append":
      return expectKeys(["type", "path", "value"]) ?? pathProblem(m.path, "path") ??
        checkJsonValue(m.value, {}, "value");
    default:
      return `unknown mutation type ${JSON.stringify(m.type)}`;
  }
}

const isString = (value: unknown): value is string => typeof value === "string";

/**
 * Returns `undefined` when the unsigned fields are well formed, otherwise a
 * message. With `hexDecoded`, the caller made `author`, `prev` and `deps`
 * from bytes (strings of 64 lowercase hex characters or `null`), so only
 * what else is required of them is checked.
 */
export function unsignedOperationProblem(
  op: UnsignedOperation,
  hexDecoded = false,
): string | undefined {
  const isId = hexDecoded ? isString : isHex64;
  if (!isId(op.author)) return "author must be 64 lowercase hex characters";
  if (!Number.isSafeInteger(op.seq) || op.seq < 1) return "seq must be a positive integer";
  if (op.seq === 1 ? op.prev !== null : !isId(op.prev)) {
    return "prev must be null for seq 1 and an operation id otherwise";
  }
  if (!Array.isArray(op.deps) || op.deps.length > OPERATION_LIMITS.maxDeps) {
    return `deps must be an array of at most ${OPERATION_LIMITS.maxDeps} ids`;
  }
  for (let i = 0; i < op.deps.length; i++) {
    if (!isId(op.deps[i])) return "deps must be operation ids";
    if (i > 0 && op.deps[i - 1] >= op.deps[i]) return "deps must be sorted and unique";
  }
  if (!Number.isSafeInteger(op.time) || op.time < 1) return "time must be a positive integer";
  return mutationProblem(op.mutation);
}

/** Options for {@link parseOperation} and {@link decodeOperation}. */
export interface ParseOptions {
  /**
   * Check the size limit. Only a store's own rows skip it: an operation
   * stored by an older version under a looser measure stays loadable (its
   * chain would break otherwise); peers refuse it if it is served to them.
   * @default true
   */
  checkSize?: boolean;
  /**
   * Compute `id` from the body instead of reading it, for a wire form that
   * leaves it out (PROTOCOL.md §6.9). The id then holds by construction, so
   * {@link hasValidId} does not hash the operation again.
   * @default false
   */
  deriveId?: boolean;
  /**
   * The caller decoded `author`, `prev`, `deps` and `sig` from bytes
   * (PROTOCOL.md §6.9), so they are lowercase hex of the right lengths and
   * are not checked for it again.
   * @default false
   */
  hexDecoded?: boolean;
}

/**
 * Parses one operation from its JSON wire form (a parsed object), checking
 * shape and limits, not the signature. Its id is computed here (so
 * {@link hasValidId} answers without hashing again; operations are never
 * mutated) together with its wire encoding. Throws `SyntaxError` naming the
 * problem, {@link OperationTooLargeError} when its canonical encoding is over
 * the size limit.
 */
export function parseOperation(value: unknown, options: ParseOptions = {}): Operation {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new SyntaxError("Cannot parse operation: not an object");
  }
  const o = value as Record<string, unknown>;
  const op = {
    author: o.author,
    seq: o.seq,
    prev: o.prev,
    deps: Array.isArray(o.deps) && o.deps.length === 0 ? NO_DEPS : o.deps,
    time: o.time,
    mutation: o.mutation,
    id: options.deriveId ? "" : o.id,
    sig: o.sig,
  } as Operation;
  const hexDecoded = options.hexDecoded === true;
  const problem = unsignedOperationProblem(op, hexDecoded) ??
    (options.deriveId || isHex64(op.id) ? undefined : "id must be 64 lowercase hex characters") ??
    (hexDecoded || isHex128(op.sig) ? undefined : "sig must be 128 lowercase hex characters");
  if (problem) throw new SyntaxError(`Cannot parse operation: ${problem}`);
  const sorted = keysSorted(op.mutation as unknown as JsonValue);
  if (!sorted) op.mutation = sortedMutation(op.mutation);
  // The id is checked (or derived) here, sharing the field encodings with the wire form.
  const computed = idAndWire(op, options.deriveId ? undefined : op.id, sorted);
  if (options.deriveId) op.id = computed;
  const bytes = options.checkSize === false ? 0 : encodedSize(op);
  if (bytes > OPERATION_LIMITS.maxBytes) {
    throw new OperationTooLargeError("parse operation", bytes, op);
  }
  return op;
}

/** The empty `deps` that parsed operations without dependencies share (frozen, like every op). */
export const NO_DEPS = Object.freeze([]) as unknown as OpId[];

/** The mutation with its keys in canonical order (hashing and encoding are then cheaper). */
function sortedMutation(mutation: Mutation): Mutation {
  return withSortedKeys(mutation as unknown as JsonValue) as unknown as Mutation;
}

/** The JSON wire form of an operation, as an object ready for `JSON.stringify`. */
export function operationToWire(op: Operation): Operation {
  return {
    author: op.author,
    seq: op.seq,
    prev: op.prev,
    deps: op.deps,
    time: op.time,
    mutation: op.mutation,
    id: op.id,
    sig: op.sig,
  };
}

/** What is computed once per operation object (operations are never mutated). */
interface OperationComputed {
  /** The JSON wire form. */
  readonly wire: string;
  /** UTF-8 bytes of `wire`; -1 until measured. */
  bytes: number;
  /** {@link parseOperation} computed the id from the body, or found it right. */
  idChecked: boolean;
}

/** Each operation object's {@link OperationComputed} (`object_slot.ts`: not a `WeakMap`). */
const computedSlot = new ObjectSlot<OperationComputed>("huskies-sync.operationComputed");

/** The method by which an operation kept on disk gives its stored wire text (`stored_operation.ts`). */
export const STORED_WIRE: unique symbol = Symbol("huskies-sync.storedWire");

/** An operation whose wire text is read from a store on demand, never cached. */
export interface StoredWire {
  /** UTF-8 bytes of the wire text. */
  readonly bytes: number;
  /** Reads the wire text. */
  [STORED_WIRE](): string;
}

function isStoredWire(op: Operation): op is Operation & StoredWire {
  return (op as Partial<StoredWire>)[STORED_WIRE] !== undefined;
}

/**
 * The encoding of `op`, cached per operation object (operations are never
 * mutated), so a hub that stores and forwards one operation to many peers
 * encodes it once, and parse, log and store measure its size once. An
 * operation kept on disk gives its stored text instead (nothing is cached).
 */
function encodingOf(op: Operation): OperationComputed {
  if (isStoredWire(op)) return { wire: op[STORED_WIRE](), bytes: op.bytes, idChecked: false };
  return computedSlot.get(op) ??
    computedSlot.set(op, {
      wire: JSON.stringify(operationToWire(op)),
      bytes: -1,
      idChecked: false,
    });
}

/**
 * Encodes an operation's JSON wire form as a string. The result is cached per
 * operation object (operations are never mutated), so a hub that stores and
 * forwards one operation to many peers encodes it once.
 */
export function encodeOperation(op: Operation): string {
  return encodingOf(op).wire;
}

/**
 * Most UTF-16 code units of text {@link decodeOperation} parses: the size
 * limit applies to the canonical form, and escapes (`\u0041`) or whitespace
 * can make the text up to six times longer than that.
 */
const MAX_DECODE_TEXT = 6 * OPERATION_LIMITS.maxBytes;

/** Parses an operation from a JSON string; throws `SyntaxError` on bad input. */
export function decodeOperation(text: string, options: ParseOptions = {}): Operation {
  if (text.length > MAX_DECODE_TEXT) {
    throw new SyntaxError(
      `Cannot parse operation: its text is longer than ${MAX_DECODE_TEXT} characters`,
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new SyntaxError("Cannot parse operation: not valid JSON");
  }
  return parseOperation(parsed, options);
}

/** True when `op.id` is the hash of its unsigned fields. */
export function hasValidId(op: Operation): boolean {
  return computedSlot.get(op)?.idChecked === true || operationId(op) === op.id;
}
