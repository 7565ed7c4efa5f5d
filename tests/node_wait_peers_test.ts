/**
 * `node.waitForPeers` over real sockets: it resolves once N peers' latest
 * clocks (heartbeats carry them) count the write, and times out with a typed
 * error when fewer peers hold it.
 */
import assert from "node:assert/strict";
import { HuskiesNode, PeersTimeoutError } from "../sync/node.ts";
import { identity } from "./helpers.ts";
import { RawPeer, serveNode } from "./net_helpers.ts";

const fastRetry = { initialMs: 20, maxMs: 200 };
/** A short heartbeat, so that peers re-send their clocks often. */
const beat = { pingIntervalMs: 100, pongTimeoutMs: 5_000 };
const SOON = { timeoutMs: 10_000 };

Deno.test("waitForPeers resolves once N peers' clocks count the write", async () => {
  const hub = await serveNode(beat);
  const a = await HuskiesNode.open({ open: true, ...beat });
  const b = await HuskiesNode.open({ open: true, ...beat });
  try {
    a.connect(hub.url, fastRetry);
    b.connect(hub.url, fastRetry);
    await hub.node.connected(a.nodeId, SOON);
    await hub.node.connected(b.nodeId, SOON);
    hub.node.pipeline.put("S-1", { stage: "coding" });
    const head = hub.node.ownHead()!;
    assert.equal(head.author, hub.node.nodeId);
    const peers = await hub.node.waitForPeers(head, 2, SOON);
    assert.deepEqual(peers.sort(), [a.nodeId, b.nodeId].sort());
    for (const spoke of [a, b]) {
      assert.ok((spoke.replica.clock()[head.author] ?? 0) >= head.seq, "the peer holds it");
      assert.equal(spoke.pipeline.get("S-1")?.stage, "coding");
    }
    // A spoke's write reaches the hub: one peer is enough.
    a.pipeline.put("A-1", {});
    assert.deepEqual(await a.waitForPeers(a.ownHead()!, 1, SOON), [hub.node.nodeId]);
    assert.deepEqual(await a.waitForPeers(a.ownHead()!, 0), [hub.node.nodeId], "0: at once");
  } finally {
    await a.close();
    await b.close();
    await hub.stop();
  }
});

Deno.test("waitForPeers times out with the peers reached when fewer hold the write", async () => {
  const hub = await serveNode(beat);
  const spoke = await HuskiesNode.open({ open: true, ...beat });
  // A raw peer that never reports a clock after its first: it cannot confirm anything new.
  const silent = await RawPeer.connect(hub.url, identity(41));
  try {
    spoke.connect(hub.url, fastRetry);
    await hub.node.connected(spoke.nodeId, SOON);
    assert.equal((await silent.nextJson()).type, "clock");
    silent.send({ type: "clock", clock: {} });
    silent.send({ type: "ready" });
    await hub.node.connected(identity(41).nodeId, SOON);
    hub.node.pipeline.put("S-1", {});
    const error = await hub.node.waitForPeers(hub.node.ownHead()!, 2, { timeoutMs: 600 }).then(
      () => assert.fail("resolved although only one peer reported holding the write"),
      (error) => error,
    );
    assert.ok(error instanceof PeersTimeoutError, String(error));
    assert.equal(error.wanted, 2);
    assert.deepEqual(error.reached, [spoke.nodeId]);
    assert.match(error.message, /^Cannot confirm the write at 2 peers: /);
    await assert.rejects(() => hub.node.waitForPeers(hub.node.ownHead()!, -1), RangeError);
  } finally {
    await silent.close();
    await spoke.close();
    await hub.stop();
  }
});
