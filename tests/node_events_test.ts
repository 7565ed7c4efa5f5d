/** The node's typed events and waits, over in-memory channels (no sockets). */
import assert from "node:assert/strict";
import { TrustStore } from "../auth/trust.ts";
import { CloseCode } from "../protocol/close_codes.ts";
import { HuskiesNode } from "../sync/node.ts";
import type { NodeEvents, NodeEventType } from "../sync/events.ts";
import { memoryDialer } from "../testing.ts";
import { identity, OpFactory } from "./helpers.ts";

const SOON = { timeoutMs: 5_000 };

/** Records every event of the given types. */
function record(node: HuskiesNode, ...types: NodeEventType[]) {
  const seen: { type: NodeEventType; event: NodeEvents[NodeEventType] }[] = [];
  for (const type of types) node.on(type, (event) => seen.push({ type, event }));
  return seen;
}

Deno.test("a node reports authentication, catch-up, live, applied and close as events", async () => {
  const hub = await HuskiesNode.open({ open: true });
  await using spoke = await HuskiesNode.open({ open: true, dialer: memoryDialer(() => hub) });
  const hubEvents = record(hub, "peer-authenticated", "caught-up", "live", "session-closed");
  hub.pipeline.put("H-1", { stage: "coding" });
  const client = spoke.connect("memory://hub");
  await spoke.connected(hub.nodeId, SOON);
  await hub.connected(spoke.nodeId, SOON);
  assert.equal(spoke.pipeline.get("H-1")?.stage, "coding", "caught up before live");
  const types = hubEvents.map((e) => e.type);
  assert.deepEqual(types, ["peer-authenticated", "caught-up", "live"]);
  const auth = hubEvents[0].event as NodeEvents["peer-authenticated"];
  assert.deepEqual(auth, {
    peer: spoke.nodeId,
    direction: "inbound",
    remote: "memory",
    scope: "write",
  });

  const applied = hub.once("applied", { ...SOON, filter: (e) => e.from === spoke.nodeId });
  spoke.pipeline.put("S-1", { stage: "qa" });
  assert.equal((await applied).operations.length, 2, "the put and its stage event");
  await spoke.synced(SOON);

  const closed = hub.once("session-closed", SOON);
  await client.stop();
  const event = await closed;
  assert.equal(event.peer, spoke.nodeId);
  assert.equal(event.code, CloseCode.NORMAL);
  await hub.close();
});

Deno.test("a closed mesh reports the refused key, and the client says it stopped for good", async () => {
  const hub = await HuskiesNode.open({ open: false });
  await using spoke = await HuskiesNode.open({ open: true, dialer: memoryDialer(() => hub) });
  try {
    const refused = hub.once("refused", SOON);
    const client = spoke.connect("memory://hub");
    assert.deepEqual(await refused, {
      kind: "handshake",
      direction: "inbound",
      remote: "memory",
      code: CloseCode.NOT_TRUSTED,
      reason: "key not trusted",
      key: spoke.nodeId,
    });
    assert.deepEqual(await client.stopped, {
      code: CloseCode.NOT_TRUSTED,
      reason: "key not trusted",
      permanent: true,
    });
  } finally {
    await hub.close();
  }
});

Deno.test("operations a peer may not write are reported per author", async () => {
  const spokeId = identity(41);
  const hub = await HuskiesNode.open({
    open: false,
    trust: TrustStore.memory([{ key: spokeId.nodeId, scope: "read" }]),
  });
  await using spoke = await HuskiesNode.open({
    identity: spokeId,
    open: true,
    dialer: memoryDialer(() => hub),
  });
  try {
    spoke.connect("memory://hub");
    await spoke.connected(undefined, SOON);
    const refused = hub.once("refused", SOON);
    spoke.pipeline.put("S-1", {});
    const event = await refused;
    assert.equal(event.kind, "operations");
    assert.ok(event.kind === "operations");
    assert.deepEqual(event.byAuthor, { [spokeId.nodeId]: { invalid: 0, unauthorized: 2 } });
    assert.equal(hub.status().counters.unauthorized, 2);
  } finally {
    await hub.close();
  }
});

Deno.test("a fork is reported with its author and position", async () => {
  await using node = await HuskiesNode.open({ open: true });
  const twin = identity(42);
  const a = new OpFactory().next(twin, { type: "append", path: ["n"], value: "a" });
  const b = new OpFactory().next(twin, { type: "append", path: ["n"], value: "b" });
  const forked = node.once("fork-detected", SOON);
  node.replica.receive([a, b]);
  const event = await forked;
  assert.equal(event.author, twin.nodeId);
  assert.equal(event.seq, 1);
  assert.equal(event.from, undefined, "delivered locally, not by a peer");
});

Deno.test("once() times out on the node's timers and honours its signal", async () => {
  await using node = await HuskiesNode.open({ open: true });
  await assert.rejects(node.once("live", { timeoutMs: 10 }), /Timed out after 10 ms/);
  const stop = new AbortController();
  const waiting = node.once("live", { signal: stop.signal });
  stop.abort(new Error("no longer needed"));
  await assert.rejects(waiting, /no longer needed/);
});
