/**
 * Prototype (issue 11, "a compact wire form"): bytes per operation and the
 * receiver's decode time for 100k pipeline updates (100 authors, sent author
 * by author as in a cold sync), in the JSON wire form today, JSON without the
 * `id` a receiver recomputes, the same without `prev` inside a chain (it is
 * the previous operation's id), and the latter with author/prev/sig in
 * base64 instead of hex (what a binary form such as CBOR would save on those
 * fields is a further third of their bytes). Decode time includes turning
 * base64 back into the hex strings the library's `Operation` holds;
 * recomputing ids (which every receiver does today anyway) is left out of all.
 * (`cbor-x` 1.6.9 could not be installed here: its optional native
 * extractor's packages do not resolve.)
 *
 * Usage: deno run -A scripts/proto/wire_form.ts
 */
import { Buffer } from "node:buffer";
import { Identity } from "../../crdt/identity.ts";
import { encodeOperation, type Operation, signOperation } from "../../crdt/operation.ts";
import { STAGES } from "../../crdt/pipeline.ts";

const ops: Operation[] = [];
for (let a = 0, time = 0; a < 100; a++) {
  const seed = new Uint8Array(32);
  new DataView(seed.buffer).setUint32(0, a + 1000);
  const id = Identity.fromSeed(seed);
  let prev: string | null = null;
  for (let seq = 1; seq <= 1000; seq++) {
    const op: Operation = signOperation({
      author: id.nodeId,
      seq,
      prev,
      deps: [],
      time: ++time,
      mutation: {
        type: "update",
        path: ["items", `S-${a}-${seq % 50}`],
        fields: { stage: STAGES[seq % STAGES.length], retry_count: seq, agent: `agent-${a}` },
      },
    }, id);
    prev = op.id;
    ops.push(op);
  }
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
type Form = {
  name: string;
  encode: (ops: Operation[]) => Uint8Array;
  decode: (b: Uint8Array) => number;
};

const noId = (op: Operation) => {
  const { id: _id, ...rest } = op;
  return rest;
};
const chained = (list: Operation[]) =>
  list.map((op, i) => {
    const rest: Record<string, unknown> = noId(op);
    if (i > 0 && list[i - 1].author === op.author && op.prev === list[i - 1].id) delete rest.prev;
    return rest;
  });

const b64 = (hexText: string) => Buffer.from(hexText, "hex").toString("base64");
const hex = (base64: string) => Buffer.from(base64, "base64").toString("hex");

const forms: Form[] = [
  {
    name: "json_today",
    encode: (list) => encoder.encode(`[${list.map(encodeOperation).join(",")}]`),
    decode: (b) => JSON.parse(decoder.decode(b)).length,
  },
  {
    name: "json_no_id",
    encode: (list) => encoder.encode(JSON.stringify(list.map(noId))),
    decode: (b) => JSON.parse(decoder.decode(b)).length,
  },
  {
    name: "json_no_id_no_chain_prev",
    encode: (list) => encoder.encode(JSON.stringify(chained(list))),
    decode: (b) => JSON.parse(decoder.decode(b)).length,
  },
  {
    name: "json_base64_no_id_no_chain_prev",
    encode: (list) =>
      encoder.encode(JSON.stringify(
        chained(list).map((op) => ({
          ...op,
          author: b64(op.author as string),
          ...(typeof op.prev === "string" ? { prev: b64(op.prev) } : {}),
          sig: b64(op.sig as string),
        })),
      )),
    decode: (b) => {
      const list = JSON.parse(decoder.decode(b)) as Record<string, unknown>[];
      for (const op of list) {
        op.author = hex(op.author as string);
        if (typeof op.prev === "string") op.prev = hex(op.prev);
        op.sig = hex(op.sig as string);
      }
      return list.length;
    },
  },
];

const CHUNK = 1000; // operations per frame, about a bulk frame's worth
const results: Record<string, unknown> = {};
for (const form of forms) {
  const frames: Uint8Array[] = [];
  for (let i = 0; i < ops.length; i += CHUNK) frames.push(form.encode(ops.slice(i, i + CHUNK)));
  const bytes = frames.reduce((sum, f) => sum + f.byteLength, 0);
  const runs: number[] = [];
  for (let run = 0; run < 3; run++) {
    const t = performance.now();
    let count = 0;
    for (const frame of frames) count += form.decode(frame);
    runs.push(performance.now() - t);
    if (count !== ops.length) throw new Error(`${form.name} decoded ${count}`);
  }
  results[form.name] = {
    bytesPerOp: Math.round(bytes / ops.length),
    decode100kMs: Math.round(runs.sort((a, b) => a - b)[1]),
  };
}
console.log(JSON.stringify({
  ...results,
  load: Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" "),
}));
