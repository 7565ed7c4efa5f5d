import assert from "node:assert/strict";
import { HttpApp } from "../cli/http/app.ts";
import { EventLoopLagMonitor, sampleProcess } from "../cli/process_metrics.ts";
import { silentLogger } from "../sync/logger.ts";
import { HuskiesNode } from "../sync/node.ts";

const TOKEN = "e".repeat(64);
const LOCAL = {
  remoteAddr: { transport: "tcp", hostname: "127.0.0.1", port: 50000 },
  completed: Promise.resolve(),
} as unknown as Deno.ServeHandlerInfo;

Deno.test("the lag monitor sees a blocked event loop", async () => {
  const monitor = new EventLoopLagMonitor(20);
  try {
    await new Promise((resolve) => setTimeout(resolve, 60));
    const until = performance.now() + 200;
    while (performance.now() < until) {
      // Block the loop the way a long synchronous task would.
    }
    await new Promise((resolve) => setTimeout(resolve, 60));
    const { maxSeconds } = monitor.take();
    assert.ok(maxSeconds >= 0.15, `a 200 ms block shows as ${maxSeconds} s of lag`);
    assert.ok(monitor.take().maxSeconds < maxSeconds, "take() resets the maximum");
  } finally {
    monitor.stop();
  }
  const sample = sampleProcess();
  assert.ok(sample.cpuSeconds > 0 && sample.residentBytes > 0);
});

Deno.test("admin writes feed the write latency and applied batch histograms", async () => {
  const node = await HuskiesNode.open({});
  const app = new HttpApp({
    node,
    version: "t",
    adminToken: TOKEN,
    urls: { sync: "", status: "" },
    open: false,
    logger: silentLogger,
  });
  try {
    for (const id of ["S-1", "S-2", "S-3"]) {
      const response = await app.handle(
        new Request(`http://127.0.0.1:1/admin/item?id=${id}`, {
          method: "PUT",
          headers: { authorization: `Bearer ${TOKEN}` },
          body: '{"stage":"qa"}',
        }),
        LOCAL,
      );
      assert.equal(response.status, 200);
      await response.body?.cancel();
    }
    const text = app.metrics();
    assert.match(text, /^huskies_local_write_duration_seconds_count 3$/m);
    assert.match(text, /^huskies_applied_batch_operations_count\{origin="local"\} 3$/m);
    assert.match(text, /^huskies_applied_batch_operations_count\{origin="peer"\} 0$/m);
    const bytes = Number(
      /^huskies_applied_batch_bytes_sum\{origin="local"\} (\d+)$/m.exec(text)?.[1],
    );
    assert.ok(bytes > 3 * 200, `three signed operations of a few hundred bytes, got ${bytes}`);
  } finally {
    app.close();
    await node.close();
  }
});
