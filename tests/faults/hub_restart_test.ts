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
import { busiestWindow, figure, median, ServeNode, until } from "./harness.ts";

const SPOKES = 200;
/** How long the hub stays down: about what a process restart takes, so spokes have retried. */
const HUB_DOWN_MS = 5_000;
/**
 * Most reconnects allowed within any one second. With full jitter over the
 * backoff window the busiest second holds about 50 of 200 (at most 70 in 200
 * simulated restarts of this case); with delays varied by 20% nearly all 200
 * arrive together (the issue measured 112 of 200 in one second).
 */
const MOST_IN_ONE_SECOND = SPOKES * 0.4;
/** The promise: every spoke back within this long of the hub's return. */
const BACK_WITHIN_MS = 30_000;

/** A hub the test can stop and start again on the same port. */
interface Hub {
  /** The hub's node id. */
  readonly nodeId: string;
  /** Its sync URL. */
  readonly url: string;
  /** Trusts the spokes' keys. */
  trust(keys: string[]): Promise<void>;
  /** Starts it (on the same port after the first time). */
  start(): Promise<void>;
  /** Stops it the way the case says. */
  stop(): Promise<void>;
  /** Puts an item on it. */
  change(id: string): Promise<void>;
}

/** A library hub in this process: stopped with `node.close()` (sessions close with 1001). */
async function libraryHub(dataDir: string): Promise<Hub> {
  let node = await HuskiesNode.open({ dataDir, open: false });
  const nodeId = node.nodeId;
  let server: Deno.HttpServer<Deno.NetAddr> | undefined;
  let port = 0;
  return {
    nodeId,
    get url() {
      return `ws://127.0.0.1:${port}/crdt-sync`;
    },
    trust(keys) {
      for (const key of keys) node.trust.add(key, "write");
      return Promise.resolve();
    },
    async start() {
      if (server) return;
      if (port !== 0) node = await HuskiesNode.open({ dataDir, open: false });
      server = Deno.serve({ hostname: "127.0.0.1", port, onListen() {} }, crdtSyncHandler(node));
      port = server.addr.port;
    },
    async stop() {
      if (!server) return;
      await node.close();
      await server.shutdown();
      server = undefined;
    },
    change(id) {
      node.pipeline.put(id, { stage: "qa" });
      return Promise.resolve();
    },
  };
}

/** A `huskies serve` hub with its default settings, stopped with `kill -9`. */
async function serveHub(root: string): Promise<Hub> {
  const serve = await ServeNode.create(root, "hub");
  return {
    nodeId: serve.nodeId,
    get url() {
      return serve.syncUrl;
    },
    trust: (keys) => serve.trust(keys),
    start: () => serve.start(serve.port === 0 ? [] : undefined),
    stop: () => serve.kill9(),
    async change(id) {
      const outcome = await serve.put(id, id);
      if (!outcome.ok) throw new Error(`the hub refused a write: ${outcome.message}`);
    },
  };
}

function connectedToHub(spoke: HuskiesNode, hubId: string): boolean {
  return spoke.sessions().some((session) => session.peer === hubId);
}

async function hubRestartCase(makeHub: (root: string) => Promise<Hub>, what: string) {
  const root = await tempDir("huskies-faults-hub-");
  const spokes: HuskiesNode[] = [];
  let hub: Hub | undefined;
  try {
    hub = await makeHub(root);
    const hubId = hub.nodeId;
    for (let i = 0; i < SPOKES; i++) {
      const spoke = await HuskiesNode.open({ open: false });
      spoke.trust.add(hubId, "write");
      spokes.push(spoke);
    }
    await hub.trust(spokes.map((spoke) => spoke.nodeId));
    await hub.start();
    await hub.change("BEFORE");
    for (const spoke of spokes) spoke.connect(hub.url);
    await until(
      "every spoke connected",
      () => {
        const missing = spokes.filter((spoke) => !connectedToHub(spoke, hubId)).length;
        return missing === 0 ? true : undefined;
      },
      60_000,
      50,
    );

    await hub.stop();
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

    await hub.start();
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
      `hub restart (${what}): ${backAfter.size} of ${SPOKES} spokes back within ` +
        `${BACK_WITHIN_MS / 1000} s (hub down ${HUB_DOWN_MS} ms); reconnect after the hub's ` +
        `return min ${Math.min(...times)} ms, median ${median(times)} ms, max ${
          Math.max(...times)
        } ms; busiest second holds ${busiest} reconnects`,
    );
    assert.equal(backAfter.size, SPOKES, "spokes not back within 30 s");
    assert.ok(
      busiest <= MOST_IN_ONE_SECOND,
      `${busiest} of ${SPOKES} spokes reconnected within one second: reconnects are not spread`,
    );

    // Every spoke resyncs: a change on the hub reaches all of them.
    await hub.change("AFTER");
    await until(
      "every spoke to hold the hub's changes",
      () => {
        const synced = spokes.every((spoke) =>
          spoke.pipeline.get("BEFORE") !== undefined && spoke.pipeline.get("AFTER") !== undefined
        );
        return synced ? true : undefined;
      },
      15_000,
      50,
    );
  } finally {
    await Promise.all(spokes.map((spoke) => spoke.close()));
    await hub?.stop();
    await removeDir(root);
  }
}

Deno.test("faults: library hub restart with 200 spokes on one address: back within 30 s, spread out", async () => {
  await hubRestartCase(async (root) => {
    const dir = join(root, "hub");
    await Deno.mkdir(dir);
    return await libraryHub(dir);
  }, "library hub, node.close()");
});

Deno.test("faults: kill -9 of a serve hub with 200 spokes on one address: back within 30 s, spread out", async () => {
  await hubRestartCase(serveHub, "huskies serve, kill -9");
});
