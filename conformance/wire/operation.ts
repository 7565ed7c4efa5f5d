/**
 * Operations (PROTOCOL.md §2): the canonical body, id and signature, a
 * checker for received operations, and an author that builds a chain.
 * @module
 */

import { canonicalJson } from "./canonical.ts";
import { hex, isHex128, isHex64, sha256, unhex, utf8 } from "./bytes.ts";
import { KeyPair, verifySignature } from "./ed25519.ts";

/** A mutation (§2.2). */
export type Mutation =
  | { type: "update"; path: string[]; fields: Record<string, unknown> }
  | { type: "remove"; path: string[] }
  | { type: "append"; path: string[]; value: unknown };

/** An operation as it crosses the wire. */
export interface Op {
  /** Author node id. */
  author: string;
  /** Position in the author's chain. */
  seq: number;
  /** Id of the author's previous operation. */
  prev: string | null;
  /** Ids built on, sorted. */
  deps: string[];
  /** Lamport time. */
  time: number;
  /** The change. */
  mutation: Mutation;
  /** Hash of the body. */
  id: string;
  /** Signature over the id bytes. */
  sig: string;
}

/** The id of an operation body (§2.3). */
export function operationId(op: Omit<Op, "id" | "sig">): string {
  const body = {
    author: op.author,
    deps: op.deps,
    mutation: op.mutation,
    prev: op.prev,
    seq: op.seq,
    time: op.time,
  };
  return hex(sha256(utf8("huskies-sync/op/v1\n" + canonicalJson(body))));
}

/** Signs a body with `key`, returning the complete operation (id and sig). */
export function signOperation(key: KeyPair, body: Omit<Op, "id" | "sig">): Op {
  const id = operationId(body);
  return { ...body, id, sig: hex(key.sign(unhex(id))) };
}

/** What is wrong with a received operation's id or signature, or undefined (§2.3). */
export function operationProblem(value: unknown): string | undefined {
  if (typeof value !== "object" || value === null) return "not an object";
  const op = value as Op;
  if (!isHex64(op.author)) return "author is not hex64";
  if (!isHex64(op.id)) return "id is not hex64";
  if (!isHex128(op.sig)) return "sig is not hex128";
  let id: string;
  try {
    id = operationId(op);
  } catch (error) {
    return `body cannot be encoded: ${(error as Error).message}`;
  }
  if (id !== op.id) return "id is not the hash of the body";
  if (!verifySignature(unhex(op.author), unhex(op.id), unhex(op.sig))) return "bad signature";
  return undefined;
}

/** Builds one author's chain: seq, prev and Lamport time. */
export class Author {
  /** The author's key. */
  readonly key: KeyPair;
  /** Operations built so far, in order. */
  readonly ops: Op[] = [];
  #time = 0;

  constructor(key: KeyPair = KeyPair.generate()) {
    this.key = key;
  }

  /** The author's node id. */
  get id(): string {
    return this.key.id;
  }

  /** The body of the next operation (not yet signed or recorded). */
  nextBody(mutation: Mutation, deps: Op[] = []): Omit<Op, "id" | "sig"> {
    const last = this.ops[this.ops.length - 1];
    const time = Math.max(this.#time, ...deps.map((d) => d.time)) + 1;
    return {
      author: this.id,
      seq: this.ops.length + 1,
      prev: last?.id ?? null,
      deps: deps.map((d) => d.id).sort(),
      time,
      mutation,
    };
  }

  /** Builds, signs and records the next operation. */
  write(mutation: Mutation, deps: Op[] = []): Op {
    const op = signOperation(this.key, this.nextBody(mutation, deps));
    this.ops.push(op);
    this.#time = op.time;
    return op;
  }

  /** Signs `body` as this author without recording it (for broken or forked operations). */
  sign(body: Omit<Op, "id" | "sig">): Op {
    return signOperation(this.key, body);
  }
}
