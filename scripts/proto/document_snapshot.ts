/**
 * Prototype ("operations on disk"): the size and speed of the document
 * snapshot codec (`CrdtDocument#toSnapshot` / `CrdtDocument.fromSnapshot`) on
 * documents built like scripts/bench.ts's pipeline runs: 100 authors, each a
 * run of updates to `["items", "S-<author>-<seq % keys>"]` with fields
 * `{stage, retry_count, agent}`. Two documents: 1M updates over 5,000 keys,
 * and 1M updates over 100,000 keys. Medians of 5 runs each; pure CPU, no I/O.
 *
 * Usage: deno run -A --v8-flags=--expose-gc scripts/proto/document_snapshot.ts [--runs 5]
 */
import { createHash } from "node:crypto";
import { parseArgs } from "node:util";
import { CrdtDocument } from "../../crdt/document.ts";
import { STAGES } from "../../crdt/pipeline.ts";

const { values: flags } = parseArgs({
  args: Deno.args,
  options: {
    runs: { type: "string", default: "5" },
    ops: { type: "string", default: "1000000" },
  },
});
const runs = Number(flags.runs);
const total = Number(flags.ops);
const AUTHORS = 100;
const gc = (globalThis as { gc?: () => void }).gc;

function heapMiB(): number | undefined {
  if (!gc) return undefined;
  gc();
  gc();
  return Deno.memoryUsage().heapUsed / 2 ** 20;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

/** A document of `total` pipeline updates whose keys are `S-<author>-<seq % keysPerAuthor>`. */
function build(keysPerAuthor: number): { doc: CrdtDocument; ms: number } {
  const doc = new CrdtDocument();
  const perAuthor = total / AUTHORS;
  const start = performance.now();
  let time = 0;
  for (let a = 0; a < AUTHORS; a++) {
    const author = createHash("sha256").update(`author ${a}`).digest("hex");
    for (let seq = 1; seq <= perAuthor; seq++) {
      doc.apply({
        author,
        seq,
        time: ++time,
        mutation: {
          type: "update",
          path: ["items", `S-${a}-${seq % keysPerAuthor}`],
          fields: { stage: STAGES[seq % STAGES.length], retry_count: seq, agent: `agent-${a}` },
        },
      });
    }
  }
  return { doc, ms: performance.now() - start };
}

/** Medians of `runs` timings of toSnapshot and fromSnapshot; the last text. */
function timeRuns(doc: CrdtDocument): { toMs: number[]; fromMs: number[]; text: string } {
  const toMs: number[] = [];
  const fromMs: number[] = [];
  let text = "";
  for (let r = 0; r < runs; r++) {
    let t = performance.now();
    text = doc.toSnapshot();
    toMs.push(performance.now() - t);
    t = performance.now();
    const restored = CrdtDocument.fromSnapshot(text);
    fromMs.push(performance.now() - t);
    if (r === 0 && restored.stateHash() !== doc.stateHash()) throw new Error("state differs");
  }
  return { toMs, fromMs, text };
}

function measure(keysPerAuthor: number): void {
  const keys = keysPerAuthor * AUTHORS;
  const heapBefore = heapMiB();
  const { doc, ms: applyMs } = build(keysPerAuthor);
  const heapBuilt = heapMiB();
  const { toMs, fromMs, text } = timeRuns(doc);
  const bytes = new TextEncoder().encode(text).length;
  // Heap of one more restored copy, measured in this frame (the timing runs' copies are gone).
  const heapText = heapMiB();
  const copy = CrdtDocument.fromSnapshot(text);
  const heapCopy = heapMiB();
  if (copy.stateHash() !== doc.stateHash()) throw new Error("state differs");
  const mib = (a: number | undefined, b: number | undefined) =>
    a === undefined || b === undefined ? "n/a" : `${(a - b).toFixed(1)} MiB`;
  console.log(
    `${keys} keys: snapshot ${(bytes / 2 ** 20).toFixed(2)} MiB (${
      (bytes / keys).toFixed(1)
    } B/key); ` +
      `toSnapshot ${median(toMs).toFixed(0)} ms, fromSnapshot ${median(fromMs).toFixed(0)} ms ` +
      `(medians of ${runs}; fromSnapshot runs ${fromMs.map((x) => x.toFixed(0)).join(", ")}); ` +
      `applying the ${total} updates ${applyMs.toFixed(0)} ms once; ` +
      `heap: built ${mib(heapBuilt, heapBefore)}, restored ${mib(heapCopy, heapText)}`,
  );
}

const load = () => Deno.loadavg().map((x) => x.toFixed(2)).join(" ");
console.log(`# load ${load()}; ${total} updates per document, ${AUTHORS} authors, ${runs} runs`);
measure(50);
measure(1000);
console.log(`# load ${load()}`);
