/**
 * Broken dialling peers: a node dials the suite's listener through a proxy
 * that breaks one rule of the client side, and the dial case must FAIL.
 * @module
 */

import assert from "node:assert/strict";
import { HuskiesNode, Identity } from "../mod.ts";
import { KeyPair, ListenServer, runConformance } from "../conformance/mod.ts";
import { startProxy } from "./conformance_proxy.ts";
import { DIAL_BREAKAGES } from "./conformance_breakages.ts";

for (const breakage of DIAL_BREAKAGES) {
  Deno.test(`conformance catches a dialling peer that ${breakage.name}`, async () => {
    const key = KeyPair.generate();
    const listen = await ListenServer.start("127.0.0.1:0");
    const identity = Identity.generate();
    const proxy = startProxy(listen.url, breakage, {
      identity,
      links: new Set(),
      recorded: new Map(),
    });
    const node = await HuskiesNode.open({ identity, open: true });
    try {
      node.connect(`ws://127.0.0.1:${proxy.addr.port}/crdt-sync`);
      const report = await runConformance({ key, only: breakage.cases, listen, timeoutMs: 2000 });
      for (const id of breakage.cases) {
        const result = report.results.find((r) => r.id === id);
        assert.equal(result?.status, "FAIL", `${id} must fail: ${JSON.stringify(result)}`);
      }
    } finally {
      await node.close();
      await proxy.shutdown();
      await listen.close();
    }
  });
}
