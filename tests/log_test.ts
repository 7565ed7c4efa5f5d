import assert from "node:assert/strict";
import { SignatureVerifier } from "../crdt/identity.ts";
import { checkChain, describeVerdict } from "../crdt/chain_check.ts";
import { OpLog } from "../crdt/log.ts";
import { encodedSize, encodeOperation, signOperation } from "../crdt/operation.ts";
import { verifyOperation } from "../crdt/signatures.ts";
import { Replica } from "../crdt/replica.ts";
import { MemoryStore } from "../crdt/store.ts";
import { handSigned, identity, OpFactory, setField } from "./helpers.ts";

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
  const byCount = newLog({ pending: { maxCount: 5, maxPerAuthor: 5 } });
  const statuses = byCount.receive(ops.slice(1), false).statuses;
  assert.deepEqual(statuses.filter((s) => s === "pending").length, 5);
  assert.deepEqual(statuses.filter((s) => s === "dropped").length, 6);
  // Once the gap is filled, what was kept applies; the rest comes again later.
  assert.equal(byCount.receive([ops[0]], false).applied.length, 6);
  assert.equal(byCount.receive(ops.slice(6), false).applied.length, 6);
  const byBytes = newLog({ pending: { maxBytes: 1000, maxBytesPerAuthor: 1000 } });
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
  assert.equal(log.has(o3.id), false);
  // Another log accepts the proof after checking it, and refuses a bogus or repeated one.
  const other = newLog();
  assert.ok(other.addForkProof(proof));
  assert.equal(other.addForkProof(proof), undefined);
  const third = newLog();
  assert.equal(third.addForkProof({ ...proof, b: { ...proof.b, sig: proof.a.sig } }), undefined);
  assert.equal(third.addForkProof({ ...proof, b: proof.a }), undefined);
});

/**
 * Author X's chain x1, x2, then two branches from seq 3: a3, a4 and b3, b4 (two
 * copies of X's key each continuing on its own). Each factory stamps the same
 * times for the shared prefix, so both sign the very same x1, x2.
 */
function forkedChains() {
  return forkedChainsOf(identity(5));
}

/** {@link forkedChains} for author `x`. */
function forkedChainsOf(x: ReturnType<typeof identity>) {
  const fa = new OpFactory();
  const fb = new OpFactory();
  const [x1, x2] = fa.chain(x, 2);
  fb.chain(x, 2);
  const a3 = fa.next(x, setField("x", "stage", "branch-a"));
  const a4 = fa.next(x, setField("x", "agent", "branch-a"));
  const b3 = fb.next(x, setField("x", "stage", "branch-b"));
  const b4 = fb.next(x, setField("x", "agent", "branch-b"));
  return { x, fa, fb, x1, x2, a3, a4, b3, b4 };
}

Deno.test("log quarantines a forked author's operations on both sides from the fork point on", () => {
  const { x, x1, x2, a3, a4, b3, b4 } = forkedChains();
  const log = newLog();
  assert.deepEqual(log.receive([x1, x2, a3, a4], false).statuses, [
    "applied",
    "applied",
    "applied",
    "applied",
  ]);
  const result = log.receive([b3, b4], false);
  assert.deepEqual(result.statuses, ["fork", "forked-author"]);
  assert.equal(result.rebuilt, true);
  assert.deepEqual(result.forks.map((proof) => proof.seq), [3]);
  // a3 and a4 left the chain; b3 and b4 are newly held (so stored), all four quarantined.
  assert.deepEqual(
    new Set(result.quarantined.map((op) => op.id)),
    new Set([a3, a4, b3, b4].map((op) => op.id)),
  );
  assert.deepEqual(result.held.map((op) => op.id), [b3.id, b4.id]);
  assert.deepEqual(result.applied, []);
  for (const op of [a3, a4, b3, b4]) {
    assert.ok(log.isQuarantined(op.id));
    assert.equal(log.has(op.id), false);
  }
  assert.equal(log.forkPoint(x.nodeId), 3);
  // The clock for X is the fork point - 1, on the agreed chain, and peers are never sent more.
  assert.deepEqual(log.clock(), { [x.nodeId]: 2 });
  assert.equal(log.headOf(x.nodeId), x2.id);
  assert.deepEqual(log.all().map((op) => op.id), [x1.id, x2.id]);
  assert.deepEqual(log.opsSince({}).map((op) => op.id), [x1.id, x2.id]);
  // New local operations never depend on a quarantined one.
  assert.deepEqual(log.frontier(), [x2.id]);
  // Quarantined operations travel with the last agreed operation before them.
  assert.deepEqual(log.quarantineToSend().map((op) => op.id), [x2.id, a3.id, a4.id, b3.id, b4.id]);
  // Whatever else X signs from there on is quarantined too, and never applied.
  assert.deepEqual(log.receive([b4, a4], false).statuses, ["duplicate", "duplicate"]);
});

Deno.test("log applies an honest operation that depends on a quarantined operation", () => {
  const { x1, x2, a3, a4, b3, b4, fa, fb } = forkedChains();
  // Honest nodes made operations on top of each branch before anyone saw the fork.
  const onA = fa.next(identity(6), setField("y", "stage", "qa"), [a4.id]);
  const onB = fb.next(identity(7), setField("z", "stage", "qa"), [b4.id]);
  // A log that saw branch A first: the fork fences b3, b4 off, yet onB applies.
  const first = newLog();
  first.receive([x1, x2, a3, a4, onA], false);
  assert.deepEqual(first.receive([b3, b4, onB], false).statuses, [
    "fork",
    "forked-author",
    "applied",
  ]);
  // A log that saw branch B first and gets onA before a3, a4: onA waits, then applies.
  const second = newLog();
  assert.deepEqual(second.receive([onA, x1, x2, b3, b4, onB], false).statuses, [
    "pending",
    "applied",
    "applied",
    "applied",
    "applied",
    "applied",
  ]);
  assert.ok(second.addForkProof(first.forks()[0]));
  assert.equal(second.has(onA.id), false);
  const released = second.receive([a3, a4], false);
  assert.deepEqual(released.statuses, ["duplicate", "forked-author"]); // a3: the proof's evidence
  assert.deepEqual(released.applied.map((op) => op.id), [onA.id]);
  assert.equal(second.pendingSize().count, 0);
  // Both hold the same applied operations and clock.
  const ids = (log: OpLog) => new Set(log.all().map((op) => op.id));
  assert.deepEqual(ids(first), new Set([x1.id, x2.id, onA.id, onB.id]));
  assert.deepEqual(ids(second), ids(first));
  assert.deepEqual(second.clock(), first.clock());
});

Deno.test("log places the forked author's pending operations in quarantine when the proof arrives", () => {
  const { x, x1, x2, a3, a4, b3, b4 } = forkedChains();
  const log = newLog();
  log.receive([x1, x2], false);
  assert.deepEqual(log.receive([b4, a4], false).statuses, ["pending", "pending"]);
  const result = log.addForkProof({ author: x.nodeId, seq: 3, a: a3, b: b3 })!;
  assert.equal(result.rebuilt, false);
  assert.equal(log.pendingSize().count, 0);
  for (const op of [a3, a4, b3, b4]) assert.ok(log.isQuarantined(op.id));
  assert.deepEqual(
    new Set(result.held.map((op) => op.id)),
    new Set([a3, b3, a4, b4].map((op) => op.id)),
  );
});

Deno.test("log lowers the fork point when a fork below it is proven", () => {
  const { x, x1, x2, a3, a4, b3 } = forkedChains();
  // x2' rivals x2 at seq 2.
  const rival = signOperation({ ...x2, mutation: setField("x", "name", "rival") }, x);
  const log = newLog();
  log.receive([x1, x2, a3, a4], false);
  log.addForkProof({ author: x.nodeId, seq: 3, a: a3, b: b3 });
  assert.equal(log.forkPoint(x.nodeId), 3);
  // A proof at or above the known fork point changes nothing.
  assert.equal(log.addForkProof({ author: x.nodeId, seq: 3, a: a4, b: a3 }), undefined);
  // A conflict below it is a new, lower fork point: x2 leaves the chain too.
  const result = log.receive([rival], false);
  assert.deepEqual(result.statuses, ["fork"]);
  assert.deepEqual(result.forks.map((proof) => proof.seq), [2]);
  assert.equal(log.forkPoint(x.nodeId), 2);
  assert.deepEqual(log.clock(), { [x.nodeId]: 1 });
  assert.ok(log.isQuarantined(x2.id) && log.isQuarantined(rival.id));
  // The lower proof is what the log now holds and passes on.
  assert.deepEqual(log.forks().map((proof) => proof.seq), [2]);
  assert.deepEqual(log.quarantineToSend()[0].id, x1.id);
});

Deno.test("log quarantine drops the excess beyond its count and byte bounds", () => {
  const { x, x1, a3, b3 } = forkedChains();
  const proof = { author: x.nodeId, seq: 3, a: a3, b: b3 };
  const later = new OpFactory();
  later.chain(x, 2);
  const flood = Array.from({ length: 20 }, (_, i) => later.next(x, setField("f", "n", i)));
  const byCount = newLog({ quarantine: { maxCount: 5 } });
  byCount.receive([x1], false);
  byCount.addForkProof(proof); // the proof's two operations are kept as evidence
  const statuses = byCount.receive(flood, false).statuses;
  assert.equal(statuses.filter((s) => s === "forked-author").length, 3);
  assert.equal(statuses.filter((s) => s === "dropped").length, 17);
  assert.equal(byCount.quarantineSize().count, 5);
  const byBytes = newLog({ quarantine: { maxBytes: 2000 } });
  byBytes.addForkProof(proof);
  byBytes.receive(flood, false);
  assert.ok(byBytes.quarantineSize().count < 10);
  assert.ok(byBytes.quarantineSize().bytes <= 2000);
  // Nothing of it was applied or left pending.
  assert.equal(byCount.size, 1);
  assert.equal(byCount.pendingSize().count, 0);
});

Deno.test("log rollback undoes a fork detected after the mark", () => {
  const { x, x1, x2, a3, a4, b3 } = forkedChains();
  const log = newLog();
  log.receive([x1, x2, a3, a4], false);
  const clock = log.clock();
  const frontier = log.frontier();
  const mark = log.mark();
  assert.equal(log.receive([b3], false).rebuilt, true);
  log.rollback(mark);
  assert.equal(log.isForked(x.nodeId), false);
  assert.deepEqual(log.clock(), clock);
  assert.deepEqual(log.frontier(), frontier);
  assert.deepEqual(log.all().map((op) => op.id), [x1.id, x2.id, a3.id, a4.id]);
  assert.equal(log.quarantineSize().count, 0);
  // Receiving it again detects the fork again.
  assert.deepEqual(log.receive([b3], false).statuses, ["fork"]);
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

Deno.test("checkChain says why an operation cannot join its author's chain, as a tagged verdict", () => {
  const f = new OpFactory();
  const a = identity(1);
  const [o1, o2, o3] = f.chain(a, 3);
  const held = new Map([[o1.id, o1.time]]);
  const time = (id: string) => held.get(id);
  assert.deepEqual(checkChain(o1, undefined, time), { kind: "ready" });
  assert.deepEqual(checkChain(o2, o1, time), { kind: "ready" });
  assert.deepEqual(checkChain(o3, o1, time), { kind: "waiting", on: o2.id, what: "prev" });
  assert.deepEqual(checkChain(o1, o1, time), { kind: "taken", count: 1 });
  const onTop = f.next(identity(2), setField("y", "stage", "qa"), [o3.id]);
  assert.deepEqual(checkChain(onTop, undefined, time), {
    kind: "waiting",
    on: o3.id,
    what: "dependency",
  });
  const stale = signOperation({ ...o2, time: o1.time }, a);
  assert.deepEqual(checkChain(stale, o1, time), {
    kind: "broken",
    reason: "time does not increase",
  });
  assert.equal(describeVerdict(stale, checkChain(stale, o1, time)), "time does not increase");
});

Deno.test("a validly signed operation over 64 KiB is counted invalid and never held or stored", () => {
  const author = identity(3);
  const big = handSigned(author, ["x".repeat(60_000), "é".repeat(60_000)]);
  assert.ok(verifyOperation(big, verifier));
  const store = new MemoryStore();
  const replica = Replica.open({ identity: identity(4), store });
  const result = replica.receive([big]);
  assert.deepEqual(result.statuses, ["invalid"]);
  assert.equal(replica.size, 0);
  assert.equal(replica.pendingSize().count, 0);
  assert.equal(store.count(), 0);
});

/** A fork proof for `author` at seq 1 (two signed operations setting `stage` differently). */
function proofAtSeq1(author: ReturnType<typeof identity>, value: string | string[] = "a") {
  const f = new OpFactory();
  const g = new OpFactory();
  const a = f.next(author, { type: "append", path: ["log"], value });
  const b = g.next(author, setField("x", "stage", "other"));
  return { author: author.nodeId, seq: 1, a, b };
}

Deno.test("fork proofs count only for authors that may write; a refused proof is not stored", () => {
  const [writer, outsider] = [identity(20), identity(21)];
  const store = new MemoryStore();
  const replica = Replica.open({
    identity: identity(22),
    store,
    mayAuthor: (author) => author === writer.nodeId,
  });
  assert.equal(replica.addForkProof(proofAtSeq1(outsider)), false);
  assert.equal(replica.isForked(outsider.nodeId), false);
  assert.deepEqual(store.loadForks(), []);
  assert.equal(store.count(), 0);
  assert.equal(replica.addForkProof(proofAtSeq1(writer)), true);
  assert.deepEqual(store.loadForks().map((p) => p.author), [writer.nodeId]);
});

Deno.test("a fork proof whose operation is over 64 KiB (canonical) is refused", () => {
  const author = identity(23);
  const log = newLog();
  const big = {
    ...proofAtSeq1(author),
    a: handSigned(author, ["x".repeat(40_000), "é".repeat(20_000)]),
  };
  assert.ok(encodeOperation(big.a).length < 65_536 && encodedSize(big.a) > 65_536);
  assert.equal(log.addForkProof(big), undefined);
  assert.equal(log.isForked(author.nodeId), false);
});

Deno.test("the number and bytes of fork proofs held are bounded; lowering a known one still works", () => {
  const byCount = newLog({ forkProofs: { maxCount: 2 } });
  const authors = [30, 31, 32].map(identity);
  assert.ok(byCount.addForkProof(proofAtSeq1(authors[0])));
  assert.ok(byCount.addForkProof(proofAtSeq1(authors[1])));
  assert.equal(byCount.addForkProof(proofAtSeq1(authors[2])), undefined);
  assert.equal(byCount.forks().length, 2);
  // A rival operation from a third author is a fork the log cannot record: dropped, not held.
  const f = new OpFactory();
  const [c1] = f.chain(authors[2], 1);
  const rival = signOperation({ ...c1, mutation: setField("y", "stage", "x") }, authors[2]);
  assert.deepEqual(byCount.receive([c1, rival], false).statuses, ["applied", "dropped"]);
  assert.equal(byCount.isQuarantined(rival.id), false);
  const byBytes = newLog({ forkProofs: { maxBytes: 3000 } });
  const large = proofAtSeq1(authors[0], "z".repeat(1200));
  assert.ok(byBytes.addForkProof(large));
  assert.equal(byBytes.addForkProof(proofAtSeq1(authors[1], "z".repeat(1200))), undefined);
  // A lower proof for a known author replaces its proof: allowed while the bytes fit.
  const x = identity(33);
  const { x1, x2, a3, b3 } = forkedChainsOf(x);
  const lowering = newLog({ forkProofs: { maxCount: 1 } });
  lowering.receive([x1, x2], false);
  assert.ok(lowering.addForkProof({ author: x.nodeId, seq: 3, a: a3, b: b3 }));
  const x2b = signOperation({ ...x2, mutation: setField("x", "name", "rival") }, x);
  assert.ok(lowering.addForkProof({ author: x.nodeId, seq: 2, a: x2, b: x2b }));
  assert.equal(lowering.forkPoint(x.nodeId), 2);
});

Deno.test("one writer cannot fill the pending buffer: its quota holds, and honest operations evict its own", () => {
  const f = new OpFactory();
  const flooders = [50, 51, 52, 53].map(identity);
  const honest = identity(54);
  // 20 operations in all, 5 per author (a quarter).
  const log = newLog({ pending: { maxCount: 20 } });
  const floods = flooders.map((author) => f.chain(author, 9).slice(1)); // seq 1 never arrives
  const first = log.receive(floods[0], false);
  assert.equal(first.statuses.filter((s) => s === "pending").length, 5);
  assert.equal(first.statuses.filter((s) => s === "dropped").length, 3);
  assert.deepEqual(first.dropped.map((op) => op.seq), [7, 8, 9]);
  for (const flood of floods.slice(1)) log.receive(flood, false);
  assert.equal(log.pendingSize().count, 20);
  // An honest author's seq 2 before its seq 1: kept, by evicting a flooder's newest operation.
  const [h1, h2] = f.chain(honest, 2);
  const result = log.receive([h2], false);
  assert.deepEqual(result.statuses, ["pending"]);
  assert.equal(result.dropped.length, 1);
  const [evicted] = result.dropped;
  assert.ok(flooders.some((author) => author.nodeId === evicted.author));
  assert.equal(evicted.seq, 6);
  assert.equal(log.pendingSize().count, 20);
  assert.deepEqual(log.receive([h1], false).applied.map((op) => op.id), [h1.id, h2.id]);
  // The evicted operation is not held: sent again, it is accepted as new (pending again).
  assert.deepEqual(log.receive([evicted], false).statuses, ["pending"]);
});

Deno.test("an operation parked and evicted within one batch is reported dropped, not pending", () => {
  const f = new OpFactory();
  const [big, small] = [identity(55), identity(56)];
  const log = newLog({ pending: { maxCount: 4, maxPerAuthor: 3 } });
  const bigOps = f.chain(big, 4).slice(1); // 3 pending
  const smallOps = f.chain(small, 3).slice(1); // 2 more: the second evicts one of big's
  const result = log.receive([...bigOps, ...smallOps], false);
  assert.deepEqual(result.statuses, ["pending", "pending", "dropped", "pending", "pending"]);
  assert.deepEqual(result.dropped.map((op) => op.id), [bigOps[2].id]);
});
