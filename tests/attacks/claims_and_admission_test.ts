/**
 * Finding 1: a read-scope peer's clock claiming 2^53-1 of our own operations
 * froze our writes until a restart. The rule (issue 9's write guard in
 * crdt/replica.ts): a claim blocks writes only until the claimed operations
 * are fetched or shown empty. Finding 11: successful authentications must not
 * count against the per-address attempt limit.
 */
import assert from "node:assert/strict";
import { TrustStore } from "../../auth/trust.ts";
import { WriteRefusedError } from "../../crdt/write_guard.ts";
import { identity } from "../helpers.ts";
import { eventually, RawPeer, serveNode, within } from "./helpers.ts";

Deno.test("attack: a read-scope peer's inflated clock claim does not freeze local writes", async () => {
  const reader = identity(471);
  const hubId = identity(470);
  const hub = await serveNode({
    open: false,
    identity: hubId,
    trust: TrustStore.memory(),
    // A claim the peer never backs up blocks writes at most this long (default 15 s).
    claimTimeoutMs: 1_000,
  });
  hub.node.trust.add(reader.nodeId, "read", "attack test");
  try {
    hub.node.pipeline.put("S-1", { stage: "coding" });
    const peer = await RawPeer.connect(hub.url, reader);
    peer.send({ type: "clock", clock: { [hubId.nodeId]: 9007199254740991 }, heads: {} });
    await eventually(() => peer.buffered > 0, "the hub to answer");
    await peer.close();
    await eventually(() => hub.node.sessions().length === 0, "the session to end");
    // The peer sent nothing for its claim: writes go on once it expires, and that peer is not
    // believed again for a while.
    await within(
      (async () => {
        while (true) {
          try {
            hub.node.pipeline.put("S-2", { stage: "qa" });
            return;
          } catch (error) {
            if (!(error instanceof WriteRefusedError && error.reason === "peer-claim")) throw error;
            await new Promise((resolve) => setTimeout(resolve, 50));
          }
        }
      })(),
      "a local write to be accepted again",
      5_000,
    );
    assert.equal(hub.node.pipeline.get("S-2")?.stage, "qa");
  } finally {
    await hub.stop();
  }
});

Deno.test("attack: 40 successful connections from one address do not lock out a trusted peer", async () => {
  const trusted = identity(481);
  const hub = await serveNode({ open: false, trust: TrustStore.memory([trusted.nodeId]) });
  try {
    for (let i = 0; i < 40; i++) {
      const peer = await within(RawPeer.connect(hub.url, trusted), `connection ${i + 1}`);
      await peer.close();
    }
    const last = await within(RawPeer.connect(hub.url, trusted), "one more connection");
    await last.close();
  } finally {
    await hub.stop();
  }
});
