/**
 * The fan-out writer alone (a HuskiesNode in memory committing `rate` 100-byte
 * updates/s, no session), to see its garbage collections apart from the
 * subscribers': run with `--v8-flags=--trace-gc`.
 *
 * Usage: deno run -A --v8-flags=--trace-gc scripts/proto/writer_gc.ts [updates] [rate]
 */
import { HuskiesNode } from "../../sync/node.ts";
import { nowMs, stampedValue } from "../compare/proc.ts";

const updates = Number(Deno.args[0] ?? 5000);
const rate = Number(Deno.args[1] ?? 1000);
const writer = await HuskiesNode.open({ open: true });
const tick = () => new Promise((resolve) => setTimeout(resolve, 1));
const start = nowMs();
console.log(`start ${(start - performance.timeOrigin).toFixed(0)}`);
let made = 0;
while (made < updates) {
  const due = Math.min(updates, Math.floor((nowMs() - start) * rate / 1000));
  for (; made < due; made++) {
    writer.replica.commit([{
      type: "update",
      path: ["items", `F-${made % 100}`],
      fields: { value: stampedValue(nowMs()) },
    }]);
  }
  await tick();
}
await writer.close();
Deno.exit(0);
