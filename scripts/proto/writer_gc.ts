/**
 * The fan-out writer alone (a HuskiesNode in memory committing `rate` 100-byte
 * updates/s, no session), to see its garbage collections apart from the
 * subscribers': run with `--v8-flags=--trace-gc`.
 *
 * Usage: deno run -A --v8-flags=--trace-gc scripts/proto/writer_gc.ts [updates] [rate]
 */
import { HuskiesNode } from "../../sync/node.ts";
import { nowMs, writeAtRate } from "../compare/proc.ts";

const updates = Number(Deno.args[0] ?? 5000);
const rate = Number(Deno.args[1] ?? 1000);
const writer = await HuskiesNode.open({ open: true });
const start = nowMs();
console.log(`start ${(start - performance.timeOrigin).toFixed(0)}`);
await writeAtRate(writer.replica, updates, rate, start);
await writer.close();
Deno.exit(0);
