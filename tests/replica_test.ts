import assert from "node:assert/strict";
import { CrdtDocument } from "../crdt/document.ts";
import type { Operation } from "../crdt/operation.ts";
import { signOperation } from "../crdt/operation.ts";
import { Replica } from "../crdt/replica.ts";
import { WriteRefusedError } from "../crdt/write_guard.ts";
import { SqliteStore } from "../crdt/sqlite_store.ts";
import { type AppendOptions, type ForkProof, MemoryStore } from "../crdt/store.ts";
import { identity, OpFactory, setField } from "./helpers.ts";

/**
 * Author X's agreed operation x1, then two branches from seq 2 (two copies of
 * X's key): a2, a3 and b2, b3, and an honest operation made on top of each
 * branch before anyone saw the fork.
 */
function forkScenario() {
  const x = identity(5);
  const fa = new OpFactory();
  const fb = new OpFactory();
  const x1 = fa.next(x, setField("s1", "stage", "coding"));
  fb.next(x, setField("s1", "stage", "coding")); // the same x1: same fields, same time
  const a2 = fa.next(x, setField("s1", "agent", "copy-a"));
  const a3 = fa.next(x, { type: "append", path: ["notes"], value: "from copy a" });
  const b2 = fb.next(x, setField("s1", "agent", "copy-b"));
  const b3 = fb.next(x, { type: "remove", path: ["items", "s1"] });
  const onA = fa.next(identity(6), setField("s2", "stage", "qa"), [a3.id]);
  const onB = fb.next(identity(7), setField("s3", "stage", "done"), [b3.id]);
  return {
    x,
    x1,
    a2,
    a3,
    b2,
    b3,
    onA,
    onB,
    branchA: [x1, a2, a3, onA],
    branchB: [x1, b2, b3, onB],
  };
}

/** A copy of a store's operations and fork proofs, as a restarted node finds its disk. */
function copyStore(store: MemoryStore): MemoryStore {
  const copy = new MemoryStore();
  copy.append([...store.load()]);
  for (const proof of store.loadForks()) copy.saveFork(proof);
  const head = store.loadOwnHead();
  if (head) copy.append([], { ownHead: head });
  return copy;
}

/** The state hash of a document with exactly these operations. */
function hashOf(ops: readonly Operation[]): string {
  const document = new CrdtDocument();
  for (const op of ops) document.apply(op);
  return document.stateHash();
}

Deno.test("replica document leaves out a forked author's operations from the fork point, whichever branch came first", () => {
  const { x, x1, onA, onB, branchA, branchB } = forkScenario();
  const first = Replica.open({ identity: identity(1) });
  const second = Replica.open({ identity: identity(2) });
  first.receive(branchA);
  first.receive(branchB);
  second.receive(branchB);
  second.receive(branchA);
  for (const replica of [first, second]) {
    assert.ok(replica.isForked(x.nodeId));
    assert.equal(replica.forkPoint(x.nodeId), 2);
    // Clock for X: the fork point - 1. Honest operations on both branches applied.
    assert.deepEqual(replica.clock(), {
      [x.nodeId]: 1,
      [onA.author]: 1,
      [onB.author]: 1,
    });
    assert.equal(replica.quarantined().length, 4);
    assert.equal(replica.pendingSize().count, 0);
    // Only x1 of X's operations shows: no agent, no note, s1 not removed.
    assert.deepEqual(replica.document.get(["items", "s1"]), { stage: "coding" });
    assert.equal(replica.document.get(["notes"]), undefined);
    assert.equal(replica.document.get(["items", "s2", "stage"]), "qa");
    assert.equal(replica.document.get(["items", "s3", "stage"]), "done");
  }
  assert.equal(first.stateHash(), second.stateHash());
  assert.equal(first.stateHash(), hashOf([x1, onA, onB]));
  // A local change made now does not depend on anything quarantined.
  const [local] = first.commit([setField("s4", "stage", "qa")]);
  for (const dep of local.deps) assert.equal(first.isQuarantined(dep), false);
  assert.deepEqual(second.receive([local]).statuses, ["applied"]);
  assert.equal(first.stateHash(), second.stateHash());
});

Deno.test("replica reopened from its store reproduces the quarantine and the state", () => {
  const { x, branchA, branchB } = forkScenario();
  const store = new MemoryStore();
  const replica = Replica.open({ identity: identity(1), store });
  replica.receive(branchA);
  replica.receive(branchB);
  replica.commit([setField("s9", "stage", "qa")]);
  const reopened = Replica.open({ identity: identity(1), store: copyStore(store) });
  assert.equal(reopened.stateHash(), replica.stateHash());
  assert.deepEqual(reopened.clock(), replica.clock());
  assert.deepEqual(reopened.forks(), replica.forks());
  assert.equal(reopened.forkPoint(x.nodeId), 2);
  assert.deepEqual(
    new Set(reopened.quarantined().map((op) => op.id)),
    new Set(replica.quarantined().map((op) => op.id)),
  );
  assert.deepEqual(
    reopened.operations().map((op) => op.id),
    replica.operations().map((op) => op.id),
  );
  assert.equal(reopened.pendingSize().count, 0);
});

Deno.test("replica reopened finds a lower fork point again though the store kept the first proof", () => {
  const { x, x1, a2, a3, b2, b3, onA } = forkScenario();
  const rival = signOperation({ ...x1, mutation: setField("s1", "stage", "rival") }, x);
  const store = new MemoryStore();
  const replica = Replica.open({ identity: identity(1), store });
  replica.receive([x1, a2, a3, onA]);
  // A peer proves the fork at seq 2; later a rival of x1 proves one at seq 1.
  assert.ok(replica.addForkProof({ author: x.nodeId, seq: 2, a: a2, b: b2 }));
  assert.ok(replica.addForkProof({ author: x.nodeId, seq: 1, a: x1, b: rival }));
  assert.equal(replica.forkPoint(x.nodeId), 1);
  assert.deepEqual(store.loadForks().map((proof: ForkProof) => proof.seq), [2]);
  replica.receive([b3]);
  const reopened = Replica.open({ identity: identity(1), store: copyStore(store) });
  assert.equal(reopened.forkPoint(x.nodeId), 1);
  assert.equal(reopened.stateHash(), replica.stateHash());
  assert.equal(reopened.stateHash(), hashOf([onA]));
  assert.deepEqual(reopened.clock(), replica.clock());
  assert.equal(reopened.quarantined().length, replica.quarantined().length);
});

Deno.test("replica reopened from a store with an out-of-order operation and no fork fails naming it", () => {
  const ops = new OpFactory().chain(identity(3), 3);
  const store = new MemoryStore();
  store.append([ops[0], ops[2]]);
  assert.throws(
    () => Replica.open({ identity: identity(1), store }),
    /stored operation #2 is out of order/,
  );
});

Deno.test("replica tells listeners of newly quarantined operations, after the last agreed one", () => {
  const { x1, a2, a3, b2, b3 } = forkScenario();
  const replica = Replica.open({ identity: identity(1) });
  const seen: string[][] = [];
  const forks: number[] = [];
  replica.onQuarantined((ops) => seen.push(ops.map((op) => op.id)));
  replica.onFork((proof) => forks.push(proof.seq));
  replica.receive([x1, a2, a3]);
  replica.receive([b2]);
  assert.deepEqual(forks, [2]);
  // a2, a3 moved out of the chain, b2 arrived: x1 first, so a peer can place them.
  assert.deepEqual(seen, [[x1.id, a2.id, a3.id, b2.id]]);
  replica.receive([b3]);
  assert.deepEqual(seen[1], [x1.id, b3.id]);
  assert.deepEqual(replica.quarantineToSend()[0].id, x1.id);
});

Deno.test("replica whose own key forked refuses every write, before and after a restart, leaving no trace", () => {
  const me = identity(8);
  const store = new MemoryStore();
  const replica = Replica.open({ identity: me, store });
  const [mine] = replica.commit([setField("s1", "stage", "coding")]);
  const twin = signOperation({ ...mine, mutation: setField("s1", "stage", "qa") }, me);
  assert.deepEqual(replica.receive([twin]).statuses, ["fork"]);
  const hash = replica.stateHash();
  const stored = store.count();
  let notified = 0;
  replica.onApplied(() => notified++);
  replica.onQuarantined(() => notified++);
  const refused = (r: Replica) => refusedBy(() => r.commit([setField("s2", "stage", "qa")]));
  const error = refused(replica);
  assert.equal(error.reason, "own-key-forked");
  assert.equal(error.retryable, false);
  assert.match(error.message, /^Cannot commit: this node's own key is forked .* seq 1/);
  assert.match(error.message, /keys create --force/);
  assert.equal(store.count(), stored);
  assert.equal(replica.stateHash(), hash);
  assert.equal(notified, 0);
  assert.equal(replica.writeGate.state().canWrite, false);
  // After a restart on the same store: still refused, never acknowledged into quarantine.
  const disk = copyStore(store);
  replica.close();
  const restarted = Replica.open({ identity: me, store: disk });
  assert.equal(refused(restarted).reason, "own-key-forked");
});

/** The WriteRefusedError `write` throws (fails the test when it throws none). */
function refusedBy(write: () => unknown): WriteRefusedError {
  try {
    write();
  } catch (error) {
    if (error instanceof WriteRefusedError) return error;
    throw error;
  }
  throw new assert.AssertionError({ message: "the write was not refused" });
}

/** A store holding `original`'s first `keep` operations but its own-head record: a lost tail. */
function lostTail(original: MemoryStore, keep: number): MemoryStore {
  const copy = new MemoryStore();
  copy.append([...original.load()].slice(0, keep));
  const head = original.loadOwnHead();
  if (head) copy.append([], { ownHead: head });
  return copy;
}

Deno.test("replica that lost its own recent operations refuses to sign until peers send them back", () => {
  const me = identity(9);
  const store = new MemoryStore();
  const original = Replica.open({ identity: me, store });
  for (let i = 0; i < 5; i++) original.commit([setField("s1", "n", i)]);
  assert.equal(store.loadOwnHead()?.seq, 5);
  const lost = Replica.open({ identity: me, store: lostTail(store, 3) });
  assert.deepEqual(lost.writeGate.state().lostHistory, { recorded: 5, held: 3 });
  const error = refusedBy(() => lost.commit([setField("s9", "stage", "qa")]));
  assert.equal(error.reason, "lost-history");
  assert.match(
    error.message,
    /holds 3 of its own operations but its durable record says it signed 5/,
  );
  assert.match(error.message, /--accept-lost-history/);
  // A peer sends the missing operations back: writes continue the chain, no fork.
  lost.receive(original.opsSince(lost.clock()));
  assert.equal(lost.writeGate.state().lostHistory, null);
  const [next] = lost.commit([setField("s9", "stage", "qa")]);
  assert.equal(next.seq, 6);
  // An operator who restored on purpose accepts the loss: signing continues from what is held.
  const accepted = Replica.open({
    identity: me,
    store: lostTail(store, 3),
    acceptLostHistory: true,
  });
  assert.equal(accepted.writeGate.state().canWrite, true);
  assert.equal(accepted.commit([setField("s9", "stage", "qa")])[0].seq, 4);
});

Deno.test("replica on SQLite notices an older ops.db restored from a backup", async () => {
  const dir = await Deno.makeTempDir({ prefix: "huskies-replica-" });
  try {
    const me = identity(10);
    const path = `${dir}/ops.db`;
    let replica = Replica.open({ identity: me, store: SqliteStore.open(path) });
    replica.commit([setField("s1", "stage", "coding")]);
    replica.commit([setField("s1", "stage", "qa")]);
    replica.close();
    await Deno.copyFile(path, `${dir}/backup.db`);
    replica = Replica.open({ identity: me, store: SqliteStore.open(path) });
    for (let i = 0; i < 3; i++) replica.commit([setField("s2", "n", i)]);
    replica.close();
    await Deno.copyFile(`${dir}/backup.db`, path); // the restore
    replica = Replica.open({ identity: me, store: SqliteStore.open(path) });
    try {
      assert.deepEqual(replica.writeGate.state().lostHistory, { recorded: 5, held: 2 });
      assert.throws(() => replica.commit([setField("s3", "stage", "qa")]), /lost|restored/);
    } finally {
      replica.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a peer's claim about our own operations blocks writes only until it is shown empty or expires", () => {
  let now = 1_000;
  const replica = Replica.open({ identity: identity(11), now: () => now, claimTimeoutMs: 5_000 });
  const write = () => replica.commit([setField("s1", "n", now)]);
  const refusal = () => {
    try {
      write();
      return undefined;
    } catch (error) {
      if (!(error instanceof WriteRefusedError)) throw error;
      return error;
    }
  };
  // The attack: a read-scope peer claims a huge count and goes away.
  replica.notePeerClock({ [replica.nodeId]: Number.MAX_SAFE_INTEGER }, "attacker");
  const blocked = refusal();
  assert.equal(blocked?.reason, "peer-claim");
  assert.equal(blocked?.retryable, true);
  assert.match(blocked!.message, /own operations/);
  // It finished its catch-up to us without sending them: the claim was empty.
  replica.notePeerCaughtUp("attacker");
  assert.equal(refusal(), undefined);
  // Claiming again does not block: that peer is not believed for a while.
  replica.notePeerClock({ [replica.nodeId]: Number.MAX_SAFE_INTEGER }, "attacker");
  assert.equal(refusal(), undefined);
  // A claim that is never resolved blocks at most claimTimeoutMs, however often it is repeated.
  replica.notePeerClock({ [replica.nodeId]: 99 }, "silent");
  assert.equal(refusal()?.reason, "peer-claim");
  now += 4_000;
  replica.notePeerClock({ [replica.nodeId]: 100 }, "silent");
  assert.equal(refusal()?.reason, "peer-claim");
  now += 1_001;
  assert.equal(refusal(), undefined);
  replica.notePeerClock({ [replica.nodeId]: 200 }, "silent");
  assert.equal(refusal(), undefined);
});

Deno.test("a restored replica waits for a peer's claimed operations, then continues its chain", () => {
  const me = identity(12);
  const original = Replica.open({ identity: me });
  for (let i = 0; i < 3; i++) original.commit([setField("s1", "n", i)]);
  const restored = Replica.open({ identity: me }); // key restored, store empty
  restored.notePeerClock(original.clock(), "hub");
  assert.throws(() => restored.commit([setField("s2", "n", 1)]), /3 of this node's own operations/);
  restored.receive(original.opsSince({}));
  assert.equal(restored.commit([setField("s2", "n", 1)])[0].seq, 4);
});

Deno.test("a validly signed own operation from a peer is evidence: no signing until the ones before it arrive", () => {
  const me = identity(13);
  const original = Replica.open({ identity: me });
  for (let i = 0; i < 4; i++) original.commit([setField("s1", "n", i)]);
  const ops = original.opsSince({});
  const restored = Replica.open({ identity: me });
  assert.deepEqual(restored.receive([ops[3]]).statuses, ["pending"]);
  restored.notePeerCaughtUp("hub"); // no claim can clear evidence
  const error = refusedBy(() => restored.commit([setField("s2", "n", 1)]));
  assert.equal(error.reason, "own-evidence");
  restored.receive(ops.slice(0, 3));
  assert.equal(restored.commit([setField("s2", "n", 1)])[0].seq, 5);
});

Deno.test("a replica with a start-up grace signs only after a catch-up round or the grace", () => {
  let now = 0;
  const starting = () =>
    Replica.open({ identity: identity(14), startupGraceMs: 3_000, now: () => now });
  const a = starting();
  assert.equal(a.writeGate.state().starting, true);
  assert.equal(refusedBy(() => a.commit([setField("s", "n", 1)])).reason, "starting");
  a.notePeerCaughtUp("hub");
  assert.equal(a.commit([setField("s", "n", 1)]).length, 1);
  const b = starting();
  b.writeGate.startupComplete();
  assert.equal(b.commit([setField("s", "n", 1)]).length, 1);
  const c = starting();
  now = 3_000;
  assert.equal(c.commit([setField("s", "n", 1)]).length, 1);
});

Deno.test("commit returns only once the operation is applied and stored; a failed store write leaves no trace", () => {
  const store = new FailOnceStore();
  const replica = Replica.open({ identity: identity(15), store });
  const [first] = replica.commit([setField("s1", "stage", "qa")]);
  assert.equal(store.count(), 1);
  assert.ok(replica.getOperation(first.id));
  assert.equal(replica.document.get(["items", "s1", "stage"]), "qa");
  store.fail = true;
  assert.throws(() => replica.commit([setField("s1", "stage", "done")]), /disk full/);
  assert.equal(replica.size, 1);
  assert.equal(store.count(), 1);
  assert.equal(replica.document.get(["items", "s1", "stage"]), "qa");
  const [second] = replica.commit([setField("s1", "stage", "done")]);
  assert.equal(second.seq, 2);
  assert.equal(second.prev, first.id);
});

/** A MemoryStore whose next append fails once. */
class FailOnceStore extends MemoryStore {
  fail = false;
  override append(ops: readonly Operation[], options?: AppendOptions): void {
    if (this.fail && ops.length > 0) {
      this.fail = false;
      throw new Error("disk full");
    }
    super.append(ops, options);
  }
}

Deno.test("replica is left as it was when storing a fork's operations fails", () => {
  const { x, branchA, b2, b3 } = forkScenario();
  const store = new FailOnceStore();
  const replica = Replica.open({ identity: identity(1), store });
  replica.receive(branchA);
  const hash = replica.stateHash();
  const clock = replica.clock();
  store.fail = true;
  assert.throws(() => replica.receive([b2, b3]), /disk full/);
  assert.equal(replica.isForked(x.nodeId), false);
  assert.equal(replica.stateHash(), hash);
  assert.deepEqual(replica.clock(), clock);
  assert.equal(replica.quarantined().length, 0);
  assert.deepEqual(replica.receive([b2, b3]).statuses, ["fork", "forked-author"]);
  assert.ok(replica.isForked(x.nodeId));
  const reopened = Replica.open({ identity: identity(1), store: copyStore(store) });
  assert.equal(reopened.stateHash(), replica.stateHash());
});

Deno.test("replica restarted on its SQLite file rebuilds state and clock and continues its own chain", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const me = identity(40);
    const path = `${dir}/ops.db`;
    const first = Replica.open({ identity: me, store: SqliteStore.open(path) });
    const peerOps = new OpFactory().chain(identity(41), 5);
    first.receive(peerOps, { amortise: true });
    const mine = first.commit([setField("s1", "stage", "qa"), setField("s2", "stage", "done")]);
    const hash = first.stateHash();
    const clock = first.clock();
    first.close();

    const second = Replica.open({ identity: me, store: SqliteStore.open(path) });
    try {
      assert.equal(second.stateHash(), hash);
      assert.deepEqual(second.clock(), clock);
      const [next] = second.commit([setField("s3", "stage", "merge")]);
      assert.equal(next.seq, 3, "a restarted node never reuses a position of its chain");
      assert.equal(next.prev, mine[1].id);
      assert.deepEqual(second.forks(), []);
    } finally {
      second.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
