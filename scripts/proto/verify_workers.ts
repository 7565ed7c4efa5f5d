/**
 * Prototype (issue 11, "verification on two Workers"): how fast can 100k
 * received operations be parsed and verified on the main thread alone, and
 * with verification spread over N Workers while the main thread parses (it
 * needs the parsed operations to apply them)? Every figure includes the
 * cost of handing the wire text to the Workers and the verdicts back.
 *
 * Usage: deno run -A scripts/proto/verify_workers.ts [--workers 2] [--batch 500]
 */
import { parseArgs } from "node:util";
import { Identity, SignatureVerifier } from "../../crdt/identity.ts";
import {
  encodeOperation,
  type Operation,
  parseOperation,
  signOperation,
} from "../../crdt/operation.ts";
import { verifyOperation } from "../../crdt/signatures.ts";

const { values: flags } = parseArgs({
  args: Deno.args,
  options: { workers: { type: "string", default: "2" }, batch: { type: "string", default: "500" } },
});
const workerCount = Number(flags.workers);
const batchSize = Number(flags.batch);

const ids = Array.from({ length: 100 }, (_, i) => {
  const seed = new Uint8Array(32);
  new DataView(seed.buffer).setUint32(0, i + 1000);
  return Identity.fromSeed(seed);
});
const heads: (string | null)[] = ids.map(() => null);
const wire: string[] = [];
for (let round = 0, time = 0; round < 1000; round++) {
  for (let a = 0; a < ids.length; a++) {
    const op: Operation = signOperation({
      author: ids[a].nodeId,
      seq: round + 1,
      prev: heads[a],
      deps: [],
      time: ++time,
      mutation: { type: "update", path: ["items", `S-${a}`], fields: { retry_count: round } },
    }, ids[a]);
    heads[a] = op.id;
    wire.push(encodeOperation(op));
  }
}

function mainThreadOnly(): number {
  const verifier = new SignatureVerifier();
  const t = performance.now();
  for (const text of wire) {
    if (!verifyOperation(parseOperation(JSON.parse(text)), verifier)) throw new Error("invalid");
  }
  return performance.now() - t;
}

async function withWorkers(): Promise<number> {
  const workers = Array.from(
    { length: workerCount },
    () => new Worker(new URL("./verify_worker.ts", import.meta.url), { type: "module" }),
  );
  // Warm the workers (module load, key cache) outside the timed part.
  await Promise.all(workers.map((worker) =>
    new Promise((resolve) => {
      worker.onmessage = resolve;
      worker.postMessage({ batch: -1, ops: wire.slice(0, 200) });
    })
  ));
  const t = performance.now();
  const batches = Math.ceil(wire.length / batchSize);
  const verdicts: Uint8Array[] = new Array(batches);
  let answered = 0;
  const done = Promise.withResolvers<void>();
  for (const worker of workers) {
    worker.onmessage = (event: MessageEvent<{ batch: number; verdicts: Uint8Array }>) => {
      verdicts[event.data.batch] = event.data.verdicts;
      if (++answered === batches) done.resolve();
    };
  }
  const parsed: Operation[] = [];
  for (let b = 0; b < batches; b++) {
    const ops = wire.slice(b * batchSize, (b + 1) * batchSize);
    workers[b % workerCount].postMessage({ batch: b, ops });
  }
  // The main thread parses for itself meanwhile (it applies the parsed operations).
  for (const text of wire) parsed.push(parseOperation(JSON.parse(text)));
  await done.promise;
  const elapsed = performance.now() - t;
  for (const v of verdicts) if (v.includes(0)) throw new Error("invalid");
  for (const worker of workers) worker.terminate();
  if (parsed.length !== wire.length) throw new Error("lost");
  return elapsed;
}

const single: number[] = [];
const spread: number[] = [];
for (let run = 0; run < 3; run++) {
  single.push(mainThreadOnly());
  spread.push(await withWorkers());
}
const med = (v: number[]) => [...v].sort((a, b) => a - b)[1];
console.log(JSON.stringify({
  operations: wire.length,
  mainThreadOpsPerS: Math.round(wire.length / (med(single) / 1000)),
  workers: workerCount,
  withWorkersOpsPerS: Math.round(wire.length / (med(spread) / 1000)),
  speedup: med(single) / med(spread),
  runsMs: { single, spread },
  load: Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" "),
}));
