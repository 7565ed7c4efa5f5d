/**
 * Measures wire forms for a bulk catch-up (issue 11): bytes per operation and
 * the sender's encode and receiver's decode time, per operation, for 100k
 * pipeline updates (100 authors, sent author by author as in a cold sync),
 * in frames of at most 1 MiB.
 *
 * - `json_bulk`: the `bulk` frame (`sync/frames.ts`), decoded by
 *   `decodeTextFrame` (shapes and the size limit checked per operation).
 * - `cbulk`: the negotiated compact form (`sync/compact_bulk.ts`, PROTOCOL.md
 *   §6.9): runs with author/seq/prev once, no `id`, base64 values; decoding
 *   rebuilds each Operation (computing its id) and parses it like the JSON.
 * - `binary_proto`: the same content in a binary frame (raw 32/64-byte
 *   values, varints, each mutation as UTF-8 JSON), a prototype here only,
 *   decoded to the same Operations through the same `parseOperation`.
 *
 * `+ids` adds what `verifyBatch` then does (check each id), so the three
 * compare as the receiver runs them; an id `cbulk` decoding derived is not
 * hashed again (`parseOperation`'s `deriveId`), so its `+ids` adds little. Signatures are left out
 * (the same one per run on every form). `cbor-x` is not measured: it does not
 * install here (its optional native extractor's packages do not resolve).
 *
 * Usage: deno run -A scripts/proto/wire_form.ts
 */
import { Identity } from "../../crdt/identity.ts";
import {
  hasValidId,
  type Operation,
  operationId,
  parseOperation,
  signOperation,
} from "../../crdt/operation.ts";
import { STAGES } from "../../crdt/pipeline.ts";
import { bulkFrames, decodeTextFrame } from "../../sync/frames.ts";
import { compactBulkFrames, decodeCompactBulk } from "../../sync/compact_bulk.ts";

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

const MAX_FRAME = 1024 * 1024;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

type Frame = string | Uint8Array;
type Form = {
  name: string;
  encode: (ops: Operation[]) => Frame[];
  decode: (frame: Frame) => Operation[];
};

/** The binary prototype: varints, raw bytes, mutations as UTF-8 JSON. */
class Writer {
  bytes = new Uint8Array(MAX_FRAME + 70_000);
  at = 0;
  varint(n: number): void {
    while (n >= 0x80) {
      this.bytes[this.at++] = (n % 0x80) | 0x80;
      n = Math.floor(n / 0x80);
    }
    this.bytes[this.at++] = n;
  }
  raw(b: Uint8Array): void {
    this.bytes.set(b, this.at);
    this.at += b.length;
  }
}
function binaryFrames(list: Operation[]): Uint8Array[] {
  const frames: Uint8Array[] = [];
  let w = new Writer();
  let last: Operation | undefined;
  let countAt = -1;
  let count = 0;
  const close = () => {
    if (countAt >= 0) w.bytes[countAt] = count; // runs of < 128 ops per header byte in this proto
  };
  for (const op of list) {
    if (w.at > MAX_FRAME - 70_000) {
      close();
      frames.push(w.bytes.slice(0, w.at));
      w = new Writer();
      last = undefined;
    }
    const continues = last && last.author === op.author && op.prev === last.id && count < 127;
    if (!continues) {
      close();
      w.raw(Uint8Array.fromHex(op.author));
      w.varint(op.seq);
      if (op.prev === null) w.varint(0);
      else (w.varint(1), w.raw(Uint8Array.fromHex(op.prev)));
      countAt = w.at++;
      count = 0;
    }
    w.varint(op.time);
    w.varint(op.deps.length);
    for (const d of op.deps) w.raw(Uint8Array.fromHex(d));
    const m = encoder.encode(JSON.stringify(op.mutation));
    w.varint(m.length);
    w.raw(m);
    w.raw(Uint8Array.fromHex(op.sig));
    count++;
    last = op;
  }
  close();
  frames.push(w.bytes.slice(0, w.at));
  return frames;
}
function decodeBinary(bytes: Uint8Array): Operation[] {
  const out: Operation[] = [];
  let at = 0;
  const varint = () => {
    let n = 0, scale = 1, b;
    do {
      b = bytes[at++];
      n += (b & 0x7f) * scale;
      scale *= 0x80;
    } while (b & 0x80);
    return n;
  };
  const raw = (n: number) => bytes.subarray(at, at += n);
  while (at < bytes.length) {
    const author = raw(32).toHex();
    let seq = varint();
    let prev: string | null = varint() === 0 ? null : raw(32).toHex();
    const count = bytes[at++];
    for (let i = 0; i < count; i++) {
      const time = varint();
      const deps: string[] = [];
      for (let d = varint(); d > 0; d--) deps.push(raw(32).toHex());
      const mutation = JSON.parse(decoder.decode(raw(varint())));
      const sig = raw(64).toHex();
      const body = { author, seq: seq++, prev, deps, time, mutation };
      const id = operationId(body);
      out.push(parseOperation({ ...body, id, sig }));
      prev = id;
    }
  }
  return out;
}

const forms: Form[] = [
  {
    name: "json_bulk",
    encode: (list) => [...bulkFrames(list, MAX_FRAME)],
    decode: (frame) => {
      const decoded = decodeTextFrame(frame as string);
      return decoded.type === "bulk" ? decoded.ops : [];
    },
  },
  {
    name: "cbulk",
    encode: (list) => [...compactBulkFrames(list, MAX_FRAME)],
    decode: (frame) => decodeCompactBulk(JSON.parse(frame as string).runs).ops,
  },
  { name: "binary_proto", encode: binaryFrames, decode: (f) => decodeBinary(f as Uint8Array) },
];

const perOp = (ms: number) => Math.round((ms * 1000 / ops.length) * 100) / 100;
const results: Record<string, unknown> = {};
for (const form of forms) {
  const encodeRuns: number[] = [];
  const decodeRuns: number[] = [];
  const idRuns: number[] = [];
  let bytes = 0;
  for (let run = 0; run < 3; run++) {
    // Fresh copies so no per-operation cache of an earlier run helps the encoder.
    const fresh = ops.map((op) => ({ ...op }));
    let t = performance.now();
    const frames = form.encode(fresh);
    encodeRuns.push(performance.now() - t);
    bytes = frames.reduce(
      (sum, f) => sum + (typeof f === "string" ? encoder.encode(f).length : f.byteLength),
      0,
    );
    t = performance.now();
    const decoded = frames.flatMap(form.decode);
    decodeRuns.push(performance.now() - t);
    t = performance.now();
    if (!decoded.every(hasValidId)) throw new Error(`${form.name}: an id does not verify`);
    idRuns.push(performance.now() - t + decodeRuns[run]);
    if (decoded.length !== ops.length || decoded.some((op, i) => op.id !== ops[i].id)) {
      throw new Error(`${form.name} decoded other operations`);
    }
  }
  const mid = (values: number[]) => values.sort((a, b) => a - b)[1];
  results[form.name] = {
    bytesPerOp: Math.round(bytes / ops.length * 10) / 10,
    encodeUsPerOp: perOp(mid(encodeRuns)),
    decodeUsPerOp: perOp(mid(decodeRuns)),
    decodeWithIdsUsPerOp: perOp(mid(idRuns)),
  };
}
console.log(JSON.stringify(
  {
    ...results,
    load: Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" "),
  },
  null,
  1,
));
