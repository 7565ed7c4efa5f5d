/**
 * Prototype (issue 11, "group commit on the live path"): the cost per received
 * operation of `SqliteStore.append` with one transaction per operation (the
 * live path today) against one transaction per group of N (what a short
 * commit window, or "whatever has queued", would give), both with
 * `durable: false` as for operations received from peers.
 *
 * Usage: deno run -A scripts/proto/group_commit.ts [--ops 20000]
 */
import { join } from "node:path";
import { parseArgs } from "node:util";
import { Identity } from "../../crdt/identity.ts";
import { type Operation, signOperation } from "../../crdt/operation.ts";
import { SqliteStore } from "../../crdt/sqlite_store.ts";

const { values: flags } = parseArgs({
  args: Deno.args,
  options: { ops: { type: "string", default: "20000" } },
});
const total = Number(flags.ops);
const id = Identity.generate();
const ops: Operation[] = [];
for (let seq = 1, prev: string | null = null; seq <= total; seq++) {
  const op: Operation = signOperation({
    author: id.nodeId,
    seq,
    prev,
    deps: [],
    time: seq,
    mutation: {
      type: "update",
      path: ["items", `F-${seq % 100}`],
      fields: { value: "x".repeat(100) },
    },
  }, id);
  prev = op.id;
  ops.push(op);
}

const dir = await Deno.makeTempDir({ prefix: "huskies-proto-commit-" });
const rows: Record<string, number> = {};
try {
  for (const group of [1, 2, 8, 32, 128, 1000]) {
    const store = SqliteStore.open(join(dir, `g${group}.db`));
    const t = performance.now();
    for (let i = 0; i < ops.length; i += group) {
      store.append(ops.slice(i, i + group), { durable: false });
    }
    rows[`group_${group}_us_per_op`] =
      Math.round((performance.now() - t) * 1000 / ops.length * 10) /
      10;
    if (store.count() !== ops.length) throw new Error("lost operations");
    store.close();
  }
} finally {
  await Deno.remove(dir, { recursive: true });
}
console.log(JSON.stringify({
  ops: total,
  ...rows,
  load: Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" "),
}));
