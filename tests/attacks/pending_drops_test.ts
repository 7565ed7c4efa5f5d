/**
 * Finding 6: operations the pending buffer drops were fetched again only on
 * the next clock exchange (a reconnect or a trust change). Now the session
 * asks again promptly (our clock, rate-limited), and a dropped operation is
 * never taken as held by the peer.
 */
import assert from "node:assert/strict";
import { identity, OpFactory } from "../helpers.ts";
import { eventually, RawPeer, serveNode } from "./helpers.ts";

const PER_AUTHOR = 20;

Deno.test("attack: operations dropped by the pending buffer are asked for again promptly", async () => {
  const hub = await serveNode({ pending: { maxCount: 4 * PER_AUTHOR, maxPerAuthor: PER_AUTHOR } });
  const me = identity(441);
  const peer = await RawPeer.connect(hub.url, me);
  try {
    assert.equal((await peer.nextJson()).type, "clock", "the session's first clock");
    peer.send({ type: "clock", clock: {}, heads: {} });
    // seq 2..(PER_AUTHOR + 11) without seq 1: the author's quota overflows and some are dropped.
    const chain = new OpFactory().chain(me, PER_AUTHOR + 11);
    peer.send({ type: "bulk", ops: chain.slice(1) });
    let again: Record<string, unknown> | undefined;
    const deadline = Date.now() + 5_000;
    while (!again && Date.now() < deadline) {
      const frame = await peer.nextJson(Math.max(1, deadline - Date.now()));
      if (frame.type === "clock") again = frame;
    }
    assert.ok(again, "the hub re-sent its clock after dropping operations");
    // Answering that clock with the whole chain fills the gap: every operation arrives.
    peer.send({ type: "bulk", ops: chain });
    const held = () => hub.node.replica.clock()[me.nodeId] ?? 0;
    await eventually(() => held() === chain.length, "the whole chain to be applied", 5_000);
  } finally {
    await peer.close();
    await hub.stop();
  }
});
