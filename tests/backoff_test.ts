import assert from "node:assert/strict";
import { backoffDelay } from "../sync/backoff.ts";
import { MemoryLogger } from "../sync/logger.ts";
import { HuskiesNode, RENDEZVOUS_ERROR_THRESHOLD } from "../sync/node.ts";
import { eventually, serveNode } from "./net_helpers.ts";

Deno.test("backoff doubles from 1 s and is capped at 30 s", () => {
  const delays = [1, 2, 3, 4, 5, 6, 7, 20].map((n) => backoffDelay(n, { jitter: 0 }));
  assert.deepEqual(delays, [1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
});

Deno.test("backoff jitter only shortens the delay, by at most its fraction", () => {
  assert.equal(backoffDelay(3, { jitter: 0.2, random: () => 0 }), 4000);
  assert.equal(backoffDelay(3, { jitter: 0.2, random: () => 0.999999 }), 3200);
  for (let i = 0; i < 100; i++) {
    const delay = backoffDelay(10, { jitter: 0.2 });
    assert.ok(delay >= 24_000 && delay <= 30_000, `delay ${delay}`);
  }
});

Deno.test("by default the delay spreads over the whole window (full jitter)", () => {
  assert.equal(backoffDelay(3, { random: () => 0 }), 4000);
  assert.equal(backoffDelay(3, { random: () => 0.5 }), 2000);
  assert.equal(backoffDelay(3, { random: () => 0.999999 }), 0);
  // 2,000 draws over the 30 s window: every tenth of it gets a fair share (uniform: 200 each).
  const deciles = Array<number>(10).fill(0);
  for (let i = 0; i < 2000; i++) {
    const delay = backoffDelay(10);
    assert.ok(delay >= 0 && delay <= 30_000, `delay ${delay}`);
    deciles[Math.min(9, Math.floor(delay / 3000))]++;
  }
  for (const count of deciles) assert.ok(count > 120 && count < 280, `deciles ${deciles}`);
});

/** A port with nothing listening on it. */
function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

Deno.test("rendezvous failures log at WARN, then at ERROR from the 10th in a row", async () => {
  const logger = new MemoryLogger();
  const node = await HuskiesNode.open({ logger });
  try {
    node.connect(`ws://127.0.0.1:${freePort()}/crdt-sync`, { initialMs: 1, maxMs: 2 });
    const failures = () => logger.records.filter((r) => r.message.startsWith("rendezvous"));
    await eventually(() => failures().length >= RENDEZVOUS_ERROR_THRESHOLD + 2, "a dozen failures");
    const levels = failures().map((r) => r.level);
    assert.deepEqual(levels.slice(0, RENDEZVOUS_ERROR_THRESHOLD - 1), Array(9).fill("warn"));
    assert.deepEqual(
      levels.slice(RENDEZVOUS_ERROR_THRESHOLD - 1),
      levels.slice(9).map(() => "error"),
    );
  } finally {
    await node.close();
  }
});

Deno.test("rendezvous backoff starts over after a healthy session", async () => {
  const port = freePort();
  const logger = new MemoryLogger();
  const spoke = await HuskiesNode.open({ open: true, logger });
  const retries = () =>
    logger.records.filter((r) =>
      /^rendezvous (connection lost|dial failed); retrying$/.test(r.message)
    );
  try {
    const client = spoke.connect(`ws://127.0.0.1:${port}/crdt-sync`, {
      initialMs: 5,
      maxMs: 20,
      healthyAfterMs: 50,
    });
    await eventually(() => client.info().failures >= 3, "failures while nothing listens");
    const hub = await serveNode({}, port);
    try {
      await eventually(() => client.info().state === "connected", "connected");
      // A session that lasts past healthyAfterMs counts as healthy.
      await eventually(() => Date.now() - spoke.sessions()[0].stats().since >= 60, "healthy");
    } finally {
      await hub.stop();
    }
    const before = retries().length;
    await eventually(() => retries().length > before + 1, "retries after the session");
    const [afterSession, next] = retries().slice(before);
    assert.equal(afterSession.fields.failures, 0, "the healthy session reset the count");
    assert.equal(next.fields.failures, 1);
  } finally {
    await spoke.close();
  }
});
