/**
 * A light reference to an operation kept on disk: the fields the log, the
 * clock and catch-up need (id, author, seq, prev, time, size) are held in
 * memory; the body (mutation, signature) is read from the store each time it
 * is asked for and never kept, so a hub holds a few hundred bytes per
 * operation instead of one to two kilobytes. Catch-up sends the stored wire
 * text as it is.
 * @module
 */
import type { NodeId } from "./identity.ts";
import { touchesMembers } from "./membership_ops.ts";
import {
  type Mutation,
  NO_DEPS,
  type Operation,
  operationToWire,
  type OpId,
  STORED_WIRE,
  type StoredWire,
} from "./operation.ts";
import { isHex128 } from "../protocol/bytes.ts";
import { CORRUPT_ADVICE, StoreCorruptError } from "./sqlite_file.ts";

/** Where stored operations' bodies are read from. */
export interface BodyReader {
  /** The store's path, for messages. */
  readonly path: string;
  /** The `body` (wire text) of row `row`, or `undefined` when the row is gone. */
  readBody(row: number): string | undefined;
}

/** The in-memory fields of a stored operation (one row of the store's index). */
export interface StoredFields {
  /** The row's position in the store (`seq_no`). */
  row: number;
  /** The operation id. */
  id: OpId;
  /** The author. */
  author: NodeId;
  /** Its position in the author's chain. */
  seq: number;
  /** The author's previous operation, `null` at seq 1. */
  prev: OpId | null;
  /** Lamport time. */
  time: number;
  /** `deps` as JSON text, `null` when there are none. */
  depsText: string | null;
  /** UTF-8 bytes of the wire text. */
  bytes: number;
  /** True when the mutation touches the membership part of the document. */
  members: boolean;
}

/** How an encoded operation ends: `,"id":"<64 hex>","sig":"<128 hex>"}`. */
const ID_KEY = ',"id":"';
const SIG_KEY = '","sig":"';
const SIG_END = 2; // the closing quote and brace
const WIRE_TAIL_LENGTH = ID_KEY.length + 64 + SIG_KEY.length + 128 + SIG_END;
const MUTATION_KEY = ',"mutation":';
const QUOTE = 0x22;
const CLOSE_BRACE = 0x7d;

/** Parts of a stored operation's wire text ({@link StoredOperation.storedParts}). */
export interface StoredParts {
  /** The mutation's JSON text, as stored. */
  mutation: string;
  /** UTF-8 bytes of `mutation`. */
  mutationBytes: number;
  /** The signature's 128 hex characters, as stored. */
  sig: string;
}

/**
 * An {@link Operation} whose body stays in the store. Reading `mutation` or
 * `sig` reads the row: its id, author, seq, prev and time must match the
 * index and its structure be an operation's (the full checks ran when it was
 * written, and run again in the background); a row that is gone or does not
 * match throws {@link StoreCorruptError}. `deps` come from the index.
 */
export class StoredOperation implements Operation, StoredWire {
  /** The row's position in the store. */
  readonly row: number;
  /** The operation id. */
  id: OpId;
  /** The author (the log may replace it with an equal, shared string). */
  author: NodeId;
  /** Position in the author's chain. */
  seq: number;
  /** The author's previous operation (the log may replace it with an equal, shared string). */
  prev: OpId | null;
  /** Lamport time. */
  time: number;
  /** UTF-8 bytes of the wire text. */
  readonly bytes: number;
  /** True when the mutation touches the membership part of the document. */
  readonly members: boolean;
  readonly #depsText: string | null;
  readonly #reader: BodyReader;

  /** A reference to the row described by `fields`, read through `reader`. */
  constructor(fields: StoredFields, reader: BodyReader) {
    this.row = fields.row;
    this.id = fields.id;
    this.author = fields.author;
    this.seq = fields.seq;
    this.prev = fields.prev;
    this.time = fields.time;
    this.bytes = fields.bytes;
    this.members = fields.members;
    this.#depsText = fields.depsText;
    this.#reader = reader;
  }

  /** The dependencies (parsed from the index each time). */
  get deps(): OpId[] {
    return this.#depsText === null ? NO_DEPS : JSON.parse(this.#depsText);
  }

  /** The change (read from the store). */
  get mutation(): Mutation {
    return this.read().mutation;
  }

  /** The signature (read from the store). */
  get sig(): string {
    return this.read().sig;
  }

  /** The whole operation in its JSON wire form, so `JSON.stringify` gives what it gives for any operation. */
  toJSON(): Operation {
    return operationToWire(this.read());
  }

  /** The wire text as stored. */
  [STORED_WIRE](): string {
    return this.#body();
  }

  /**
   * The mutation's JSON text, its UTF-8 bytes and the signature, sliced from
   * the stored wire text (only the mutation is parsed, to check it) for a
   * catch-up that re-encodes bodies (`sync/compact_bulk.ts`). `undefined`
   * unless the text ends as `encodeOperation` ends it for this row's id, with
   * a hex signature and valid JSON for the mutation before; the caller then
   * reads the operation ({@link read}), which reports a damaged row. What
   * precedes the mutation holds only hex, digits and `null`, so the first
   * `,"mutation":` is where it starts. The rest of the operation comes from
   * the index.
   */
  storedParts(): StoredParts | undefined {
    const body = this.#reader.readBody(this.row);
    if (body === undefined) return undefined;
    const tailAt = body.length - WIRE_TAIL_LENGTH;
    const start = body.indexOf(MUTATION_KEY) + MUTATION_KEY.length;
    if (
      start < MUTATION_KEY.length || start >= tailAt || !body.startsWith(ID_KEY, tailAt) ||
      !body.startsWith(this.id, tailAt + ID_KEY.length) ||
      !body.startsWith(SIG_KEY, tailAt + ID_KEY.length + 64) ||
      body.charCodeAt(body.length - 2) !== QUOTE || body.charCodeAt(body.length - 1) !== CLOSE_BRACE
    ) return undefined;
    const sig = body.slice(body.length - SIG_END - 128, body.length - SIG_END);
    if (!isHex128(sig)) return undefined;
    const mutation = body.slice(start, tailAt);
    try {
      JSON.parse(mutation); // a damaged row is not sent as a broken frame
    } catch {
      return undefined;
    }
    // Everything around the mutation is ASCII: the rest of the row's bytes are the mutation's.
    const mutationBytes = this.bytes - (body.length - mutation.length);
    if (mutationBytes < mutation.length || mutationBytes > 3 * mutation.length) return undefined;
    return { mutation, mutationBytes, sig };
  }

  /**
   * The whole operation, read from the store and checked against the index.
   * @throws {StoreCorruptError} the row is gone, does not decode, or disagrees with the index.
   */
  read(): Operation {
    // The row was checked when it was written (and is checked again in the background, see
    // `sync/store_check.ts`): only the structure every reader relies on is checked here.
    let op: Operation;
    try {
      op = JSON.parse(this.#body());
    } catch {
      throw this.#corrupt("does not decode: not valid JSON");
    }
    if (
      typeof op !== "object" || op === null || !Array.isArray(op.deps) ||
      !op.deps.every((dep) => typeof dep === "string") || !isHex128(op.sig) ||
      typeof op.mutation !== "object" || op.mutation === null
    ) throw this.#corrupt("does not decode: not an operation");
    if (
      op.id !== this.id || op.author !== this.author || op.seq !== this.seq ||
      op.prev !== this.prev || op.time !== this.time
    ) throw this.#corrupt("has a body that disagrees with its index columns");
    // The chain's shared strings, and no array per operation without dependencies.
    op.id = this.id;
    op.author = this.author;
    op.prev = this.prev;
    if (op.deps.length === 0) op.deps = NO_DEPS;
    return op;
  }

  #body(): string {
    const body = this.#reader.readBody(this.row);
    if (body === undefined) throw this.#corrupt("is gone");
    // A row written again after its first version was lost (a failed commit) holds another operation.
    if (!body.includes(`"id":"${this.id}"`)) throw this.#corrupt("holds another operation");
    return body;
  }

  #corrupt(what: string): StoreCorruptError {
    const path = this.#reader.path;
    return new StoreCorruptError(
      path,
      `Cannot read store at ${path}: row seq_no ${this.row} (id ${this.id}) ${what}. ` +
        CORRUPT_ADVICE,
    );
  }
}

/**
 * True when `op`'s mutation touches the membership part of the document; an
 * operation on disk answers from its index, without reading its body.
 */
export function touchesMembersOp(op: Operation): boolean {
  return op instanceof StoredOperation ? op.members : touchesMembers(op.mutation);
}

/** The operation with its body in memory: `op` itself unless it is a {@link StoredOperation}. */
export function materialize(op: Operation): Operation {
  return op instanceof StoredOperation ? op.read() : op;
}
