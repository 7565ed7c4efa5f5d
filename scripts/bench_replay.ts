/**
 * Start-up and memory of a hub over a large store, in a fresh process so the
 * figures are the node's alone: opens a node on an empty data folder (the
 * baseline), then on `<data dir>` (replaying every operation), and prints
 * `{"replayMs", "operations", "rssBaseBytes", "rssBeforeGcBytes", "rssBytes", "rssPerOpBytes"}`.
 * RSS is read after a full garbage collection, so it counts what the node
 * keeps, not garbage from loading. Run by scripts/bench.ts.
 *
 * With `--drop-state`, the saved document is deleted from the store first, so
 * the open reads and applies every operation (as after a crash before the
 * first save).
 *
 * Usage: deno run -A --v8-flags=--expose-gc scripts/bench_replay.ts <data dir> <expected ops> [--drop-state]
 */
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { STORE_FILE_NAME } from "../data_dir.ts";
import { HuskiesNode } from "../sync/node.ts";
import { rssBytes } from "./compare/proc.ts";

const [dataDir, expectedArg, option] = Deno.args;
if (option === "--drop-state") {
  const db = new DatabaseSync(join(dataDir, STORE_FILE_NAME));
  db.exec("DELETE FROM state");
  db.close();
}
const collect = (globalThis as { gc?: () => void }).gc;
if (!collect) throw new Error("Cannot measure RSS: run with --v8-flags=--expose-gc");

const emptyDir = await Deno.makeTempDir({ prefix: "huskies-bench-empty-" });
try {
  const empty = await HuskiesNode.open({ dataDir: emptyDir, open: true });
  collect();
  const rssBaseBytes = rssBytes(Deno.pid);
  await empty.close();

  const started = performance.now();
  const node = await HuskiesNode.open({ dataDir, open: true });
  const replayMs = performance.now() - started;
  if (node.replica.size !== Number(expectedArg)) {
    throw new Error(`Cannot measure: replayed ${node.replica.size} of ${expectedArg} operations`);
  }
  const rssBeforeGcBytes = rssBytes(Deno.pid);
  collect();
  const rss = rssBytes(Deno.pid);
  console.log(JSON.stringify({
    replayMs,
    operations: node.replica.size,
    rssBaseBytes,
    rssBeforeGcBytes,
    rssBytes: rss,
    rssPerOpBytes: (rss - rssBaseBytes) / node.replica.size,
  }));
  await node.close();
} finally {
  await Deno.remove(emptyDir, { recursive: true });
}
