/**
 * The conformance suite catches what it claims to catch: each case runs
 * against a deliberately broken peer (a real node behind a frame-rewriting
 * proxy that breaks exactly one rule) and must FAIL there. A transparent
 * proxy over the same node passes, so the failures come from the breakage.
 * Dialling peers are in conformance_broken_dial_test.ts. Not covered: the
 * two local known-answer cases (no peer involved), the --slow cases, and
 * dial.incompatible-protocol.
 * @module
 */

import assert from "node:assert/strict";
import { addJoinToken, crdtSyncHandler, HuskiesNode, Identity } from "../mod.ts";
import { CASE_LIST, type CaseResult, KeyPair, runConformance } from "../conformance/mod.ts";
import { type Breakage, startProxy } from "./conformance_proxy.ts";
import { BREAKAGES, DIAL_BREAKAGES } from "./conformance_breakages.ts";

/** A running node behind a proxy applying `breakage`. */
async function brokenPeer(breakage: Breakage | undefined, suiteKey: KeyPair) {
  const identity = Identity.generate();
  const node = await HuskiesNode.open({
    identity,
    open: !breakage?.closed,
    trustedKeys: breakage?.closed && !breakage.token ? [suiteKey.id] : [],
    admission: { attemptsPerMinutePerAddress: 10_000 },
    // The proxy and the suite speak the in-band handshake.
    inBandHandshake: "allow",
    maxInBandHandshakes: 64,
  });
  const nodeServer = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    crdtSyncHandler(node),
  );
  const upstream = `ws://127.0.0.1:${nodeServer.addr.port}/crdt-sync`;
  const token = breakage?.token ? addJoinToken(node, { ttlMs: 60_000, uses: 1 }).token : undefined;
  const proxy = startProxy(upstream, breakage, { identity, links: new Set(), recorded: new Map() });
  return {
    url: `ws://127.0.0.1:${proxy.addr.port}/crdt-sync`,
    token,
    async close() {
      await proxy.shutdown();
      await nodeServer.shutdown();
      await node.close();
    },
  };
}

async function run(breakage: Breakage | undefined, only?: string[]): Promise<CaseResult[]> {
  const key = KeyPair.generate();
  const peer = await brokenPeer(breakage, key);
  try {
    // The transparent run waits longer: a slow CI machine must not fail it.
    const timeoutMs = breakage ? 2000 : 5000;
    const report = await runConformance({ url: peer.url, key, token: peer.token, only, timeoutMs });
    return report.results;
  } finally {
    await peer.close();
  }
}

Deno.test("conformance: a transparent proxy over a node passes every case it runs", async () => {
  const results = await run(
    undefined,
    CASE_LIST.map((c) => c.id).filter((id) => id !== "handshake.timeout"),
  );
  const failed = results.filter((r) => r.status === "FAIL");
  assert.deepEqual(failed, [], "no case may fail through the proxy alone");
  assert.ok(results.filter((r) => r.status === "PASS").length >= 30);
});

for (const breakage of BREAKAGES) {
  Deno.test(`conformance catches a peer that ${breakage.name}`, async () => {
    const results = await run(breakage, breakage.cases);
    for (const id of breakage.cases) {
      const result = results.find((r) => r.id === id);
      assert.equal(result?.status, "FAIL", `${id} must fail: ${JSON.stringify(result)}`);
    }
  });
}

Deno.test("conformance: every peer-facing case is caught by some broken peer", () => {
  const caught = new Set([...BREAKAGES, ...DIAL_BREAKAGES].flatMap((b) => b.cases));
  const notPeerFacing = [
    "handshake.known-answer",
    "document.known-answer",
    "sync.slow-silence",
    "transport.admission-limit",
    "dial.incompatible-protocol",
    // The broken peers are proxies that speak the in-band handshake upstream: they have no
    // challenge endpoint, so the §3.10 cases skip there; the self test runs them against serve.
    "preauth.known-answer",
    "preauth.challenge",
    "preauth.welcome",
    "preauth.replay",
    "preauth.bad-proof",
    "preauth.malformed",
  ];
  const missing = CASE_LIST.map((c) => c.id).filter((id) =>
    !caught.has(id) && !notPeerFacing.includes(id)
  );
  assert.deepEqual(missing, []);
});
