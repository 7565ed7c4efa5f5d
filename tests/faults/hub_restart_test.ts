/**
 * Fault case 4 (issue 9): a hub restarts while 200 spokes on one address
 * (all on 127.0.0.1) keep sessions with it, over real sockets, with library
 * nodes in this process. With the default settings every spoke must be back
 * within 30 s, reconnects must spread out rather than arrive in one second,
 * and every spoke must resync.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { crdtSyncHandler, HuskiesNode } from "../../mod.ts";
import { removeDir, tempDir } from "../cli_helpers.ts";
import { busiestWindow, figure, median, until } from "./harness.ts";

const SPOKES = 200;
/** How long the hub stays down: about what a process restart takes, so spokes have retried. */
const HUB_DOWN_MS = 5_000;
/** The promise: every spoke back within this long of the hub's return. */
const BACK_WITHIN_MS = 30_000;

interface Hub {
  node: HuskiesNode;
  server: Deno.HttpServer<Deno.NetAddr>;
}

async function startHub(dataDir: string, port: number): Promise<Hub> {
  const node = await HuskiesNode.open({ dataDir, open: false });
  const server = Deno.serve({ hostname: "127.0.0.1", port, onListen() {} }, crdtSyncHandler(node));
  return { node, server };
}

async function stopHub(hub: Hub): Promise<void> {
  await hub.node.close();
  await hub.server.shutdown();
}

function connectedToHub(spoke: HuskiesNode, hubId: string): boolean {
  return spoke.sessions().some((session) => session.peer === hubId);
}

Deno.test("faults: hub restart with 200 spokes on one address: all back within 30 s, spread out", async () => {
  const root = await tempDir("huskies-faults-hub-");
  const hubDir = join(root, "hub");
  await Deno.mkdir(hubDir);
  const spokes: HuskiesNode[] = [];
  let hub: Hub | undefined;
  try {
    for (let i = 0; i < SPOKES; i++) spokes.push(await HuskiesNode.open({ open: false }));
    hub = await startHub(hubDir, 0);
    const hubId = hub.node.nodeId;
    const port = hub.server.addr.port;
    const url = `ws://127.0.0.1:${port}/crdt-sync`;
    for (const spoke of spokes) {
      hub.node.trust.add(spoke.nodeId, "write");
      spoke.trust.add(hubId, "write");
    }
    hub.node.pipeline.put("BEFORE", { stage: "coding" });
    for (const spoke of spokes) spoke.connect(url);
    await until(
      "every spoke connected",
      () => {
        const missing = spokes.filter((spoke) => !connectedToHub(spoke, hubId)).length;
        return missing === 0 ? true : undefined;
      },
      60_000,
      50,
    );

    await stopHub(hub);
    hub = undefined;
    await until(
      "every spoke to notice the hub is gone",
      () => {
        return spokes.every((spoke) => !connectedToHub(spoke, hubId)) ? true : undefined;
      },
      10_000,
      20,
    );
    const downAt = Date.now();
    await until(
      "the hub's downtime to pass",
      () => {
        return Date.now() - downAt >= HUB_DOWN_MS ? true : undefined;
      },
      HUB_DOWN_MS + 1000,
      50,
    );

    hub = await startHub(hubDir, port);
    const upAt = Date.now();
    const backAfter = new Map<HuskiesNode, number>();
    try {
      await until(
        "every spoke back",
        () => {
          const now = Date.now();
          for (const spoke of spokes) {
            if (!backAfter.has(spoke) && connectedToHub(spoke, hubId)) {
              backAfter.set(spoke, now - upAt);
            }
          }
          return backAfter.size === SPOKES ? true : undefined;
        },
        BACK_WITHIN_MS,
        20,
      );
    } catch {
      // Reported below with the figures.
    }
    const times = [...backAfter.values()];
    const busiest = busiestWindow(times, 1000);
    figure(
      `hub restart: ${backAfter.size} of ${SPOKES} spokes back within ${BACK_WITHIN_MS / 1000} s ` +
        `(hub down ${HUB_DOWN_MS} ms); reconnect after the hub's return min ${
          Math.min(...times)
        } ms, median ${median(times)} ms, max ${Math.max(...times)} ms; busiest second ` +
        `holds ${busiest} reconnects`,
    );
    assert.equal(backAfter.size, SPOKES, "spokes not back within 30 s");
    assert.ok(
      busiest <= SPOKES / 2,
      `${busiest} of ${SPOKES} spokes reconnected within one second: reconnects are not spread`,
    );

    // Every spoke resyncs: a change on the hub reaches all of them.
    const { node } = hub;
    node.pipeline.put("AFTER", { stage: "qa" });
    const hash = node.replica.stateHash();
    await until(
      "every spoke to hold the hub's state",
      () => {
        return spokes.every((spoke) => spoke.replica.stateHash() === hash) ? true : undefined;
      },
      15_000,
      50,
    );
  } finally {
    await Promise.all(spokes.map((spoke) => spoke.close()));
    if (hub) await stopHub(hub);
    await removeDir(root);
  }
});
