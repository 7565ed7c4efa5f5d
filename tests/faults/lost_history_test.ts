/**
 * Fault cases 2 and 3 (issue 9): a node that lost its own recent operations
 * (a truncated write-ahead log, or an older `ops.db` restored from a backup)
 * restarts, with its peer reachable or not, while a client writes to it at
 * once. The promise: 0 forks, 0 acknowledged writes lost on any node, and the
 * healthy peer never loses operations; the node accepts writes again by
 * itself once its peer has given its operations back.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { removeDir, tempDir } from "../cli_helpers.ts";
import {
  backupStore,
  figure,
  lostWrites,
  OperationCountMonitor,
  restoreStore,
  ServeNode,
  storedOperations,
  truncateWal,
  until,
  waitConverged,
  WriteLoad,
} from "./harness.ts";

/** How the node loses its recent history. */
type Damage = "truncated WAL" | "restored backup";

/**
 * How long the client keeps writing to the damaged node while its peer is
 * down: longer than a start-up grace period, so a node that signs after the
 * grace without knowing its own head is caught.
 */
const ALONE_MS = 10_000;
/**
 * Bound on the node accepting writes again after its restart (and its peer's
 * return). While the peer was down the node's redials backed off; the next
 * one may be up to the 30 s backoff cap away (full jitter), plus the dial and the catch-up.
 */
const RECOVERY_MS = 50_000;
/** Bound on convergence once writes stopped. */
const CONVERGE_MS = 10_000;

interface Trial {
  acked: number;
  lostA: number;
  lostB: number;
  forks: number[];
  decreases: { from: number; to: number }[];
  heldBefore: number;
  heldAfterDamage: number;
  peerFinal: number;
  converged: boolean;
  recoveredMs: number | undefined;
  refused: string;
  probe: string;
}

async function lostHistoryTrial(damage: Damage, peerReachable: boolean): Promise<Trial> {
  const root = await tempDir("huskies-faults-history-");
  const a = await ServeNode.create(root, "a");
  const b = await ServeNode.create(root, "b");
  const nodes = [a, b];
  const loads: WriteLoad[] = [];
  const monitor = new OperationCountMonitor(b);
  try {
    await a.trust([b.nodeId]);
    await b.trust([a.nodeId]);
    await b.start([]);
    await a.start(["--rendezvous", b.syncUrl]);

    // Phase 1, then a clean stop: these operations are in ops.db itself.
    const first = new WriteLoad(a, "P1");
    loads.push(first);
    await first.acknowledged(100, 30_000);
    await first.stop();
    await waitConverged(nodes, 15_000);
    assert.equal(await a.terminate(), 0, "a clean stop");
    const backup = join(root, "ops-backup.db");
    if (damage === "restored backup") await backupStore(a.dataDir, backup);
    await a.start();

    // Phase 2: operations the damage takes away from a (still in the WAL, or newer than the backup).
    const second = new WriteLoad(a, "P2");
    loads.push(second);
    await second.acknowledged(150, 30_000);
    await second.stop();
    const before = await waitConverged(nodes, 15_000);
    await a.kill9();
    if (damage === "truncated WAL") await truncateWal(a.dataDir);
    else await restoreStore(a.dataDir, backup);
    const heldAfterDamage = await storedOperations(a);
    assert.ok(
      heldAfterDamage < before.operations,
      `the damage must take operations away (a holds ${heldAfterDamage} of ${before.operations})`,
    );

    if (!peerReachable) await b.terminate();
    // The client writes from the moment the node answers.
    const third = new WriteLoad(a, "R", 2);
    loads.push(third);
    await a.start();
    const restartedAt = Date.now();
    if (!peerReachable) {
      await until(
        "the time alone to pass",
        () => {
          return Date.now() - restartedAt >= ALONE_MS ? true : undefined;
        },
        ALONE_MS + 1000,
        100,
      );
      await b.start();
    }
    // The node accepts writes again by itself once it has its history back.
    let recoveredMs: number | undefined;
    try {
      await third.acknowledged(third.acked.size + 20, RECOVERY_MS);
      recoveredMs = Date.now() - restartedAt;
    } catch {
      // Never recovered: reported and asserted below, after the other figures.
    }
    await third.stop();
    const refused = JSON.stringify(Object.fromEntries(third.refused));

    // A user's write through the CLI: acknowledged must mean readable.
    const put = await a.cli(["item", "put", "PROBE-1", "--name", "probe"]);
    const get = await a.cli(["item", "get", "PROBE-1"]);
    const probe = `put exit ${put.code}, get exit ${get.code}`;

    let forks: number[] = [];
    let converged = true;
    try {
      forks = (await waitConverged(nodes, CONVERGE_MS)).statuses.map((s) => s.forks.length);
    } catch {
      converged = false;
      forks = await Promise.all(nodes.map(async (node) => (await node.status()).forks.length));
    }
    await monitor.stop();
    const acked = new Map([...first.acked, ...second.acked, ...third.acked]);
    if (put.code === 0) acked.set("PROBE-1", "probe");
    return {
      acked: acked.size,
      lostA: (await lostWrites(a, acked)).length,
      lostB: (await lostWrites(b, acked)).length,
      forks,
      converged,
      decreases: monitor.decreases,
      heldBefore: before.operations,
      heldAfterDamage,
      peerFinal: (await b.status()).operations,
      recoveredMs,
      refused,
      probe,
    };
  } finally {
    for (const load of loads) await load.stop();
    await monitor.stop();
    for (const node of nodes) await node.dispose();
    await removeDir(root);
  }
}

async function lostHistoryCase(damage: Damage, peerReachable: boolean, trials: number) {
  for (let i = 1; i <= trials; i++) {
    const trial = await lostHistoryTrial(damage, peerReachable);
    figure(
      `${damage}, peer ${peerReachable ? "reachable" : "not reachable"}, trial ${i}: ` +
        `a held ${trial.heldAfterDamage} of ${trial.heldBefore} ops after the damage; ` +
        `${trial.acked} acknowledged writes, lost a=${trial.lostA} b=${trial.lostB}; forks ` +
        `${trial.forks.join("/")}; healthy peer decreases ${trial.decreases.length}` +
        `${trial.decreases.length ? ` (${JSON.stringify(trial.decreases[0])})` : ""}, ` +
        `ends with ${trial.peerFinal}; writes accepted again ${
          trial.recoveredMs === undefined ? "never" : `${trial.recoveredMs} ms`
        } after restart (refused by HTTP status: ${trial.refused}); probe ${trial.probe}; ` +
        `converged ${trial.converged}`,
    );
    const what = `trial ${i}`;
    assert.equal(trial.lostA + trial.lostB, 0, `${what}: acknowledged writes lost`);
    assert.deepEqual(trial.forks, [0, 0], `${what}: forks reported`);
    assert.deepEqual(trial.decreases, [], `${what}: the healthy peer lost operations`);
    assert.ok(trial.recoveredMs !== undefined, `${what}: the node never accepted writes again`);
    assert.equal(trial.probe, "put exit 0, get exit 0", `${what}: a CLI write after recovery`);
    assert.ok(trial.converged, `${what}: the nodes did not converge`);
  }
}

Deno.test("faults: truncated WAL restart, peer reachable, client writing at once", async () => {
  await lostHistoryCase("truncated WAL", true, 2);
});

Deno.test("faults: truncated WAL restart, peer not reachable", async () => {
  await lostHistoryCase("truncated WAL", false, 1);
});

Deno.test("faults: restored-backup restart, peer reachable, client writing at once", async () => {
  await lostHistoryCase("restored backup", true, 3);
});

Deno.test("faults: restored-backup restart, peer not reachable", async () => {
  await lostHistoryCase("restored backup", false, 1);
});
