/**
 * Operator messages of a node: the refused key and its fix on both sides of
 * a refused handshake, a rate-limited summary of refused operations, and
 * catch-up completion with counts and duration.
 */
import assert from "node:assert/strict";
import { MemoryLogger } from "../sync/logger.ts";
import { HuskiesNode } from "../sync/node.ts";
import { NodeEventEmitter } from "../sync/events.ts";
import { OPERATOR_LOG_INTERVAL_MS, summariseRefusals } from "../sync/node_wiring.ts";
import { VirtualTimers } from "../testing.ts";
import { eventually, RawPeer, serveNode } from "./net_helpers.ts";
import { identity } from "./helpers.ts";

const SOON = { timeoutMs: 10_000 };

Deno.test("a refused handshake names the key and the fix on the hub and on the spoke", async () => {
  const hubLog = new MemoryLogger();
  const spokeLog = new MemoryLogger();
  const hub = await serveNode({ open: false, logger: hubLog });
  hub.node.trust.add(identity(77).nodeId, "write", "someone else"); // a closed mesh
  const spoke = await HuskiesNode.open({ open: true, logger: spokeLog });
  try {
    const client = spoke.connect(hub.url, { initialMs: 20, maxMs: 200 });
    const outcome = await client.stopped;
    assert.equal(outcome.permanent, true);
    const fix = `huskies trust add ${spoke.nodeId}`;
    const refused = spokeLog.records.find((r) => /refused permanently/.test(r.message))!;
    assert.equal(refused.level, "error");
    assert.ok(refused.message.includes(fix), refused.message);
    await eventually(
      () => hubLog.records.some((r) => r.message.includes(`refused key ${spoke.nodeId}`)),
      "the hub's log of the refused key",
    );
    const hubLine = hubLog.records.find((r) => r.message.includes(`refused key ${spoke.nodeId}`))!;
    assert.ok(hubLine.message.includes(fix), hubLine.message);
  } finally {
    await spoke.close();
    await hub.stop();
  }
});

Deno.test("refused operations are logged as a rate-limited summary with authors and counts", async () => {
  const timers = new VirtualTimers();
  const events = new NodeEventEmitter(timers, (error) => {
    throw error;
  });
  const logger = new MemoryLogger();
  const stop = summariseRefusals(events, timers, logger);
  const peer = "11".repeat(32);
  const author = "22".repeat(32);
  const refuse = (invalid: number, unauthorized: number) =>
    events.emit("refused", {
      kind: "operations",
      peer,
      invalid,
      unauthorized,
      byAuthor: { [author]: { invalid, unauthorized } },
    });
  refuse(0, 8);
  assert.equal(logger.records.length, 1, "the first refusal is logged at once");
  assert.match(
    logger.records[0].message,
    /^refused 8 operations: from peer 111111111111 by 222222222222: 8 unauthorized; .*huskies trust add <author>/,
  );
  assert.deepEqual(logger.records[0].fields.authors, [author]);
  refuse(2, 0);
  refuse(0, 3);
  assert.equal(logger.records.length, 1, "later ones wait for the interval");
  await timers.advance(OPERATOR_LOG_INTERVAL_MS);
  assert.equal(logger.records.length, 2);
  assert.match(logger.records[1].message, /^refused 5 operations: .* 2 invalid, 3 unauthorized/);
  await timers.advance(OPERATOR_LOG_INTERVAL_MS * 3);
  assert.equal(logger.records.length, 2, "nothing refused: nothing logged");
  stop();
});

Deno.test("a catch-up logs its completion with the operations and the duration", async () => {
  const hub = await serveNode();
  for (let i = 0; i < 50; i++) hub.node.pipeline.put(`S-${i}`, {});
  const logger = new MemoryLogger();
  const spoke = await HuskiesNode.open({ open: true, logger });
  try {
    spoke.connect(hub.url, { initialMs: 20, maxMs: 200 });
    await spoke.once("caught-up", SOON);
    const done = logger.records.find((r) => r.message === "caught up from peer")!;
    assert.equal(done.level, "info");
    assert.equal(done.fields.peer, hub.node.nodeId);
    assert.equal(done.fields.operations, hub.node.replica.size);
    assert.equal(typeof done.fields.durationMs, "number");
  } finally {
    await spoke.close();
    await hub.stop();
  }
});

Deno.test("status says how far behind a peer the node is, from the peer's clock", async () => {
  const hub = await serveNode();
  const raw = await RawPeer.connect(hub.url, identity(42));
  const spoke = await HuskiesNode.open({ open: true });
  try {
    assert.equal((await raw.nextJson()).type, "clock");
    const other = identity(43).nodeId;
    // The peer says it holds 500 operations of another author, and has sent none yet.
    raw.send({ type: "clock", clock: { [other]: 500, [identity(42).nodeId]: 20 } });
    await eventually(() => hub.node.behind(identity(42).nodeId) === 520, "behind from its clock");
    const session = hub.node.sessions().find((s) => s.peer === identity(42).nodeId)!;
    assert.equal(session.stats().clockLag, 0, "the peer lacks nothing of ours: LAG alone says 0");
    // A real peer that caught up: nothing behind.
    for (let i = 0; i < 20; i++) hub.node.pipeline.put(`S-${i}`, {});
    spoke.connect(hub.url, { initialMs: 20, maxMs: 200 });
    await spoke.once("live", SOON);
    assert.equal(spoke.behind(hub.node.nodeId), 0);
    assert.equal(spoke.behind(identity(44).nodeId), undefined, "no clock from a stranger");
  } finally {
    await spoke.close();
    await raw.close();
    await hub.stop();
  }
});
