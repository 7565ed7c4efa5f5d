/**
 * The node's start-up grace over real sockets: a restarted node signs nothing
 * until a peer has caught it up (or the grace passes, with a WARN), so a
 * write right after a restart cannot fork its own key.
 */
import assert from "node:assert/strict";
import { copyFile, readdir } from "node:fs/promises";
import { join } from "node:path";
import { WriteRefusedError } from "../crdt/write_guard.ts";
import { MemoryLogger } from "../sync/logger.ts";
import { HuskiesNode } from "../sync/node.ts";
import { eventually, serveNode } from "./net_helpers.ts";

const fastRetry = { initialMs: 20, maxMs: 200 };

/** How many of `author`'s operations `node` holds. */
function ownAt(node: HuskiesNode, author: string): number {
  return node.replica.clock()[author] ?? 0;
}
const SOON = { timeoutMs: 10_000 };

async function copyFolder(from: string, to: string): Promise<void> {
  for (const name of await readdir(from)) await copyFile(join(from, name), join(to, name));
}

function refusal(write: () => unknown): WriteRefusedError {
  try {
    write();
  } catch (error) {
    if (error instanceof WriteRefusedError) return error;
    throw error;
  }
  assert.fail("the write was accepted");
}

Deno.test("a node with a new key writes at once; a restarted one waits for its start-up grace", async () => {
  const dataDir = await Deno.makeTempDir();
  try {
    const fresh = await HuskiesNode.open({ dataDir });
    fresh.pipeline.put("S-1", {}); // a key created now: no peer can hold its operations
    assert.equal(fresh.status().writeGate.state, "open");
    const held = fresh.replica.size;
    await fresh.close();
    const restarted = await HuskiesNode.open({ dataDir });
    try {
      const error = refusal(() => restarted.pipeline.put("S-2", {}));
      assert.equal(error.reason, "starting");
      assert.equal(error.retryable, true);
      assert.match(error.message, /^Cannot commit: the node is starting/);
      const gate = restarted.status().writeGate;
      assert.equal(gate.state, "starting");
      assert.equal(gate.retryable, true);
      assert.ok(gate.until! > Date.now(), "the grace ends in the future");
      assert.equal(restarted.pipeline.get("S-2"), undefined, "nothing was applied");
      assert.equal(restarted.replica.size, held, "nothing was signed");
    } finally {
      await restarted.close();
    }
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("the start-up grace ends with a WARN when no peer is reachable", async () => {
  const dataDir = await Deno.makeTempDir();
  try {
    await (await HuskiesNode.open({ dataDir })).close();
    const logger = new MemoryLogger();
    const node = await HuskiesNode.open({ dataDir, logger, startupGraceMs: 150 });
    try {
      assert.equal(refusal(() => node.pipeline.put("S-1", {})).reason, "starting");
      await eventually(
        () => logger.records.some((l) => l.level === "warn" && /start-up grace/.test(l.message)),
        "the grace WARN",
      );
      const warn = logger.records.find((l) => /start-up grace/.test(l.message))!;
      assert.match(warn.message, /writes are now allowed without having heard from a peer/);
      node.pipeline.put("S-1", {});
      assert.equal(node.status().writeGate.state, "open");
    } finally {
      await node.close();
    }
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("a whole data folder restored from a backup does not fork its key when written at once", async () => {
  const dataDir = await Deno.makeTempDir();
  const backup = await Deno.makeTempDir();
  const peer = await serveNode();
  try {
    let node = await HuskiesNode.open({ dataDir });
    node.connect(peer.url, fastRetry);
    for (let i = 1; i <= 3; i++) node.pipeline.put(`A-${i}`, {});
    const first = ownAt(node, node.nodeId);
    await eventually(() => ownAt(peer.node, node.nodeId) === first, "first writes at the peer");
    await node.close();
    await copyFolder(dataDir, backup); // the backup: 3 own operations, its own-head record too
    node = await HuskiesNode.open({ dataDir, startupGraceMs: 0 });
    node.connect(peer.url, fastRetry);
    await node.connected(peer.node.nodeId, SOON);
    for (let i = 4; i <= 5; i++) node.pipeline.put(`A-${i}`, {});
    const later = ownAt(node, node.nodeId);
    await eventually(() => ownAt(peer.node, node.nodeId) === later, "later writes at the peer");
    await node.close();
    await copyFolder(backup, dataDir); // restore: the store and its record agree on 3

    const logger = new MemoryLogger();
    node = await HuskiesNode.open({ dataDir, logger });
    try {
      node.connect(peer.url, fastRetry);
      // Written at once, before the peer's catch-up: refused, retryable, never signed.
      assert.equal(refusal(() => node.pipeline.put("A-6", {})).reason, "starting");
      await node.once("caught-up", SOON);
      assert.equal(ownAt(node, node.nodeId), later, "its own operations are back");
      node.pipeline.put("A-6", {});
      const last = ownAt(node, node.nodeId);
      await eventually(() => ownAt(peer.node, node.nodeId) === last, "the new write at the peer");
      assert.deepEqual(node.replica.forks(), []);
      assert.deepEqual(peer.node.replica.forks(), [], "the healthy peer saw no fork");
      assert.equal(peer.node.replica.stateHash(), node.replica.stateHash());
      assert.ok(
        logger.records.some((l) => /start-up: caught up with a peer/.test(l.message)),
        "the end of the grace is logged",
      );
    } finally {
      await node.close();
    }
  } finally {
    await peer.stop();
    await Deno.remove(dataDir, { recursive: true });
    await Deno.remove(backup, { recursive: true });
  }
});
