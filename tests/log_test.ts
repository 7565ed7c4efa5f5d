import assert from "node:assert/strict";
import { SignatureVerifier } from "../crdt/identity.ts";
import { OpLog } from "../crdt/log.ts";
import { signOperation } from "../crdt/operation.ts";
import { identity, OpFactory, setField } from "./helpers.ts";

const verifier = new SignatureVerifier();
const newLog = (options: Partial<ConstructorParameters<typeof OpLog>[0]> = {}) =>
  new OpLog({ verifier, ...options });

Deno.test("log clock counts each author's gap-free prefix and names its head", () => {
  const f = new OpFactory();
  const [a, b] = [identity(1), identity(2)];
  const ops = [...f.chain(a, 3), ...f.chain(b, 2)];
  const log = newLog();
  const result = log.receive(ops, false);
  assert.deepEqual(result.statuses, ops.map(() => "applied"));
  assert.deepEqual(log.clock(), { [a.nodeId]: 3, [b.nodeId]: 2 });
  assert.deepEqual(log.heads(), { [a.nodeId]: ops[2].id, [b.nodeId]: ops[4].id });
});

Deno.test("opsSince returns exactly what a peer lacks, in an order it can apply", () => {
  const f = new OpFactory();
  const [a, b, c] = [identity(1), identity(2), identity(3)];
  const a1 = f.next(a, setField("x", "stage", "qa"));
  const b1 = f.next(b, setField("x", "name", "n"), [a1.id]);
  const a2 = f.next(a, setField("x", "agent", "g"), [b1.id]);
  const c1 = f.next(c, setField("y", "stage", "qa"), [a2.id]);
  const full = newLog();
  full.receive([a1, b1, a2, c1], false);
  const partial = newLog();
  partial.receive([a1], false);
  const missing = full.opsSince(partial.clock());
  assert.deepEqual(missing.map((op) => op.id), [b1.id, a2.id, c1.id]);
  assert.deepEqual(partial.receive(missing, true).statuses, ["applied", "applied", "applied"]);
  assert.deepEqual(partial.clock(), full.clock());
  assert.deepEqual(full.opsSince(full.clock()), []);
  // A peer claiming more than we hold gets nothing for that author.
  assert.deepEqual(full.opsSince({ [a.nodeId]: 99 }).map((op) => op.id), [b1.id, c1.id]);
  // A peer whose head differs at a position we hold is sent our operation there, to see the fork.
  assert.deepEqual(full.opsSince({ [a.nodeId]: 1 }, { [a.nodeId]: "f".repeat(64) })[0].id, a1.id);
});

Deno.test("an operation waits for its predecessor and dependencies, then applies", () => {
  const f = new OpFactory();
  const [a, b] = [identity(1), identity(2)];
  const [a1, a2, a3] = f.chain(a, 3);
  const b1 = f.next(b, setField("z", "stage", "qa"), [a3.id]);
  const log = newLog();
  assert.deepEqual(log.receive([b1, a3, a2], false).statuses, ["pending", "pending", "pending"]);
  assert.equal(log.size, 0);
  assert.equal(log.pendingSize().count, 3);
  const result = log.receive([a1], false);
  assert.deepEqual(result.applied.map((op) => op.id), [a1.id, a2.id, a3.id, b1.id]);
  assert.equal(log.pendingSize().count, 0);
  assert.equal(log.pendingSize().bytes, 0);
});

Deno.test("pending buffer drops the excess beyond its count and byte bounds", () => {
  const f = new OpFactory();
  const ops = f.chain(identity(1), 12);
  const byCount = newLog({ pending: { maxCount: 5 } });
  const statuses = byCount.receive(ops.slice(1), false).statuses;
  assert.deepEqual(statuses.filter((s) => s === "pending").length, 5);
  assert.deepEqual(statuses.filter((s) => s === "dropped").length, 6);
  // Once the gap is filled, what was kept applies; the rest comes again later.
  assert.equal(byCount.receive([ops[0]], false).applied.length, 6);
  assert.equal(byCount.receive(ops.slice(6), false).applied.length, 6);
  const byBytes = newLog({ pending: { maxBytes: 1000 } });
  const held = byBytes.receive(ops.slice(1), false).statuses.filter((s) => s === "pending");
  assert.ok(held.length >= 1 && held.length < 11);
  assert.ok(byBytes.pendingSize().bytes <= 1000);
});

Deno.test("a duplicate is reported as such, whether applied, pending or repeated in a batch", () => {
  const f = new OpFactory();
  const [o1, o2] = f.chain(identity(1), 2);
  const log = newLog();
  assert.deepEqual(log.receive([o2, o2], false).statuses, ["pending", "duplicate"]);
  assert.deepEqual(log.receive([o1, o1, o2], false).statuses, [
    "applied",
    "duplicate",
    "duplicate",
  ]);
  assert.deepEqual(log.receive([o1], false).statuses, ["duplicate"]);
});

Deno.test("two signed operations at one position are a fork, proven and fenced off", () => {
  const f = new OpFactory();
  const a = identity(1);
  const [o1, o2] = f.chain(a, 2);
  const rival = signOperation({ ...o2, mutation: setField("evil", "stage", "done") }, a);
  const log = newLog();
  log.receive([o1, o2], false);
  const result = log.receive([rival], false);
  assert.deepEqual(result.statuses, ["fork"]);
  assert.equal(result.forks.length, 1);
  const [proof] = log.forks();
  assert.equal(proof.author, a.nodeId);
  assert.equal(proof.seq, 2);
  assert.deepEqual(new Set([proof.a.id, proof.b.id]), new Set([o2.id, rival.id]));
  assert.ok(log.isForked(a.nodeId));
  const o3 = f.next(a, setField("x", "stage", "qa"));
  assert.deepEqual(log.receive([o3], false).statuses, ["forked-author"]);
  // Another log accepts the proof after checking it, and refuses a bogus one.
  const other = newLog();
  assert.ok(other.addForkProof(proof));
  assert.equal(other.addForkProof(proof), false);
  const third = newLog();
  assert.equal(third.addForkProof({ ...proof, b: { ...proof.b, sig: proof.a.sig } }), false);
  assert.equal(third.addForkProof({ ...proof, b: proof.a }), false);
});

Deno.test("operations by authors that may not write are refused", () => {
  const f = new OpFactory();
  const [writer, reader] = [identity(1), identity(2)];
  const log = newLog({ mayAuthor: (author) => author === writer.nodeId });
  const ops = [
    f.next(writer, setField("x", "stage", "qa")),
    f.next(reader, setField("x", "stage", "done")),
  ];
  assert.deepEqual(log.receive(ops, false).statuses, ["applied", "unauthorized"]);
});

Deno.test("operations with bad signatures or non-increasing time are invalid", () => {
  const f = new OpFactory();
  const a = identity(1);
  const [o1, o2] = f.chain(a, 2);
  const log = newLog();
  assert.deepEqual(log.receive([{ ...o1, sig: o2.sig }], false).statuses, ["invalid"]);
  log.receive([o1], false);
  const stale = signOperation({ ...o2, time: o1.time }, a);
  assert.deepEqual(log.receive([stale], false).statuses, ["invalid"]);
});

Deno.test("rollback undoes operations applied after the mark", () => {
  const f = new OpFactory();
  const ops = f.chain(identity(1), 4);
  const log = newLog();
  log.receive(ops.slice(0, 2), false);
  const clock = log.clock();
  const frontier = log.frontier();
  const mark = log.mark();
  log.receive(ops.slice(2), false);
  log.rollback(mark);
  assert.deepEqual(log.clock(), clock);
  assert.deepEqual(log.frontier(), frontier);
  assert.equal(log.has(ops[3].id), false);
  assert.deepEqual(log.receive(ops.slice(2), false).statuses, ["applied", "applied"]);
});
