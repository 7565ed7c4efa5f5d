/** Shared test helpers: deterministic identities and signed operation chains. */
import { Identity } from "../crdt/identity.ts";
import type { JsonValue } from "../crdt/canonical.ts";
import {
  decodeOperation,
  encodeOperation,
  type Mutation,
  type Operation,
  operationId,
  signOperation,
} from "../crdt/operation.ts";

/** `sig` (hex or base64) with its first character changed: still well formed, no longer valid. */
export function spoilt(sig: string): string {
  return (sig[0] === "a" ? "b" : "a") + sig.slice(1);
}

/** `op` carrying `other`'s signature, decoded again as a received operation. */
export function forged(op: Operation, other: Operation): Operation {
  return decodeOperation(encodeOperation({ ...op, sig: other.sig }));
}

/** A deterministic identity from a small number. */
export function identity(n: number): Identity {
  const seed = new Uint8Array(32);
  new DataView(seed.buffer).setUint32(0, n + 1);
  return Identity.fromSeed(seed);
}

/**
 * A seq-1 operation by `author` appending `value`, signed by hand: it skips
 * `signOperation`'s size check, so tests can build operations over the limit.
 */
export function handSigned(author: Identity, value: JsonValue): Operation {
  const unsigned = {
    author: author.nodeId,
    seq: 1,
    prev: null,
    deps: [],
    time: 1,
    mutation: { type: "append" as const, path: ["log"], value },
  };
  const id = operationId(unsigned);
  return { ...unsigned, id, sig: author.sign(Uint8Array.fromHex(id)).toHex() };
}

/** Builds signed operations, tracking each author's chain and a shared Lamport clock. */
export class OpFactory {
  #heads = new Map<string, { seq: number; id: string; time: number }>();
  #time = 0;

  /** Signs the author's next operation, depending on `deps`. */
  next(author: Identity, mutation: Mutation, deps: string[] = []): Operation {
    const head = this.#heads.get(author.nodeId);
    const op = signOperation({
      author: author.nodeId,
      seq: (head?.seq ?? 0) + 1,
      prev: head?.id ?? null,
      deps: [...deps].sort(),
      time: ++this.#time,
      mutation,
    }, author);
    this.#heads.set(author.nodeId, { seq: op.seq, id: op.id, time: op.time });
    return op;
  }

  /** `count` operations by `author`, each setting a field of item `s<i>`. */
  chain(author: Identity, count: number): Operation[] {
    const ops: Operation[] = [];
    for (let i = 0; i < count; i++) {
      ops.push(this.next(author, {
        type: "update",
        path: ["items", `s${i % 16}`],
        fields: { retry_count: i },
      }));
    }
    return ops;
  }
}

/** A mutation that sets `field` of item `story` to `value`. */
export function setField(story: string, field: string, value: string | number): Mutation {
  return { type: "update", path: ["items", story], fields: { [field]: value } };
}

/**
 * True when `script` succeeds under `sh -c` in a new user and mount namespace (`unshare -rm`):
 * whether this machine lets a test mount what it needs there (Linux only).
 */
export async function canRunUnshared(script: string): Promise<boolean> {
  try {
    const probe = await new Deno.Command("unshare", {
      args: ["-rm", "sh", "-c", script],
      stdout: "null",
      stderr: "null",
    }).output();
    return probe.success;
  } catch {
    return false;
  }
}
