import assert from "node:assert/strict";
import { CrdtDocument } from "../crdt/document.ts";
import type { Operation } from "../crdt/operation.ts";
import { signOperation } from "../crdt/operation.ts";
import { LOCAL_ORIGIN, Replica } from "../crdt/replica.ts";
import { SqliteStore } from "../crdt/sqlite_store.ts";
import { type ForkProof, MemoryStore } from "../crdt/store.ts";
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

Deno.test("replica whose own key forked keeps signing, into quarantine", () => {
  const me = identity(8);
  const replica = Replica.open({ identity: me });
  const [mine] = replica.commit([setField("s1", "stage", "coding")]);
  const twin = signOperation({ ...mine, mutation: setField("s1", "stage", "qa") }, me);
  assert.deepEqual(replica.receive([twin]).statuses, ["fork"]);
  const hash = replica.stateHash();
  assert.equal(hash, new CrdtDocument().stateHash());
  const quarantined: Operation[] = [];
  replica.onQuarantined((ops, origin) => {
    assert.equal(origin, LOCAL_ORIGIN);
    quarantined.push(...ops);
  });
  // The same change twice makes two different operations on its own line.
  const first = replica.commit([setField("s2", "stage", "qa")]);
  const second = replica.commit([setField("s2", "stage", "qa")]);
  assert.notEqual(first[0].id, second[0].id);
  assert.equal(second[0].prev, first[0].id);
  for (const op of [...first, ...second]) assert.ok(replica.isQuarantined(op.id));
  assert.deepEqual(quarantined.map((op) => op.id), [first[0].id, second[0].id]);
  assert.equal(replica.stateHash(), hash);
  assert.deepEqual(replica.clock(), {});
});

/** A MemoryStore whose next append fails once. */
class FailOnceStore extends MemoryStore {
  fail = false;
  override append(ops: readonly Operation[]): void {
    if (this.fail && ops.length > 0) {
      this.fail = false;
      throw new Error("disk full");
    }
    super.append(ops);
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
