/**
 * Finding 8: while the hub processed a burst of incoming frames, its queue
 * for a healthy spoke was not handed to the socket (its flush waited on a
 * timer the burst starved), so the spoke was dropped with 4508 although its
 * socket kept up. Now the queue is flushed as operations arrive, and only
 * what the spoke has not read counts against its limit. The spoke is a
 * separate `huskies serve` process, so it reads while the hub is busy.
 */
import assert from "node:assert/strict";
import { encodedSize } from "../../crdt/operation.ts";
import { CloseCode } from "../../protocol/close_codes.ts";
import { MemoryLogger } from "../../sync/logger.ts";
import { removeDir, ServeProcess, tempDir } from "../cli_helpers.ts";
import { identity, OpFactory } from "../helpers.ts";
import { eventually, RawPeer, serveNode } from "./helpers.ts";

const OPS = 3_000;
const LIMIT = 512 * 1024;

Deno.test("attack: a burst of incoming frames at the hub never drops a healthy spoke (4508)", async () => {
  const logger = new MemoryLogger();
  const hub = await serveNode({ maxOutboundBytes: LIMIT, logger });
  const codes: number[] = [];
  hub.node.on("session-closed", ({ code }) => codes.push(code));
  const writer = identity(462);
  const chain = new OpFactory().chain(writer, OPS);
  const burstBytes = chain.reduce((sum, op) => sum + encodedSize(op), 0);
  assert.ok(burstBytes > LIMIT, `the burst (${burstBytes} bytes) is over the spoke's limit`);
  const dir = await tempDir("huskies-attack-");
  const spoke = await ServeProcess.start([
    "--open",
    "--listen",
    "127.0.0.1:0",
    "--data-dir",
    dir,
    "--rendezvous",
    hub.url,
  ]);
  const burst = await RawPeer.connect(hub.url, writer);
  try {
    await hub.node.connected(spoke.nodeId, { timeoutMs: 15_000 });
    await eventually(
      () => hub.node.sessions().some((s) => s.peer === spoke.nodeId && s.isLive),
      "the spoke's session to be live",
    );
    burst.send({ type: "clock", clock: {}, heads: {} });
    // 3,000 operations (over the spoke's limit) in 60 frames, back to back.
    for (let i = 0; i < OPS; i += 50) burst.send({ type: "bulk", ops: chain.slice(i, i + 50) });
    const spokeOps = async () => {
      const response = await fetch(new URL("api/status", spoke.statusUrl));
      return (await response.json()).operations as number;
    };
    let held = 0;
    const deadline = Date.now() + 30_000;
    while (held < OPS && Date.now() < deadline && !codes.includes(CloseCode.SLOW_CONSUMER)) {
      held = await spokeOps();
    }
    const slow = logger.records.filter((r) => r.message.startsWith("peer fell"));
    assert.ok(!codes.includes(CloseCode.SLOW_CONSUMER), `no 4508: ${JSON.stringify(slow)}`);
    assert.ok(held >= OPS, `the spoke received every operation (${held})`);
  } finally {
    await burst.close();
    await spoke.stop();
    await hub.stop();
    await removeDir(dir);
  }
});
