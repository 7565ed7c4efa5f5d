/**
 * Fault case 5 (issue 9): a partition between a spoke and its hub, made by an
 * in-process TCP proxy that stops forwarding without closing anything. With
 * the default settings, both nodes must notice the dead link within the
 * heartbeat window (5 s heartbeat, dropped after 15 s of silence) and
 * converge within seconds of the heal.
 */
import assert from "node:assert/strict";
import { crdtSyncHandler, HuskiesNode } from "../../mod.ts";
import { figure, until } from "./harness.ts";
import { PartitionProxy } from "./partition_proxy.ts";

/** Silence after which a peer is dropped (issue 9's suggested default). */
const SILENCE_LIMIT_MS = 15_000;
/** The heartbeat window plus the session tick's granularity and scheduling slack. */
const DETECT_WITHIN_MS = SILENCE_LIMIT_MS + 2_000;
/** "Converged within seconds of healing." */
const CONVERGE_WITHIN_MS = 10_000;

function linked(node: HuskiesNode, peer: string): boolean {
  return node.sessions().some((session) => session.peer === peer);
}

function liveWith(node: HuskiesNode, peer: string): boolean {
  return node.sessions().some((session) =>
    session.peer === peer && session.stats().state === "live"
  );
}

/** Ms until `condition` holds (polled every 20 ms), or undefined after `timeoutMs`. */
async function timeUntil(condition: () => boolean, timeoutMs: number): Promise<number | undefined> {
  const start = Date.now();
  try {
    await until("condition", () => (condition() ? true : undefined), timeoutMs, 20);
    return Date.now() - start;
  } catch {
    return undefined;
  }
}

Deno.test("faults: a partition is detected within the heartbeat window and heals in seconds", async () => {
  const hub = await HuskiesNode.open({ open: false });
  const spoke = await HuskiesNode.open({ open: false });
  hub.trust.add(spoke.nodeId, "write");
  spoke.trust.add(hub.nodeId, "write");
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    crdtSyncHandler(hub),
  );
  const proxy = new PartitionProxy(server.addr.port);
  try {
    spoke.connect(`ws://127.0.0.1:${proxy.port}/crdt-sync`);
    for (let i = 0; i < 20; i++) {
      hub.pipeline.put(`H-${i}`, { stage: "coding" });
      spoke.pipeline.put(`S-${i}`, { stage: "qa" });
    }
    await until(
      "both sides live and converged",
      () => {
        const ok = liveWith(hub, spoke.nodeId) && liveWith(spoke, hub.nodeId) &&
          hub.replica.stateHash() === spoke.replica.stateHash();
        return ok ? true : undefined;
      },
      10_000,
      20,
    );

    proxy.partition();
    // Both sides keep working apart.
    for (let i = 20; i < 120; i++) {
      hub.pipeline.put(`H-${i}`, { stage: "coding" });
      spoke.pipeline.put(`S-${i}`, { stage: "qa" });
    }
    const [spokeDetect, hubDetect] = await Promise.all([
      timeUntil(() => !linked(spoke, hub.nodeId), DETECT_WITHIN_MS),
      timeUntil(() => !linked(hub, spoke.nodeId), DETECT_WITHIN_MS),
    ]);

    proxy.heal();
    const converge = await timeUntil(
      () =>
        liveWith(hub, spoke.nodeId) && liveWith(spoke, hub.nodeId) &&
        hub.replica.stateHash() === spoke.replica.stateHash(),
      CONVERGE_WITHIN_MS + 10_000,
    );
    const show = (ms: number | undefined, bound: number) =>
      ms === undefined ? `not within ${bound} ms` : `${ms} ms`;
    figure(
      `partition: detected by the spoke after ${show(spokeDetect, DETECT_WITHIN_MS)}, by the hub ` +
        `after ${show(hubDetect, DETECT_WITHIN_MS)}; converged ${
          show(converge, CONVERGE_WITHIN_MS + 10_000)
        } after the heal (${hub.replica.size} operations each)`,
    );
    assert.ok(spokeDetect !== undefined, "the spoke did not notice the dead link");
    assert.ok(hubDetect !== undefined, "the hub did not notice the dead link");
    assert.ok(
      converge !== undefined && converge <= CONVERGE_WITHIN_MS,
      `not converged within ${CONVERGE_WITHIN_MS} ms of the heal`,
    );
  } finally {
    // The proxy first: a session on a black-holed link would wait for its close handshake.
    await proxy.close();
    await spoke.close();
    await hub.close();
    await server.shutdown();
  }
});

/** A node must stop promptly even when a peer's link is dead (`serve` stops on SIGTERM with it). */
const CLOSE_WITHIN_MS = 5_000;

Deno.test("faults: a node closes promptly while its link is partitioned", async () => {
  const hub = await HuskiesNode.open({ open: false });
  const spoke = await HuskiesNode.open({ open: false });
  hub.trust.add(spoke.nodeId, "write");
  spoke.trust.add(hub.nodeId, "write");
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    crdtSyncHandler(hub),
  );
  const proxy = new PartitionProxy(server.addr.port);
  try {
    spoke.connect(`ws://127.0.0.1:${proxy.port}/crdt-sync`);
    await until(
      "both sides live",
      () => {
        return liveWith(hub, spoke.nodeId) && liveWith(spoke, hub.nodeId) ? true : undefined;
      },
      10_000,
      20,
    );
    proxy.partition();
    const started = Date.now();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const closed = await Promise.race([
      spoke.close().then(() => Date.now() - started),
      new Promise<undefined>((resolve) =>
        timer = setTimeout(() => resolve(undefined), CLOSE_WITHIN_MS)
      ),
    ]);
    clearTimeout(timer);
    figure(
      `close during a partition: ${
        closed === undefined ? `not returned within ${CLOSE_WITHIN_MS} ms` : `${closed} ms`
      }`,
    );
    assert.ok(closed !== undefined, `close() did not return within ${CLOSE_WITHIN_MS} ms`);
  } finally {
    await proxy.close();
    await spoke.close();
    await hub.close();
    await server.shutdown();
  }
});
