/** The compact bulk form (PROTOCOL.md §6.9): vectors, round trips, negotiation, refusals. */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { Replica } from "../crdt/replica.ts";
import { type Operation, operationToWire, parseOperation } from "../crdt/operation.ts";
import { CloseCode } from "../protocol/close_codes.ts";
import { compactBulkFrames, CompactFormError, decodeCompactBulk } from "../sync/compact_bulk.ts";
import { decodeTextFrame, READY_FRAME } from "../sync/frames.ts";
import { SyncSession } from "../sync/session.ts";
import type { SessionOutput } from "../sync/session_types.ts";
import vectors from "./compact_bulk_vectors.json" with { type: "json" };
import { identity, OpFactory, setField } from "./helpers.ts";

const LIMIT = 1024 * 1024;
const decodeFrame = (frame: string) => decodeCompactBulk(JSON.parse(frame).runs);

Deno.test("cbulk matches the test vector of PROTOCOL.md §6.9.1 both ways", async () => {
  const ops = vectors.ops.map((op) => parseOperation(op));
  const frames = [...compactBulkFrames(ops, LIMIT)];
  assert.deepEqual(frames, [vectors.frame]);
  const bytes = new TextEncoder().encode(vectors.frame);
  assert.equal(bytes.length, vectors.bytes);
  assert.equal(createHash("sha256").update(bytes).digest("hex"), vectors.sha256);
  const decoded = decodeFrame(vectors.frame);
  assert.equal(decoded.invalid, 0);
  assert.deepEqual(decoded.ops.map(operationToWire), ops.map(operationToWire));
  // The spec shows the same frame, one run per line, U+2028 written as an escape.
  const spec = await Deno.readTextFile(new URL("../PROTOCOL.md", import.meta.url));
  const section = spec.slice(spec.indexOf("#### 6.9.1"));
  const shown = section.slice(section.indexOf('```\n{"type":"cbulk"') + 4);
  const text = shown.slice(0, shown.indexOf("\n```")).replaceAll("\n", "");
  assert.equal(text.replace("\\u2028", "\u2028"), vectors.frame);
  assert.ok(section.includes(vectors.sha256) && section.includes(vectors.bytes.toLocaleString()));
});

/** Two authors' chains, interleaved, with dependencies across them. */
function mixedOps(count: number): Operation[] {
  const factory = new OpFactory();
  const ops: Operation[] = [];
  for (let i = 0; i < count; i++) {
    const author = identity(i % 3 === 0 ? 2 : 1);
    const deps = i > 0 && i % 5 === 0 ? [ops[i - 1].id] : [];
    ops.push(factory.next(author, setField(`s${i % 7}`, "stage", `ü-${i}`), deps));
  }
  return ops;
}

Deno.test("cbulk frames decode to exactly the operations given, in order, within the limit", () => {
  const ops = mixedOps(400);
  for (const limit of [LIMIT, 4096, 600]) {
    const frames = [...compactBulkFrames(ops, limit)];
    const decoded: Operation[] = [];
    for (const frame of frames) {
      assert.ok(new TextEncoder().encode(frame).length <= limit, `frame over ${limit}`);
      const { ops: part, invalid } = decodeFrame(frame);
      assert.equal(invalid, 0);
      decoded.push(...part);
    }
    assert.deepEqual(decoded, ops.map((op) => parseOperation(JSON.parse(JSON.stringify(op)))));
    if (limit === 600) assert.ok(frames.length > 100, "a small limit cuts runs across frames");
  }
  const json = ops.reduce((sum, op) => sum + JSON.stringify(op).length, 0);
  const compact = [...compactBulkFrames(ops, LIMIT)][0].length;
  assert.ok(compact < json * 0.6, `${compact} bytes against ${json}`);
});

Deno.test("a cbulk frame breaking the compact grammar is a 1002 with a fixed reason", () => {
  const [frame] = compactBulkFrames(mixedOps(3), LIMIT);
  const runs = JSON.parse(frame).runs;
  const author = runs[0][0];
  const entry = runs[0][3][0];
  const broken: unknown[] = [
    "not runs",
    [{ author }],
    [[author, 1, null]],
    [[author, 1, null, [], "extra"]],
    [[author.slice(1), 1, null, [entry]]],
    [[author.replace(/.=$/, "B="), 1, null, [entry]]], // non-zero unused bits
    [[` ${author.slice(1)}`, 1, null, [entry]]],
    [[author, 0, null, [entry]]],
    [[author, 1.5, null, [entry]]],
    [[author, 1, "AAAA", [entry]]],
    [[author, 1, null, {}]],
    [[author, 1, null, [entry.slice(0, 3)]]],
    [[author, 1, null, [[...entry, 0]]]],
    [[author, 1, null, [[entry[0], "x", entry[2], entry[3]]]]],
    [[author, 1, null, [[entry[0], ["A"], entry[2], entry[3]]]]],
    [[author, 1, null, [[entry[0], [], entry[2], entry[3].slice(4)]]]],
  ];
  for (const value of broken) {
    assert.throws(() => decodeCompactBulk(value), CompactFormError, JSON.stringify(value));
    const s = new SyncSession({
      replica: Replica.open({ identity: identity(3) }),
      peer: identity(9).nodeId,
      direction: "inbound",
      now: 0,
    });
    s.start(0);
    const out = s.receive(JSON.stringify({ type: "cbulk", runs: value }), 1);
    assert.equal(out.close?.code, CloseCode.PROTOCOL_ERROR);
    assert.match(out.close!.reason, /^protocol violation: cbulk [a-z0-9 ]+$/);
  }
});

Deno.test("a cbulk entry that is not a valid operation is counted, and so is what it breaks", () => {
  const ops = mixedOps(1).concat(new OpFactory().chain(identity(4), 3));
  const [frame] = compactBulkFrames(ops, LIMIT);
  const broken = (patch: (entry: unknown[]) => void) => {
    const runs = JSON.parse(frame).runs;
    patch(runs[1][3][0]); // identity(4)'s first operation
    return decodeFrame(JSON.stringify({ type: "cbulk", runs }));
  };
  // A shape fault leaves it without an id: the rest of its run has no prev and is counted too.
  const shape = broken((entry) => entry[0] = 0.5);
  assert.equal(shape.invalid, 3);
  assert.deepEqual(shape.ops, [ops[0]]);
  // Over the size limit it still has an id, the next entry's prev: the rest decodes.
  const large = broken((entry) => entry[2] = setField("s0", "name", "x".repeat(65_500)));
  assert.equal(large.invalid, 1);
  assert.deepEqual(large.ops.map((op) => op.seq), [1, 2, 3]);
  assert.notEqual(large.ops[1].prev, ops[1].id, "its prev is the hash of the body received");
});

Deno.test("a cbulk entry nested too deep is refused with the rest of its run, without a crash", () => {
  const [frame] = compactBulkFrames(new OpFactory().chain(identity(4), 2), LIMIT);
  const deep = "[".repeat(200_000) + "]".repeat(200_000);
  const text = frame.replace(
    /\{"fields".*?"type":"update"\}/,
    `{"type":"append","path":["a"],"value":${deep}}`,
  );
  assert.ok(text.length > 400_000);
  const decoded = decodeTextFrame(text);
  assert.ok(decoded.type === "bulk" && decoded.compact);
  assert.deepEqual([decoded.ops.length, decoded.invalid], [0, 2]);
});

Deno.test("a changed cbulk entry keeps the run's prefix and refuses the rest: nothing unsigned applies", () => {
  const ops = new OpFactory().chain(identity(5), 6);
  const [frame] = compactBulkFrames(ops, LIMIT);
  const runs = JSON.parse(frame).runs;
  runs[0][3][3][2].fields.retry_count = 999; // seq 4
  const replica = Replica.open({ identity: identity(6) });
  const s = new SyncSession({ replica, peer: identity(9).nodeId, direction: "inbound", now: 0 });
  s.start(0);
  const out = s.receive(JSON.stringify({ type: "cbulk", runs }), 1);
  assert.equal(out.close, undefined);
  assert.equal(replica.size, 3);
  assert.deepEqual(replica.opsSince({}).map((op) => op.id), ops.slice(0, 3).map((op) => op.id));
  // The rest may be the start of a chain the next frame continues (§2.5): `ready` ends the wait.
  assert.equal(s.stats().invalidOps, 0);
  s.receive(READY_FRAME, 2);
  assert.equal(replica.size, 3);
  assert.equal(s.stats().invalidOps, 3);
});

function frameTypes(output: SessionOutput): string[] {
  return output.frames.map((f) => typeof f === "string" ? String(JSON.parse(f).type) : "live");
}

Deno.test("a catch-up goes in cbulk only to a clock that accepts it; the receiver applies it", () => {
  const hub = Replica.open({ identity: identity(7) });
  for (let i = 0; i < 5; i++) hub.commit([setField(`s${i}`, "stage", "qa")]);
  const serve = (clock: Record<string, unknown>) => {
    const s = new SyncSession({
      replica: hub,
      peer: identity(8).nodeId,
      direction: "inbound",
      now: 0,
    });
    s.start(0);
    s.receive(JSON.stringify(clock), 1);
    return s.tick(1, 0);
  };
  const json = serve({ type: "clock", clock: {} });
  assert.deepEqual(frameTypes(json), ["bulk", "ready"]);
  assert.deepEqual(frameTypes(serve({ type: "clock", clock: {}, accept: ["zstd", "x"] })), [
    "bulk",
    "ready",
  ]);
  const compact = serve({ type: "clock", clock: {}, accept: ["future", "cbulk"] });
  assert.deepEqual(frameTypes(compact), ["cbulk", "ready"]);
  assert.ok((compact.frames[0] as string).length < (json.frames[0] as string).length * 0.6);

  // A node lists the form in its clock unless told not to, and applies what comes in it.
  const spoke = Replica.open({ identity: identity(8) });
  const peer = new SyncSession({ replica: spoke, peer: hub.nodeId, direction: "outbound", now: 0 });
  const clock = decodeTextFrame(peer.start(0).frames[0] as string);
  assert.ok(clock.type === "clock" && clock.compactBulk);
  peer.receive(compact.frames[0], 2);
  assert.equal(spoke.stateHash(), hub.stateHash());
  const plain = new SyncSession({
    replica: spoke,
    peer: hub.nodeId,
    direction: "outbound",
    now: 0,
    compactBulk: false,
  });
  assert.equal(JSON.parse(plain.start(0).frames[0] as string).accept, undefined);
});

Deno.test("a clock whose accept is not a short list of names is a 1002", () => {
  for (const accept of ["cbulk", [1], Array(17).fill("x"), ["x".repeat(65)], {}]) {
    assert.throws(
      () => decodeTextFrame(JSON.stringify({ type: "clock", clock: {}, accept })),
      /clock.accept is not a list of form names/,
    );
  }
});
