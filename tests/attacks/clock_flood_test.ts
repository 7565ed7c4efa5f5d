/**
 * Finding 4: every `clock` frame started a full catch-up, so 300 clocks of 27
 * bytes made a node with many operations build 300 catch-ups. Now one runs
 * at a time, later clocks coalesce, and a flood closes the session.
 */
import assert from "node:assert/strict";
import { CloseCode } from "../../protocol/close_codes.ts";
import { CLOCK_FLOOD_REASON } from "../../sync/clock_gate.ts";
import { identity } from "../helpers.ts";
import { RawPeer, serveNode, within } from "./helpers.ts";

const OPS = 2_000;
const EMPTY_CLOCK = '{"type":"clock","clock":{},"heads":{}}';

async function hubWithOps() {
  const hub = await serveNode();
  for (let i = 0; i < OPS; i++) hub.node.pipeline.put(`S-${i}`, { stage: "coding" });
  return hub;
}

/** Operations in the bulk frames received until `ready` frames stop for `quietMs`. */
async function opsReceived(
  peer: RawPeer,
  quietMs: number,
): Promise<{ ops: number; readies: number }> {
  let ops = 0;
  let readies = 0;
  while (true) {
    let frame: string | Uint8Array;
    try {
      frame = await peer.next(quietMs);
    } catch {
      return { ops, readies };
    }
    if (typeof frame !== "string") continue;
    const parsed = JSON.parse(frame);
    if (parsed.type === "bulk") ops += parsed.ops.length;
    if (parsed.type === "ready") readies++;
  }
}

Deno.test("attack: a burst of clocks gets one catch-up plus one coalesced, not one each", async () => {
  const hub = await hubWithOps();
  const peer = await RawPeer.connect(hub.url, identity(401));
  try {
    await peer.nextJson(); // the hub's own clock
    for (let i = 0; i < 20; i++) peer.send(EMPTY_CLOCK);
    const { ops, readies } = await opsReceived(peer, 2_500);
    assert.ok(readies >= 1, "the catch-up finished");
    assert.ok(readies <= 2, `at most 2 catch-ups for 20 clocks (saw ${readies})`);
    const held = hub.node.replica.size;
    assert.ok(ops <= 2 * held, `at most 2 catch-ups of ${held} operations (saw ${ops})`);
    assert.equal(hub.node.sessions().length, 1, "a burst under the flood limit stays connected");
  } finally {
    await peer.close();
    await hub.stop();
  }
});

Deno.test("attack: a clock flood (300 clocks) closes the session with a fixed reason", async () => {
  const hub = await hubWithOps();
  const peer = await RawPeer.connect(hub.url, identity(402));
  try {
    const closed = hub.node.once("session-closed", { timeoutMs: 10_000 });
    for (let i = 0; i < 300; i++) peer.send(EMPTY_CLOCK);
    const { code, reason } = await closed;
    assert.equal(code, CloseCode.RATE_LIMITED);
    assert.equal(reason, CLOCK_FLOOD_REASON);
    await within(peer.closed, "the flooding socket to close");
  } finally {
    await peer.close();
    await hub.stop();
  }
});
