import assert from "node:assert/strict";
import { encodeOperation, type Operation } from "../crdt/operation.ts";
import { ServerHandshake } from "../auth/handshake.ts";
import { CloseCode } from "../protocol/close_codes.ts";
import { MemoryLogger } from "../sync/logger.ts";
import { HuskiesNode } from "../sync/node.ts";
import { Replica } from "../crdt/replica.ts";
import { identity, OpFactory, setField } from "./helpers.ts";
import { eventually, RawPeer, serveNode } from "./net_helpers.ts";

const fastRetry = { initialMs: 20, maxMs: 200 };
/** Bound for waits on events that should come within moments on localhost. */
const SOON = { timeoutMs: 10_000 };

Deno.test("sync catches up in both directions and then streams live changes", async () => {
  const hub = await serveNode();
  const spoke = await HuskiesNode.open({ open: true });
  try {
    hub.node.pipeline.put("H-1", { stage: "coding" });
    spoke.pipeline.put("S-1", { stage: "qa" });
    spoke.connect(hub.url, fastRetry);
    await eventually(
      () => hub.node.pipeline.get("S-1") !== undefined && spoke.pipeline.get("H-1") !== undefined,
      "both items on both nodes",
    );
    hub.node.pipeline.move("S-1", "merge");
    await eventually(() => spoke.pipeline.get("S-1")?.stage === "merge", "live move on the spoke");
    assert.equal(hub.node.replica.stateHash(), spoke.replica.stateHash());
    assert.deepEqual(hub.node.replica.clock(), spoke.replica.clock());
  } finally {
    await spoke.close();
    await hub.stop();
  }
});

Deno.test("sync sends only the operations the peer lacks", async () => {
  const hub = await serveNode();
  const me = identity(7);
  const factory = new OpFactory();
  const ops = factory.chain(me, 10);
  hub.node.replica.receive(ops);
  const peer = await RawPeer.connect(hub.url, me);
  try {
    const clock = await peer.nextJson();
    assert.equal(clock.type, "clock");
    peer.send({ type: "clock", clock: { [me.nodeId]: 7 } });
    const bulk = await peer.nextJson();
    assert.equal(bulk.type, "bulk");
    assert.deepEqual((bulk.ops as Operation[]).map((op) => op.seq), [8, 9, 10]);
    assert.equal((await peer.nextJson()).type, "ready");
  } finally {
    await peer.close();
    await hub.stop();
  }
});

Deno.test("a legacy peer's bulk is applied and answered with a full bulk, without waiting for ready", async () => {
  const hub = await serveNode();
  hub.node.pipeline.put("H-1", { stage: "coding" });
  const legacy = identity(8);
  const ops = new OpFactory().chain(legacy, 3);
  const peer = await RawPeer.connect(hub.url, legacy);
  try {
    assert.equal((await peer.nextJson()).type, "clock"); // the hub speaks first; legacy ignores it
    peer.send({ type: "bulk", ops: ops.map(encodeOperation) }); // legacy: ops as JSON strings
    const answer = await peer.nextJson();
    assert.equal(answer.type, "bulk");
    const held = (answer.ops as string[]).map((text) => JSON.parse(text) as Operation);
    assert.equal(held.length, hub.node.replica.size);
    assert.equal(hub.node.replica.size, 5); // 2 hub ops (put + event) + 3 legacy ops
    // No `ready` is needed: a new local change streams to the legacy peer at once.
    hub.node.pipeline.move("H-1", "qa");
    const live = await peer.next();
    assert.ok(live instanceof Uint8Array || JSON.parse(live).type === "bulk");
    const text = typeof live === "string" ? live : new TextDecoder().decode(live);
    assert.match(text, /"stage":"qa"/, "the streamed frame carries the move");
  } finally {
    await peer.close();
    await hub.stop();
  }
});

Deno.test("operations created before the peer's ready are buffered, then flushed in order", async () => {
  const hub = await serveNode();
  const me = identity(9);
  const peer = await RawPeer.connect(hub.url, me);
  try {
    assert.equal((await peer.nextJson()).type, "clock");
    peer.send({ type: "clock", clock: {} });
    assert.equal((await peer.nextJson()).type, "ready"); // empty delta: just ready
    for (let i = 0; i < 5; i++) hub.node.pipeline.put(`S-${i}`, { stage: "coding" });
    // Give the hub a round trip (ping/pong) in which it could have sent anything it wanted to.
    peer.send({ type: "ping" });
    assert.equal((await peer.nextJson()).type, "pong", "nothing is streamed before our ready");
    const [session] = hub.node.sessions();
    assert.equal(session.stats().queuedOps, 10, "the 10 operations wait in the peer's queue");
    assert.equal(session.stats().opsOut, 0);
    peer.send({ type: "ready" });
    const received: Operation[] = [];
    while (received.length < 10) {
      const frame = await peer.next();
      if (typeof frame === "string") received.push(...(JSON.parse(frame).ops as Operation[]));
      else received.push(JSON.parse(new TextDecoder().decode(frame)).op);
    }
    assert.deepEqual(received.map((op) => op.seq), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  } finally {
    await peer.close();
    await hub.stop();
  }
});

Deno.test("a hub forwards each new operation to every other peer once and never echoes it", async () => {
  const hub = await serveNode();
  const spokes = await Promise.all([0, 1, 2].map(() => HuskiesNode.open({ open: true })));
  try {
    for (const spoke of spokes) spoke.connect(hub.url, fastRetry);
    await Promise.all(spokes.map((spoke) => hub.node.connected(spoke.nodeId, SOON)));
    spokes[0].pipeline.put("S-1", { stage: "coding", name: "from spoke 0" });
    await eventually(
      () => spokes.every((s) => s.pipeline.get("S-1")?.name === "from spoke 0"),
      "item on every spoke",
    );
    // A marker through the same links: once it arrives, any echo would have arrived before it.
    spokes[1].pipeline.put("S-2", {});
    await eventually(() => spokes[0].pipeline.get("S-2") !== undefined, "marker on spoke 0");
    const [origin] = spokes[0].sessions();
    assert.equal(origin.stats().opsIn, 2, "spoke 0 receives only the marker's 2 operations");
    for (const session of hub.node.sessions()) assert.ok(session.stats().opsOut <= 4);
  } finally {
    await Promise.all(spokes.map((s) => s.close()));
    await hub.stop();
  }
});

Deno.test("two nodes that name each other as rendezvous converge without echoing forever", async () => {
  const a = await serveNode();
  const b = await serveNode();
  try {
    a.node.connect(b.url, fastRetry);
    b.node.connect(a.url, fastRetry);
    await eventually(
      () => a.node.sessions().length === 2 && b.node.sessions().length === 2,
      "4 sessions",
    );
    for (let i = 0; i < 20; i++) a.node.pipeline.put(`A-${i}`, {});
    for (let i = 0; i < 20; i++) b.node.pipeline.put(`B-${i}`, {});
    await eventually(() => a.node.replica.size === 80 && b.node.replica.size === 80, "80 ops each");
    b.node.pipeline.put("marker", {});
    await eventually(() => a.node.pipeline.get("marker") !== undefined, "marker on a");
    assert.equal(a.node.replica.stateHash(), b.node.replica.stateHash());
    const sent = [...a.node.sessions(), ...b.node.sessions()].reduce(
      (n, s) => n + s.stats().opsOut,
      0,
    );
    // Each op crosses each of the two links once, towards the node that lacks it, and is
    // never sent back to the node it came from.
    assert.ok(sent <= 2 * 82, `sent ${sent} operations`);
  } finally {
    await a.stop();
    await b.stop();
  }
});

Deno.test("a spoke reconnects after the hub restarts and nothing is lost", async () => {
  const dataDir = await Deno.makeTempDir();
  let hub = await serveNode({ dataDir });
  const port = hub.port;
  const spoke = await HuskiesNode.open({ open: true });
  try {
    const client = spoke.connect(hub.url, fastRetry);
    spoke.pipeline.put("before", {});
    await eventually(() => hub.node.pipeline.get("before") !== undefined, "item before restart");
    await hub.stop();
    spoke.pipeline.put("during", {}); // written while the hub is down
    await eventually(() => client.info().state !== "connected", "client notices the restart");
    hub = await serveNode({ dataDir }, port);
    await eventually(
      () => hub.node.pipeline.get("during") !== undefined,
      "item written during downtime",
    );
    assert.ok(hub.node.pipeline.get("before"), "the hub kept what it had stored");
    assert.equal(hub.node.replica.stateHash(), spoke.replica.stateHash());
  } finally {
    await spoke.close();
    await hub.stop();
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("a peer that stops consuming is dropped while others keep receiving", async () => {
  const hub = await serveNode({ maxOutboundBytes: 64 * 1024 });
  const healthy = await HuskiesNode.open({ open: true });
  const stuck = await RawPeer.connect(hub.url, identity(11));
  try {
    healthy.connect(hub.url, fastRetry);
    await hub.node.connected(healthy.nodeId, SOON);
    assert.equal((await stuck.nextJson()).type, "clock");
    stuck.send({ type: "clock", clock: {} }); // ... and never sends `ready`
    for (let i = 0; i < 400; i++) hub.node.pipeline.put(`S-${i}`, { name: "x".repeat(200) });
    const closed = await stuck.closed;
    assert.equal(closed.code, CloseCode.SLOW_CONSUMER);
    await eventually(
      () => healthy.replica.size === hub.node.replica.size,
      "healthy spoke caught up",
    );
  } finally {
    await healthy.close();
    await stuck.close();
    await hub.stop();
  }
});

Deno.test("a silent hub is dropped by the client's keepalive, which then reconnects", async () => {
  // A fake hub that completes the real handshake and then never says anything again.
  const hubIdentity = identity(20);
  let accepted = 0;
  const sockets: WebSocket[] = [];
  const silent = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    // No challenge route: the spoke falls back to the in-band handshake.
    if (new URL(req.url).pathname !== "/crdt-sync") return new Response(null, { status: 404 });
    accepted++;
    const { socket, response } = Deno.upgradeWebSocket(req);
    sockets.push(socket);
    const handshake = new ServerHandshake({
      identity: hubIdentity,
      authorize: () => ({ ok: true, scope: "write" }),
    });
    socket.onopen = () => socket.send(handshake.start().send!);
    socket.onmessage = (event) => {
      const step = handshake.status === "done" ? {} : handshake.receive(event.data);
      if (step.send) socket.send(step.send);
    };
    return response;
  });
  const spoke = await HuskiesNode.open({ open: true, pingIntervalMs: 50, pongTimeoutMs: 300 });
  try {
    const client = spoke.connect(`ws://127.0.0.1:${silent.addr.port}/crdt-sync`, fastRetry);
    await eventually(() => client.info().state === "connected", "connected");
    await eventually(
      () => (client.info().lastError ?? "").includes(String(CloseCode.KEEPALIVE_TIMEOUT)),
      "keepalive timeout",
    );
    await eventually(() => accepted >= 2, "reconnect attempt");
  } finally {
    await spoke.close();
    for (const socket of sockets) socket.close();
    await silent.shutdown();
  }
});

Deno.test("a frame over the size limit closes the session with 1009", async () => {
  const hub = await serveNode({ maxFrameBytes: 64 * 1024 });
  const peer = await RawPeer.connect(hub.url, identity(12));
  try {
    await peer.next();
    peer.send(JSON.stringify({ type: "bulk", ops: [], pad: "x".repeat(100 * 1024) }));
    assert.equal((await peer.closed).code, CloseCode.TOO_BIG);
  } finally {
    await hub.stop();
  }
});

Deno.test("a peer that keeps sending invalid operations is disconnected", async () => {
  const logger = new MemoryLogger();
  const hub = await serveNode({ maxInvalidOps: 5, logger });
  const me = identity(13);
  const peer = await RawPeer.connect(hub.url, me);
  try {
    await peer.next();
    peer.send({ type: "clock", clock: {} });
    const ops = new OpFactory().chain(me, 10).map((op) => ({ ...op, sig: "00".repeat(64) }));
    for (const op of ops) peer.send(new TextEncoder().encode(JSON.stringify({ v: 1, op })));
    await peer.closed; // the client may see 1006/0: it was still sending when the hub closed
    const closes = logger.records.filter((r) => r.message === "session closed");
    assert.deepEqual(closes.map((r) => r.fields.code), [CloseCode.TOO_MANY_INVALID]);
    assert.equal(hub.node.replica.size, 0);
  } finally {
    await hub.stop();
  }
});

Deno.test("an unknown live envelope version is refused as a protocol violation", async () => {
  const hub = await serveNode();
  const me = identity(14);
  const peer = await RawPeer.connect(hub.url, me);
  try {
    await peer.next();
    const [op] = new OpFactory().chain(me, 1);
    peer.send({ type: "shiny-new-frame" }); // unknown text types are ignored
    peer.send(new TextEncoder().encode(JSON.stringify({ v: 2, op })));
    const closed = await peer.closed;
    assert.equal(closed.code, CloseCode.PROTOCOL_ERROR);
    assert.match(closed.reason, /version/);
  } finally {
    await hub.stop();
  }
});

Deno.test("a fork detected by the hub is proven to other peers, which fence off the author", async () => {
  const hub = await serveNode();
  const watcher = await HuskiesNode.open({ open: true });
  const twin = identity(15);
  const a = new OpFactory().next(twin, setField("x", "stage", "qa"));
  const b = new OpFactory().next(twin, setField("x", "stage", "done"));
  try {
    watcher.connect(hub.url, fastRetry);
    await hub.node.connected(watcher.nodeId, SOON);
    const first = await RawPeer.connect(hub.url, twin);
    await first.next();
    first.send({ type: "clock", clock: {} });
    first.send(new TextEncoder().encode(JSON.stringify({ v: 1, op: a })));
    await eventually(() => watcher.replica.size === 1, "first op reaches the watcher");
    const second = await RawPeer.connect(hub.url, twin);
    await second.next();
    const forked = watcher.once("fork-detected", {
      ...SOON,
      filter: (e) => e.author === twin.nodeId,
    });
    second.send(new TextEncoder().encode(JSON.stringify({ v: 1, op: b })));
    await forked;
    const [proof] = watcher.replica.forks();
    assert.deepEqual(new Set([proof.a.id, proof.b.id]), new Set([a.id, b.id]));
    await first.close();
    await second.close();
  } finally {
    await watcher.close();
    await hub.stop();
  }
});

Deno.test("a node restored from its key alone refuses to write until its own history is back", async () => {
  const hub = await serveNode();
  const original = await HuskiesNode.open({ open: true });
  try {
    original.connect(hub.url, fastRetry);
    original.pipeline.put("S-1", {});
    await eventually(() => hub.node.replica.size === 2, "original's operations on the hub");
    await original.close();
    // Same identity, empty store: the hub's clock shows 2 of "our" operations.
    const restored = await HuskiesNode.open({ open: true, identity: original.replica.identity });
    try {
      const client = restored.connect(hub.url, fastRetry);
      await eventually(() => client.info().state === "connected", "restored node connected");
      await eventually(() => restored.replica.size === 2, "own operations back from the hub");
      restored.pipeline.put("S-2", {}); // allowed now: it continues its chain at seq 3
      await eventually(() => hub.node.pipeline.get("S-2") !== undefined, "new item on the hub");
      assert.deepEqual(hub.node.replica.forks(), []);
    } finally {
      await restored.close();
    }
  } finally {
    await original.close();
    await hub.stop();
  }
});

Deno.test("a replica refuses to commit while peers hold more of its own operations", () => {
  const replica = Replica.open({ identity: identity(30) });
  replica.notePeerClock({ [replica.nodeId]: 3 });
  assert.throws(() => replica.commit([setField("x", "stage", "qa")]), /own operations/);
  assert.equal(replica.size, 0);
});

Deno.test("catch-up of 100k operations is chunked under the frame limit and resumes after a drop", async () => {
  const factory = new OpFactory();
  const authors = Array.from({ length: 10 }, (_, i) => identity(100 + i));
  const ops = authors.flatMap((author) => factory.chain(author, 10_000));
  const hub = await serveNode();
  hub.node.replica.receive(ops, { amortise: true });
  assert.equal(hub.node.replica.size, 100_000);
  const limit = 1024 * 1024;
  const peer = await RawPeer.connect(hub.url, identity(99));
  try {
    assert.equal((await peer.nextJson()).type, "clock");
    peer.send({ type: "clock", clock: {} });
    let frames = 0;
    let received = 0;
    for (;;) {
      const frame = await peer.next();
      assert.equal(typeof frame, "string");
      const bytes = new TextEncoder().encode(frame as string).length;
      assert.ok(bytes <= limit, `frame of ${bytes} bytes is over the ${limit}-byte limit`);
      const parsed = JSON.parse(frame as string);
      if (parsed.type === "ready") break;
      frames++;
      received += parsed.ops.length;
    }
    assert.equal(received, 100_000);
    assert.ok(frames >= 40, `only ${frames} frames`);
  } finally {
    await peer.close();
  }

  // A node whose connection drops part-way keeps what arrived and asks only for the rest. In
  // JSON frames (2,000 operations per MiB, not the 5,000 of `cbulk`) enough is still in flight
  // when it stops.
  const spoke = await HuskiesNode.open({ open: true, compactBulk: false });
  try {
    const first = spoke.connect(hub.url, fastRetry);
    const partway = Promise.withResolvers<void>();
    const stop = spoke.replica.onApplied(() => {
      if (spoke.replica.size >= 30_000) partway.resolve();
    });
    await partway.promise;
    stop();
    await first.stop();
    const kept = spoke.replica.size;
    assert.ok(kept >= 30_000 && kept < 100_000, `kept ${kept}`);
    spoke.connect(hub.url, fastRetry);
    await eventually(() => spoke.replica.size === 100_000, "the rest of the catch-up", 30_000);
    assert.equal(spoke.replica.stateHash(), hub.node.replica.stateHash());
    const resent = hub.node.sessions().reduce((sum, s) => sum + s.stats().opsOut, 0);
    assert.equal(resent, 100_000 - kept, "only the missing operations are sent again");
  } finally {
    await spoke.close();
    await hub.stop();
  }
});
