/** The pure sync session: outputs, explicit state, catch-up cursor, wake-up times. */
import assert from "node:assert/strict";
import { Replica } from "../crdt/replica.ts";
import { CloseCode } from "../protocol/close_codes.ts";
import { SyncSession } from "../sync/session.ts";
import type { SessionOutput } from "../sync/session_types.ts";
import { identity, OpFactory } from "./helpers.ts";

function parse(frame: string | Uint8Array): Record<string, unknown> {
  return JSON.parse(typeof frame === "string" ? frame : new TextDecoder().decode(frame));
}

function types(output: SessionOutput): string[] {
  return output.frames.map((f) => (typeof f === "string" ? String(parse(f).type) : "live"));
}

/** The phase, read through a function so assertions do not narrow it. */
function phaseOf(s: SyncSession): string {
  return s.state.phase;
}

function session(
  replica: Replica,
  options: Partial<ConstructorParameters<typeof SyncSession>[0]> = {},
) {
  return new SyncSession({
    replica,
    peer: identity(99).nodeId,
    direction: "outbound",
    now: 1000,
    ...options,
  });
}

Deno.test("a session walks awaiting-clock, catching-up, awaiting-ready, live as frames come", () => {
  const replica = Replica.open({ identity: identity(1) });
  replica.commit([{ type: "update", path: ["items", "a"], fields: { stage: "qa" } }]);
  const s = session(replica, { pingIntervalMs: 0, pongTimeoutMs: 0 });
  const start = s.start(1000);
  assert.deepEqual(types(start), ["clock"]);
  assert.equal(start.wakeAt, undefined, "nothing to do until the peer speaks");
  assert.equal(phaseOf(s), "awaiting-clock");

  const onClock = s.receive(JSON.stringify({ type: "clock", clock: {} }), 1001);
  assert.deepEqual(onClock.frames, [], "receive only moves the state; tick sends");
  assert.equal(phaseOf(s), "catching-up");
  assert.equal(onClock.wakeAt, 1001);

  const sent = s.tick(1001, 0);
  assert.deepEqual(types(sent), ["bulk", "ready"]);
  assert.equal(phaseOf(s), "awaiting-ready");

  const ready = s.receive('{"type":"ready"}', 1005);
  assert.equal(phaseOf(s), "live");
  assert.deepEqual(ready.events.map((e) => e.type), ["caught-up", "live"]);
  const caught = ready.events[0];
  assert.ok(caught.type === "caught-up" && caught.durationMs === 5 && caught.operations === 0);
  assert.equal(s.stats().liveAt, 1005);
});

Deno.test("catch-up is a cursor: it sends while the transport has room and waits for the drain", () => {
  const replica = Replica.open({ identity: identity(2) });
  replica.receive(new OpFactory().chain(identity(3), 400), { amortise: true });
  const limit = 16 * 1024;
  const s = session(replica, {
    maxFrameBytes: limit,
    maxOutboundBytes: 4 * limit,
    pingIntervalMs: 0,
    pongTimeoutMs: 0,
  });
  s.start(0);
  s.receive(JSON.stringify({ type: "clock", clock: {} }), 0);
  // The transport still holds more than half the outbound limit: nothing is sent, look again soon.
  const blocked = s.tick(1, 3 * limit);
  assert.deepEqual(blocked.frames, []);
  assert.ok(blocked.wakeAt !== undefined && blocked.wakeAt > 1, "waits for the drain");
  let frames = 0;
  let ops = 0;
  let now = 2;
  while (phaseOf(s) === "catching-up") {
    const out = s.tick(now++, 0);
    assert.ok(out.frames.length > 0);
    // Each call stops once what it sent would fill the budget (half the outbound limit).
    const bytes = out.frames.reduce((n, f) => n + (f as string).length, 0);
    assert.ok(bytes <= 2 * limit + limit, `sent ${bytes} bytes in one call`);
    for (const frame of out.frames) {
      const parsed = parse(frame);
      if (parsed.type === "bulk") (frames++, ops += (parsed.ops as unknown[]).length);
    }
  }
  assert.equal(ops, 400);
  assert.ok(frames > 4, `only ${frames} frames`);
});

Deno.test("live operations batch while frames are buffered: they wait for the drain or the window", () => {
  const me = identity(4);
  const replica = Replica.open({ identity: me });
  const s = session(replica, { liveBatchMs: 10, pingIntervalMs: 0, pongTimeoutMs: 0 });
  s.start(0);
  s.receive(JSON.stringify({ type: "clock", clock: {} }), 0);
  s.tick(0, 0);
  s.receive('{"type":"ready"}', 0);
  const factory = new OpFactory();
  const op = (value: number) => factory.next(me, { type: "append", path: ["n"], value });
  // An idle session hands it to the transport at once, without waiting on a timer.
  assert.deepEqual(types(s.enqueue([op(1)], 100, 0)), ["live"], "an idle session sends at once");
  const waiting = s.enqueue([op(2)], 103, 5000);
  assert.deepEqual(waiting.frames, [], "the previous frame is still buffered: wait");
  assert.ok(waiting.wakeAt! > 103 && waiting.wakeAt! <= 110, "look again soon, within the window");
  s.enqueue([op(3)], 104, 5000);
  assert.deepEqual(s.tick(105, 5000).frames, [], "still buffered, window not over: not yet");
  const drained = s.tick(105, 0);
  assert.deepEqual(types(drained), ["bulk"], "drained: what queued goes out together");
  assert.equal((parse(drained.frames[0]).ops as unknown[]).length, 2);
  s.enqueue([op(4)], 106, 5000);
  s.enqueue([op(5)], 107, 5000);
  assert.deepEqual(s.tick(114, 5000).frames, [], "buffered, window from 105 not over");
  assert.deepEqual(types(s.tick(115, 5000)), ["bulk"], "the window has passed: send anyway");
  assert.deepEqual(types(s.enqueue([op(6)], 116, 0)), ["live"], "nothing buffered: at once");
  assert.deepEqual(
    types(s.enqueue([op(7)], 116, 1200)),
    ["live"],
    "a few frames buffered: at once",
  );
});

Deno.test("a paced session sends once per pace: what comes meanwhile shares the next frame", () => {
  const me = identity(4);
  const replica = Replica.open({ identity: me });
  let paceMs = 4;
  const s = session(replica, { paceMs: () => paceMs, pingIntervalMs: 0, pongTimeoutMs: 0 });
  s.start(0);
  s.receive(JSON.stringify({ type: "clock", clock: {} }), 0);
  s.tick(0, 0);
  s.receive('{"type":"ready"}', 0);
  const factory = new OpFactory();
  const ops = [1, 2, 3, 4, 5].map((value) =>
    factory.next(me, { type: "append", path: ["n"], value })
  );
  const op = (value: number) => ops[value - 1];
  assert.deepEqual(
    types(s.enqueue([op(1)], 100, 0)),
    ["live"],
    "the first after a quiet pace: at once",
  );
  assert.equal(s.queueBehind([op(2)]), false, "nothing is queued: the caller must enqueue");
  const held = s.enqueue([op(2)], 101, 0);
  assert.deepEqual(held.frames, [], "within the pace of the last send: wait");
  assert.equal(held.wakeAt, 104, "until the pace since the last send has passed");
  assert.equal(s.queueBehind([op(3)]), true, "behind a send already due: only queued");
  assert.deepEqual(s.tick(103, 0).frames, []);
  const paced = s.tick(104, 0);
  assert.deepEqual(types(paced), ["bulk"]);
  const sent = (parse(paced.frames[0]).ops as { id: string }[]).map((o) => o.id);
  assert.deepEqual(sent, [op(2).id, op(3).id], "both, in one frame");
  assert.deepEqual(types(s.enqueue([op(4)], 108, 0)), ["live"], "a pace later: at once");
  paceMs = 0;
  assert.deepEqual(types(s.enqueue([op(5)], 108, 0)), ["live"], "pace 0: at once again");
});

Deno.test("a paced session sends at once when its queue reaches the watermark", () => {
  const me = identity(4);
  const replica = Replica.open({ identity: me });
  const s = session(replica, { paceMs: () => 8, pingIntervalMs: 0, pongTimeoutMs: 0 });
  s.start(0);
  s.receive(JSON.stringify({ type: "clock", clock: {} }), 0);
  s.tick(0, 0);
  s.receive('{"type":"ready"}', 0);
  const factory = new OpFactory();
  const big = () => factory.next(me, { type: "append", path: ["n"], value: "x".repeat(25_000) });
  s.enqueue([big()], 100, 0);
  assert.deepEqual(s.enqueue([big()], 101, 0).frames, [], "paced");
  assert.equal(s.queueBehind([big()]), true, "50 KB queued: still under the watermark");
  const last = big();
  assert.equal(s.queueBehind([last]), false, "this one would reach it: not queued here");
  const out = s.enqueue([last], 101, 0);
  assert.deepEqual(types(out), ["bulk"], "the watermark overrides the pace");
  assert.equal((parse(out.frames[0]).ops as unknown[]).length, 3);
});

Deno.test("peers given the same batch send the same frames, counted at their UTF-8 size", () => {
  const me = identity(4);
  const replica = Replica.open({ identity: me });
  const peers = [0, 1].map(() => session(replica, { pingIntervalMs: 0, pongTimeoutMs: 0 }));
  for (const s of peers) {
    s.start(0);
    s.receive(JSON.stringify({ type: "clock", clock: {} }), 0);
    s.tick(0, 0);
    s.receive('{"type":"ready"}', 0);
  }
  const before = peers[0].stats().bytesOut;
  const factory = new OpFactory();
  const one = [factory.next(me, { type: "append", path: ["n"], value: 1 })];
  const [a, b] = peers.map((s) => s.enqueue(one, 1, 0).frames);
  assert.ok(a[0] instanceof Uint8Array && a[0] === b[0], "one binary frame, shared");
  const two = [2, "é ☃ 🐺"].map((value) =>
    factory.next(me, { type: "append", path: ["n"], value })
  );
  const [c, d] = peers.map((s) => s.enqueue(two, 2, 0).frames);
  assert.equal(typeof c[0], "string");
  assert.equal(c[0], d[0]);
  assert.deepEqual((parse(c[0]).ops as { seq: number }[]).map((o) => o.seq), [2, 3]);
  assert.equal(peers[1].stats().bytesOut, peers[0].stats().bytesOut);
  const sent = [...a, ...c].reduce(
    (sum, f) => sum + (typeof f === "string" ? new TextEncoder().encode(f).length : f.length),
    0,
  );
  assert.equal(peers[0].stats().bytesOut - before, sent, "sizes from the encoder are UTF-8 sizes");
});

Deno.test("keepalive is wake-up times: ping every interval, close after the silence timeout", () => {
  const replica = Replica.open({ identity: identity(5) });
  const s = session(replica, { pingIntervalMs: 100, pongTimeoutMs: 250, now: 0 });
  const start = s.start(0);
  assert.equal(start.wakeAt, 100);
  assert.deepEqual(types(s.tick(100, 0)), ["ping"]);
  s.receive('{"type":"pong"}', 120);
  assert.equal(s.tick(200, 0).frames.length, 1);
  const out = s.tick(371, 0);
  assert.deepEqual(out.close, { code: CloseCode.KEEPALIVE_TIMEOUT, reason: "keepalive timeout" });
  assert.deepEqual(s.state, {
    phase: "closed",
    code: CloseCode.KEEPALIVE_TIMEOUT,
    reason: "keepalive timeout",
  });
  assert.equal(out.wakeAt, undefined, "a closed session needs no wake-up");
});

Deno.test("a session reports refused operations per author and never throws on bad frames", () => {
  const me = identity(6);
  const replica = Replica.open({ identity: me, mayAuthor: (a) => a === me.nodeId });
  const s = session(replica, { direction: "inbound" });
  s.start(0);
  const stranger = identity(7);
  const ops = new OpFactory().chain(stranger, 3);
  const out = s.receive(JSON.stringify({ type: "bulk", ops }), 1);
  const refused = out.events.find((e) => e.type === "refused");
  assert.ok(refused && refused.type === "refused");
  assert.equal(refused.unauthorized, 3);
  assert.deepEqual(refused.byAuthor, { [stranger.nodeId]: { invalid: 0, unauthorized: 3 } });
  const bad = s.receive("{not json", 2);
  assert.equal(bad.close?.code, CloseCode.PROTOCOL_ERROR);
  assert.equal(s.isClosed, true);
  assert.deepEqual(s.receive('{"type":"ping"}', 3).frames, [], "a closed session sends nothing");
});

Deno.test("both sides send a heartbeat carrying their clock; status shows the peer's latest", () => {
  const me = identity(8);
  const replica = Replica.open({ identity: me });
  replica.commit([{ type: "update", path: ["items", "a"], fields: { stage: "qa" } }]);
  const s = session(replica, { direction: "inbound", now: 0 });
  s.start(0);
  assert.equal(s.stats().clockLag, replica.size, "the peer has said nothing yet");
  s.receive(JSON.stringify({ type: "clock", clock: {} }), 10);
  s.tick(10, 0);
  s.receive('{"type":"ready"}', 20);
  assert.equal(s.stats().clockLag, replica.size, "its clock, not what we sent, counts");
  const heartbeat = s.tick(5_000, 0);
  assert.deepEqual(heartbeat.frames.map(parse), [{ type: "ping", clock: replica.clock() }]);
  const pong = s.receive(JSON.stringify({ type: "ping", clock: replica.clock() }), 5_100);
  assert.deepEqual(types(pong), ["pong"]);
  const stats = s.stats();
  assert.equal(stats.clockLag, 0);
  assert.equal(stats.lastHeardAt, 5_100);
  assert.equal(stats.peerClockAt, 5_100);
  // An inbound session drops a silent peer too (default: 15 s of silence).
  assert.equal(s.tick(20_101, 0).close?.code, CloseCode.KEEPALIVE_TIMEOUT);
});
