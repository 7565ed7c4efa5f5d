/**
 * A huskies hub for the side-by-side harness: a library node with a SQLite
 * data folder (as `huskies serve` keeps one), open mesh, and the per-address
 * admission limit lifted because every benchmark peer comes from 127.0.0.1.
 * Prints `{"port": N}`; SIGTERM closes the node and exits.
 *
 * `live batch ms` overrides the sessions' live batching window (default 2).
 *
 * Usage: deno run -A scripts/compare/huskies_server.ts <data dir> [live batch ms]
 */
import { openBenchHub } from "./bench_hub.ts";

const [dataDir, liveBatchMs] = Deno.args;
const { hub, server } = await openBenchHub(dataDir, liveBatchMs);
console.log(JSON.stringify({ port: server.addr.port }));
Deno.addSignalListener("SIGTERM", async () => {
  await hub.close();
  await server.shutdown();
  Deno.exit(0);
});
