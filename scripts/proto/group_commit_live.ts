/**
 * Measures group commit on the real receive path (issue 11): a replica on a
 * SqliteStore receives signed operations one per frame, one frame per
 * event-loop turn as from a socket, with `groupCommitMs` 0 (one transaction
 * per operation) and 5 (the node's setting), alternating runs. Prints the
 * time per received operation (verification included, as in production).
 *
 * Usage: deno run -A scripts/proto/group_commit_live.ts [--ops 5000] [--runs 3]
 */
import { join } from "node:path";
import { parseArgs } from "node:util";
import { Identity } from "../../crdt/identity.ts";
import { type Operation, signOperation } from "../../crdt/operation.ts";
import { Replica } from "../../crdt/replica.ts";
import { SqliteStore } from "../../crdt/sqlite_store.ts";

const { values: flags } = parseArgs({
  args: Deno.args,
  options: { ops: { type: "string", default: "5000" }, runs: { type: "string", default: "3" } },
});
const total = Number(flags.ops);
const author = Identity.generate();
const ops: Operation[] = [];
for (let seq = 1, prev: string | null = null; seq <= total; seq++) {
  const op: Operation = signOperation({
    author: author.nodeId,
    seq,
    prev,
    deps: [],
    time: seq,
    mutation: { type: "update", path: ["items", `F-${seq % 100}`], fields: { v: "x".repeat(100) } },
  }, author);
  prev = op.id;
  ops.push(op);
}
const turn = () => new Promise<void>((resolve) => setTimeout(resolve, 0));

async function run(groupCommitMs: number): Promise<number> {
  const dir = await Deno.makeTempDir({ prefix: "huskies-group-" });
  const store = SqliteStore.open(join(dir, "ops.db"), { groupCommitMs });
  const replica = Replica.open({ identity: Identity.generate(), store });
  let busy = 0;
  for (const op of ops) {
    const t = performance.now();
    replica.receive([op]);
    busy += performance.now() - t;
    await turn();
  }
  replica.close();
  await Deno.remove(dir, { recursive: true });
  return busy * 1000 / total;
}

const samples: Record<string, number[]> = { "0": [], "5": [] };
for (let r = 0; r < Number(flags.runs); r++) {
  for (const ms of r % 2 === 0 ? [0, 5] : [5, 0]) samples[ms].push(await run(ms));
}
const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
console.log(JSON.stringify({
  ops: total,
  us_per_received_op_one_transaction_each: median(samples["0"]),
  us_per_received_op_group_commit_5ms: median(samples["5"]),
  load: Deno.loadavg(),
}));
