/**
 * A relay that alters the signatures of another author's chain, all but the last of each frame it
 * sends: every frame's run is authenticated by its last operation, so an honest hub accepts the
 * chain with those signatures (PROTOCOL.md §2.5). Its own frames are cut elsewhere, so a node
 * catching up from it used to get a run ending on an altered signature and refuse the rest of the
 * chain for good; now the run waits for the next frame, which authenticates it.
 */
import assert from "node:assert/strict";
import { encodeOperation } from "../../crdt/operation.ts";
import { HuskiesNode } from "../../sync/node.ts";
import { identity, OpFactory, spoilt } from "../helpers.ts";
import { eventually, RawPeer, serveNode } from "./helpers.ts";

const FRAME_BYTES = 16 * 1024;
const PER_FRAME = 24; // about 11 KiB of JSON: every frame of the relay is within the limit

Deno.test("attack: a chain whose signatures a relay altered reaches the nodes behind the hub", async () => {
  const hub = await serveNode({ maxFrameBytes: FRAME_BYTES });
  const relay = await RawPeer.connect(hub.url, identity(481));
  const behind = await HuskiesNode.open({ open: true, maxFrameBytes: FRAME_BYTES });
  try {
    const chain = new OpFactory().chain(identity(480), 20 * PER_FRAME);
    relay.send({ type: "clock", clock: {}, heads: {} });
    for (let at = 0; at < chain.length; at += PER_FRAME) {
      const frame = chain.slice(at, at + PER_FRAME).map((op, i) =>
        i === PER_FRAME - 1 ? op : { ...op, sig: spoilt(op.sig) }
      );
      relay.send(`{"type":"bulk","ops":[${frame.map(encodeOperation).join(",")}]}`);
    }
    await eventually(() => hub.node.replica.size === chain.length, "the hub to hold the chain");

    behind.connect(hub.url);
    await eventually(() => behind.replica.size === chain.length, "the node behind to hold it");
    assert.equal(behind.replica.stateHash(), hub.node.replica.stateHash());
    assert.equal(behind.sessions()[0].stats().invalidOps, 0);
  } finally {
    await behind.close();
    relay.socket.close();
    await hub.stop();
  }
});
