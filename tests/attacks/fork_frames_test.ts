/**
 * Finding 2 (sync part): a fork proof was sent whatever its size, so a proof
 * over the frame limit made every honest peer close the session with 1009,
 * again and again. Now a fork frame respects the frame limit like any other
 * frame; a proof that cannot fit is not sent (counted, logged once).
 */
import assert from "node:assert/strict";
import { MemoryLogger } from "../../sync/logger.ts";
import { identity, OpFactory } from "../helpers.ts";
import { eventually, RawPeer, serveNode } from "./helpers.ts";

const FRAME_LIMIT = 64 * 1024;

Deno.test("attack: a fork proof too big for a frame is not sent to honest peers", async () => {
  const logger = new MemoryLogger();
  const hub = await serveNode({ maxFrameBytes: FRAME_LIMIT, logger });
  const forker = identity(451);
  const attacker = await RawPeer.connect(hub.url, forker);
  try {
    // Two different seq-1 operations of ~40 KB each: each fits a frame, their proof does not.
    const a = new OpFactory().next(forker, {
      type: "append",
      path: ["log"],
      value: "a".repeat(40_000),
    });
    const b = new OpFactory().next(forker, {
      type: "append",
      path: ["log"],
      value: "b".repeat(40_000),
    });
    attacker.send({ type: "clock", clock: {}, heads: {} });
    attacker.send({ type: "bulk", ops: [a] });
    attacker.send({ type: "bulk", ops: [b] });
    await eventually(() => hub.node.replica.forks().length === 1, "the hub to hold the proof");

    const honest = await RawPeer.connect(hub.url, identity(452));
    try {
      honest.send({ type: "clock", clock: {}, heads: {} });
      const sizes: number[] = [];
      const types: unknown[] = [];
      while (!types.includes("ready")) {
        const frame = await honest.next(5_000);
        const text = typeof frame === "string" ? frame : new TextDecoder().decode(frame);
        sizes.push(new TextEncoder().encode(text).length);
        types.push(JSON.parse(text).type);
      }
      assert.ok(Math.max(...sizes) <= FRAME_LIMIT, `every frame within the limit: ${sizes}`);
      assert.ok(!types.includes("fork"), "the oversized proof was not sent");
      assert.equal(hub.node.sessions().length, 2, "both sessions stay up");
      const warnings = logger.records.filter((r) => r.message.startsWith("fork proof too big"));
      assert.ok(warnings.length >= 1, "the skipped proof is logged");
    } finally {
      await honest.close();
    }
  } finally {
    await attacker.close();
    await hub.stop();
  }
});
