/**
 * Issue 9: an operator compares two nodes by `huskies status --json`'s state
 * hash: equal on converged nodes, different once one of them changed.
 */
import assert from "node:assert/strict";
import { removeDir, tempDir } from "../cli_helpers.ts";
import { figure, ServeNode, waitConverged } from "./harness.ts";

async function cliStateHash(node: ServeNode): Promise<unknown> {
  const result = await node.cli(["status", "--json"]);
  assert.equal(result.code, 0, `status --json: ${result.stderr}`);
  return JSON.parse(result.stdout).stateHash;
}

Deno.test("faults: status --json reports the state hash, equal on converged nodes", async () => {
  const root = await tempDir("huskies-faults-hash-");
  const a = await ServeNode.create(root, "a");
  const b = await ServeNode.create(root, "b");
  try {
    await a.trust([b.nodeId]);
    await b.trust([a.nodeId]);
    await b.start([]);
    await a.start(["--rendezvous", b.syncUrl]);
    for (let i = 0; i < 10; i++) assert.ok((await a.put(`H-${i}`, `item ${i}`)).ok);
    await waitConverged([a, b], 15_000);
    const [hashA, hashB] = [await cliStateHash(a), await cliStateHash(b)];
    figure(`state hash: a ${hashA}, b ${hashB}`);
    assert.match(String(hashA), /^[0-9a-f]{64}$/, "status --json has no state hash");
    assert.equal(hashA, hashB, "converged nodes report different state hashes");
    await b.terminate();
    assert.ok((await a.put("H-new", "changed")).ok);
    assert.notEqual(await cliStateHash(a), hashA, "the state hash did not change with the state");
  } finally {
    await a.dispose();
    await b.dispose();
    await removeDir(root);
  }
});
