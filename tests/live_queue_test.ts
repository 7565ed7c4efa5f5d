/** A session's live queue: what it keeps, and the arrays peers given the same operations share. */
import assert from "node:assert/strict";
import { Replica } from "../crdt/replica.ts";
import { LiveQueue, mergeChunks } from "../sync/live_queue.ts";
import { SyncSession } from "../sync/session.ts";
import { identity, OpFactory } from "./helpers.ts";

const me = identity(5);
const factory = new OpFactory();
const op = (value: number) => factory.next(me, { type: "append", path: ["n"], value });
const all = () => true;

Deno.test("queues that were given the same arrays take one shared array, in order", () => {
  const first = [op(1)];
  const second = [op(2), op(3)];
  const queues = [new LiveQueue(), new LiveQueue()];
  for (const queue of queues) {
    queue.push(first, all);
    queue.push(second, all);
  }
  assert.equal(queues[0].length, 3);
  const [a, b] = queues.map((queue) => queue.take(10).ops);
  assert.equal(a, b, "one array for both");
  assert.deepEqual(a.map((o) => o.seq), [1, 2, 3]);
  assert.equal(queues[0].length, 0);
  assert.equal(queues[0].bytes, 0);
  assert.equal(queues[0].lastSend, 10);
});

Deno.test("a queue given one array takes that array; a filtered one takes its own", () => {
  const batch = [op(4), op(5)];
  const whole = new LiveQueue();
  whole.push(batch, all);
  assert.equal(whole.take(0).ops, batch);
  const filtered = new LiveQueue();
  filtered.push(batch, (o) => o.seq !== 4);
  const taken = filtered.take(0).ops;
  assert.notEqual(taken, batch);
  assert.deepEqual(taken.map((o) => o.seq), [5]);
  const none = new LiveQueue();
  none.push(batch, () => false);
  assert.equal(none.length, 0, "nothing wanted: nothing queued");
});

Deno.test("different chunks, or the same in another order, are not merged into one array", () => {
  const x = [op(6)];
  const y = [op(7)];
  const xy = mergeChunks([x, y]);
  assert.equal(mergeChunks([x, y]), xy);
  assert.notEqual(mergeChunks([y, x]), xy);
  assert.deepEqual(mergeChunks([y, x]).map((o) => o.seq), [7, 6]);
  assert.notEqual(mergeChunks([[op(8)], y]), xy);
  assert.deepEqual(mergeChunks([]), []);
});

Deno.test("peers that batched the same live operations send the same frame", () => {
  const replica = Replica.open({ identity: me });
  const peers = [0, 1].map(() =>
    new SyncSession({
      replica,
      peer: identity(98).nodeId,
      direction: "outbound",
      now: 0,
      pingIntervalMs: 0,
      pongTimeoutMs: 0,
    })
  );
  for (const s of peers) {
    s.start(0);
    s.receive(JSON.stringify({ type: "clock", clock: {} }), 0);
    s.tick(0, 0);
    s.receive('{"type":"ready"}', 0);
  }
  const sent = [op(9)];
  const first = [op(10)];
  const second = [op(11)];
  for (const s of peers) {
    assert.equal(s.enqueue(sent, 1, 0).frames.length, 1, "idle: at once");
    assert.deepEqual(s.enqueue(first, 1, 5000).frames, [], "a frame buffered: batch");
    assert.deepEqual(s.enqueue(second, 1, 5000).frames, []);
  }
  const [a, b] = peers.map((s) => s.tick(2, 0).frames);
  assert.equal(a.length, 1);
  assert.equal(a[0], b[0]);
  const ops = (JSON.parse(a[0] as string).ops as { seq: number }[]).map((o) => o.seq);
  assert.deepEqual(ops, [10, 11]);
});
