import assert from "node:assert/strict";
import { SignatureVerifier } from "../crdt/identity.ts";
import { decodeOperation, encodeOperation, type Operation } from "../crdt/operation.ts";
import { hasValidSignature, signaturesToCheck } from "../crdt/signatures.ts";
import {
  POOLED_MIN_SIGNATURES,
  PrecheckedQueue,
  type PrecheckLimits,
  VerifyPool,
} from "../crdt/verify_pool.ts";
import { CloseCode } from "../protocol/close_codes.ts";
import { forged, identity, OpFactory } from "./helpers.ts";
import { eventually, RawPeer, serveNode } from "./net_helpers.ts";

/** `perAuthor` operations from each of `authors` authors, interleaved, as a peer's wire gives them. */
function interleaved(authors: number, perAuthor: number): Operation[] {
  const factory = new OpFactory();
  const ids = Array.from({ length: authors }, (_, i) => identity(100 + i));
  const ops: Operation[] = [];
  for (let round = 0; round < perAuthor; round++) {
    for (const author of ids) {
      ops.push(factory.next(author, {
        type: "update",
        path: ["items", `s${round}`],
        fields: { n: round },
      }));
    }
  }
  return ops.map((op) => decodeOperation(encodeOperation(op)));
}

/** A verifier that counts the signatures it checks itself. */
function countingVerifier(): { verifier: SignatureVerifier; calls: () => number } {
  const verifier = new SignatureVerifier();
  const verify = verifier.verify.bind(verifier);
  let calls = 0;
  verifier.verify = (...args) => (calls++, verify(...args));
  return { verifier, calls: () => calls };
}

/** A queue on `pool` recording the names it applies; `done` resolves once `count` are. */
function recordingQueue(pool: VerifyPool, count: number, limits?: PrecheckLimits) {
  const applied: string[] = [];
  const done = Promise.withResolvers<void>();
  const queue = new PrecheckedQueue<string>(pool, (name) => {
    applied.push(name);
    if (applied.length === count) done.resolve();
  }, limits);
  return { queue, applied, done: done.promise };
}

Deno.test("the pool records valid signatures only; forged ones are left for the receive to refuse", async () => {
  const ops = interleaved(8, 5);
  ops[3] = forged(ops[3], ops[4]);
  ops[17] = forged(ops[17], ops[2]);
  const pool = new VerifyPool(new SignatureVerifier(), 2);
  try {
    await pool.precheck(ops, false);
    const { verifier, calls } = countingVerifier();
    const verdicts = ops.map((op) => hasValidSignature(op, verifier));
    assert.equal(calls(), 2, "only the two forgeries were checked again");
    assert.deepEqual(
      verdicts.flatMap((valid, i) => valid ? [] : [i]),
      [3, 17],
    );
  } finally {
    pool.close();
  }
});

Deno.test("a recorded verdict does not survive a change to the signature it was given for", async () => {
  const ops = interleaved(4, 5);
  const pool = new VerifyPool(new SignatureVerifier(), 1);
  try {
    await pool.precheck(ops, false);
    const op = ops[0];
    op.sig = ops[1].sig;
    assert.equal(hasValidSignature(op, new SignatureVerifier()), false);
  } finally {
    pool.close();
  }
});

Deno.test("an amortised receive's prechecks are the tails of its chain runs", () => {
  const byAuthor = interleaved(3, 10).sort((a, b) =>
    a.author.localeCompare(b.author) || a.seq - b.seq
  );
  const tails = signaturesToCheck(byAuthor, true);
  assert.deepEqual(tails.map((op) => op.seq), [10, 10, 10]);
  assert.equal(signaturesToCheck(byAuthor, false).length, 30);
});

Deno.test("too few signatures, or a pool of none, are not sent to Workers", () => {
  const ops = interleaved(POOLED_MIN_SIGNATURES - 1, 1);
  const pool = new VerifyPool(new SignatureVerifier(), 2);
  assert.equal(pool.precheck(ops, false), undefined);
  pool.close();
  assert.equal(
    new VerifyPool(new SignatureVerifier(), 0).precheck(interleaved(20, 2), false),
    undefined,
  );
  assert.equal(new VerifyPool(new SignatureVerifier("noble"), 2).size, 0);
});

Deno.test("queued batches are applied in order, a small one waiting behind one being checked", async () => {
  const pool = new VerifyPool(new SignatureVerifier(), 2);
  const { queue, applied, done } = recordingQueue(pool, 3);
  try {
    queue.push("small first", interleaved(1, 1), true, 100);
    assert.deepEqual(applied, ["small first"], "nothing waited: applied at once");
    const big = interleaved(40, 1);
    queue.push("big", big, true, 10_000);
    queue.push("small after", interleaved(1, 1), true, 100);
    assert.deepEqual(applied, ["small first"]);
    assert.equal(queue.waiting, 2);
    await done;
    assert.deepEqual(applied, ["small first", "big", "small after"]);
    const { verifier, calls } = countingVerifier();
    assert.ok(big.every((op) => hasValidSignature(op, verifier)));
    assert.equal(calls(), 0, "the big batch was checked on the Workers");
  } finally {
    pool.close();
  }
});

Deno.test("past the hard limit everything waiting is applied at once", () => {
  const pool = new VerifyPool(new SignatureVerifier(), 1);
  const { queue, applied } = recordingQueue(pool, 2, { softBytes: 1_000, hardBytes: 5_000 });
  try {
    queue.push("a", interleaved(20, 1), false, 3_000);
    queue.push("b", interleaved(20, 1), false, 3_000);
    assert.deepEqual(applied, ["a", "b"]);
    assert.equal(queue.waiting, 0);
  } finally {
    pool.close();
  }
});

Deno.test("over the soft limit, the newest batch is checked on the caller's thread", async () => {
  const pool = new VerifyPool(new SignatureVerifier(), 1);
  const { queue, applied, done } = recordingQueue(pool, 2, {
    softBytes: 1_000,
    hardBytes: 1_000_000,
  });
  // A pool with no room makes the second batch wait unchecked behind the first.
  const first = interleaved(5000, 1).slice(0, 4096);
  const second = interleaved(20, 1);
  try {
    queue.push("first", first, false, 900);
    assert.equal(pool.hasRoom, false);
    const { verifier, calls } = countingVerifier();
    queue.push("second", second, false, 900);
    assert.deepEqual(applied, [], "the first is still with the Workers");
    assert.ok(second.every((op) => hasValidSignature(op, verifier)));
    assert.equal(calls(), 0, "the second was checked here, at once");
    await done;
    assert.deepEqual(applied, ["first", "second"]);
  } finally {
    pool.close();
  }
});

Deno.test("closing the pool settles what it was checking, and the receive checks it instead", async () => {
  const pool = new VerifyPool(new SignatureVerifier(), 1);
  const ops = interleaved(30, 1);
  const checked = pool.precheck(ops, false);
  pool.close();
  await checked;
  assert.equal(pool.size, 0);
  assert.equal(pool.precheck(ops, false), undefined);
});

Deno.test("a node with verification Workers applies a peer's bulk of many authors and refuses a forgery", async () => {
  const ops = interleaved(40, 5);
  // Author 30's last: the tail of its chain run, whose signature the receive checks.
  ops[190] = forged(ops[190], ops[10]);
  const hub = await serveNode({ verifyWorkers: 2 });
  const peer = await RawPeer.connect(hub.url, identity(999));
  try {
    await peer.next();
    peer.send({ type: "clock", clock: {} });
    peer.send(`{"type":"bulk","ops":[${ops.map(encodeOperation).join(",")}]}`);
    await eventually(() => hub.node.replica.size === 199, "the 199 valid operations applied");
    peer.send({ type: "ready" }); // the forgery waited for a frame that might continue its chain
    await eventually(() => hub.node.sessions()[0].stats().invalidOps === 1, "the forgery refused");
    assert.equal(hub.node.replica.getOperation(ops[190].id), undefined);
  } finally {
    peer.socket.close();
    await hub.stop();
  }
});

Deno.test("with verification Workers, a peer sending only forgeries is still disconnected", async () => {
  const hub = await serveNode({ verifyWorkers: 2, maxInvalidOps: 50 });
  const peer = await RawPeer.connect(hub.url, identity(998));
  try {
    await peer.next();
    peer.send({ type: "clock", clock: {} });
    const ops = interleaved(60, 1).map((op, i, all) => forged(op, all[(i + 1) % all.length]));
    const closed = hub.node.once("session-closed", { timeoutMs: 10_000 });
    peer.send(`{"type":"bulk","ops":[${ops.map(encodeOperation).join(",")}]}`);
    assert.equal((await closed).code, CloseCode.TOO_MANY_INVALID);
    assert.equal(hub.node.replica.size, 0);
  } finally {
    await hub.stop();
  }
});
