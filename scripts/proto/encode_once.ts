/**
 * Prototype (issue 11, "encode-once fan-out"): the hub's CPU per live batch
 * sent to K peers, today (each peer's session frames the batch with
 * `bulkFrames`, which counts UTF-8 bytes per operation, then `#send` counts
 * the frame again) against framing and counting once per batch and handing
 * every peer the same string. Pure CPU, no sockets: the socket's own cost is
 * the same in both and is measured by scripts/compare_yjs.ts.
 *
 * Usage: deno run -A scripts/proto/encode_once.ts [--peers 100] [--batch 2]
 */
import { parseArgs } from "node:util";
import { Identity } from "../../crdt/identity.ts";
import { encodeOperation, type Operation, signOperation } from "../../crdt/operation.ts";
import { utf8Length } from "../../protocol/bytes.ts";
import { bulkFrames } from "../../sync/frames.ts";

const { values: flags } = parseArgs({
  args: Deno.args,
  options: { peers: { type: "string", default: "100" }, batch: { type: "string", default: "2" } },
});
const peers = Number(flags.peers);
const batch = Number(flags.batch);
const MAX_FRAME = 1024 * 1024;

const id = Identity.generate();
const ops: Operation[] = [];
for (let seq = 1, prev: string | null = null; seq <= 5000; seq++) {
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
  encodeOperation(op); // cached, as on the hub once an operation was stored
  ops.push(op);
}

let sink = 0;
function perPeer(): number {
  const t = performance.now();
  for (let i = 0; i < ops.length; i += batch) {
    const slice = ops.slice(i, i + batch);
    for (let p = 0; p < peers; p++) {
      for (const frame of bulkFrames(slice, MAX_FRAME)) sink += utf8Length(frame);
    }
  }
  return performance.now() - t;
}

function once(): number {
  const encoder = new TextEncoder();
  const t = performance.now();
  for (let i = 0; i < ops.length; i += batch) {
    const slice = ops.slice(i, i + batch);
    const frames = [...bulkFrames(slice, MAX_FRAME)].map((text) => ({
      text,
      bytes: encoder.encode(text),
    }));
    for (let p = 0; p < peers; p++) for (const frame of frames) sink += frame.bytes.byteLength;
  }
  return performance.now() - t;
}

const a: number[] = [];
const b: number[] = [];
for (let run = 0; run < 5; run++) {
  a.push(perPeer());
  b.push(once());
}
const med = (v: number[]) => [...v].sort((x, y) => x - y)[2];
const deliveries = ops.length * peers;
console.log(JSON.stringify({
  peers,
  batch,
  perPeerNsPerDelivery: Math.round(med(a) * 1e6 / deliveries),
  encodeOnceNsPerDelivery: Math.round(med(b) * 1e6 / deliveries),
  speedup: med(a) / med(b),
  load: Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" "),
  sink: sink > 0,
}));
