/**
 * Fault case 1 (issue 9): `kill -9` of a node under write load, several
 * rounds. Every write the node acknowledged must be on every node once they
 * converge, no fork may appear, and the healthy peer never loses operations.
 */
import assert from "node:assert/strict";
import { removeDir, tempDir } from "../cli_helpers.ts";
import {
  figure,
  lostWrites,
  OperationCountMonitor,
  ServeNode,
  waitConverged,
  WriteLoad,
} from "./harness.ts";

const ROUNDS = 8;
const WRITES_PER_ROUND = 150;

Deno.test("faults: kill -9 under write load loses no acknowledged write", async () => {
  const root = await tempDir("huskies-faults-kill9-");
  const a = await ServeNode.create(root, "a");
  const b = await ServeNode.create(root, "b");
  const nodes = [a, b];
  let load: WriteLoad | undefined;
  let monitor: OperationCountMonitor | undefined;
  try {
    await a.trust([b.nodeId]);
    await b.trust([a.nodeId]);
    await b.start([]);
    await a.start(["--rendezvous", b.syncUrl]);
    monitor = new OperationCountMonitor(b);
    load = new WriteLoad(a, "K");
    for (let round = 1; round <= ROUNDS; round++) {
      await load.acknowledged(round * WRITES_PER_ROUND, 60_000);
      await a.kill9();
      await a.start();
    }
    await load.acknowledged((ROUNDS + 0.5) * WRITES_PER_ROUND, 60_000);
    await load.stop();
    const converged = await waitConverged(nodes, 20_000);
    await monitor.stop();
    const lost = { a: await lostWrites(a, load.acked), b: await lostWrites(b, load.acked) };
    const forks = converged.statuses.map((s) => s.forks.length);
    figure(
      `kill -9 x${ROUNDS}: ${load.acked.size} acknowledged writes, lost a=${lost.a.length} ` +
        `b=${lost.b.length}, forks ${forks.join("/")}, ${converged.operations} operations, ` +
        `healthy peer decreases ${monitor.decreases.length}`,
    );
    assert.deepEqual(lost, { a: [], b: [] }, "acknowledged writes lost");
    assert.deepEqual(forks, [0, 0], "forks reported");
    assert.deepEqual(monitor.decreases, [], "the healthy peer lost operations");
  } finally {
    await load?.stop();
    await monitor?.stop();
    for (const node of nodes) await node.dispose();
    await removeDir(root);
  }
});
