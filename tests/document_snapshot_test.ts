import assert from "node:assert/strict";
import type { JsonValue } from "../crdt/canonical.ts";
import { CrdtDocument, type DocumentOperation } from "../crdt/document.ts";
import type { Mutation } from "../crdt/operation.ts";
import { mulberry32 as seeded } from "../testing/sim_random.ts";

const AUTHORS = ["a", "b", "c", "d"].map((c) => c.repeat(64));
const KEYS = ["a", "b", "items", "log"];

function docOf(ops: readonly DocumentOperation[]): CrdtDocument {
  const doc = new CrdtDocument();
  for (const op of ops) doc.apply(op);
  return doc;
}

/**
 * A random history: updates (some without fields), removes and appends on
 * nested paths by several authors, Lamport times out of arrival order, and now
 * and then an operation reusing an earlier one's stamp with a different
 * change (a forked author).
 */
function randomHistory(random: () => number, length: number): DocumentOperation[] {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)];
  const path = (max: number) =>
    Array.from({ length: 1 + Math.floor(random() * max) }, () => pick(KEYS));
  const value = (): JsonValue =>
    pick<() => JsonValue>([
      () => Math.floor(random() * 20) - 5,
      () => pick(["qa", "done", "", "ünï"]),
      () => null,
      () => random() < 0.5,
      () => ({ z: Math.floor(random() * 3), a: [1, "x"] }),
      () => [Math.floor(random() * 3), { k: null }],
    ])();
  const ops: DocumentOperation[] = [];
  for (let i = 0; i < length; i++) {
    const forked = ops.length > 0 && random() < 0.12 ? pick(ops) : undefined;
    const author = forked?.author ?? pick(AUTHORS);
    const time = forked?.time ?? 1 + Math.floor(random() * 40);
    const kind = random();
    let mutation: Mutation;
    if (kind < 0.45) {
      const fields: { [field: string]: JsonValue } = {};
      const count = Math.floor(random() * 3); // 0 fields now and then: raises `latest` only
      for (let f = 0; f < count; f++) fields[pick(KEYS)] = value();
      mutation = { type: "update", path: path(2), fields };
    } else if (kind < 0.7) {
      mutation = { type: "remove", path: path(3) };
    } else {
      mutation = { type: "append", path: path(2), value: value() };
    }
    ops.push({ author, seq: i + 1, time, mutation });
  }
  return ops;
}

/** Every path of up to three keys from {@link KEYS}, and the root. */
const PATHS: string[][] = [[]];
for (let depth = 0, level: string[][] = [[]]; depth < 3; depth++) {
  level = level.flatMap((p) => KEYS.map((k) => [...p, k]));
  PATHS.push(...level);
}

function assertSameState(actual: CrdtDocument, expected: CrdtDocument): void {
  // The text holds the full internal state, children in creation order.
  assert.equal(actual.toSnapshot(), expected.toSnapshot());
  assert.deepStrictEqual(actual.value(), expected.value());
  assert.equal(JSON.stringify(actual.value()), JSON.stringify(expected.value())); // key order too
  assert.equal(actual.stateHash(), expected.stateHash());
  for (const p of PATHS) {
    assert.deepStrictEqual(actual.get(p), expected.get(p), `get ${JSON.stringify(p)}`);
    assert.deepStrictEqual(actual.keys(p), expected.keys(p));
    assert.deepStrictEqual(actual.list(p), expected.list(p));
  }
}

Deno.test("a document restored from a snapshot after k operations ends as one that applied all", () => {
  const random = seeded(0x5eed);
  let restored = 0;
  for (let run = 0; run < 150; run++) {
    const ops = randomHistory(random, 1 + Math.floor(random() * 40));
    const reference = docOf(ops);
    for (let k = 0; k <= ops.length; k++) {
      const text = docOf(ops.slice(0, k)).toSnapshot();
      const doc = CrdtDocument.fromSnapshot(text);
      assert.equal(doc.toSnapshot(), text, "round trip of a restored document is stable");
      for (const op of ops.slice(k)) doc.apply(op);
      assertSameState(doc, reference);
      restored++;
    }
  }
  assert.ok(restored > 2000);
});

Deno.test("a snapshot keeps what value() does not show", () => {
  const [a, b] = AUTHORS;
  const ops: DocumentOperation[] = [
    { author: a, seq: 1, time: 5, mutation: { type: "update", path: ["s"], fields: { x: 1 } } },
    { author: b, seq: 1, time: 9, mutation: { type: "remove", path: ["s"] } },
    { author: a, seq: 2, time: 7, mutation: { type: "append", path: ["log"], value: "old" } },
    { author: a, seq: 3, time: 8, mutation: { type: "update", path: ["t"], fields: {} } },
  ];
  const doc = CrdtDocument.fromSnapshot(docOf(ops).toSnapshot());
  assert.deepStrictEqual(doc.value(), { log: ["old"] });
  // An update without fields after the remove shows nothing; a late append sorts in.
  doc.apply({ author: b, seq: 2, time: 10, mutation: { type: "update", path: ["s"], fields: {} } });
  assert.deepStrictEqual(doc.value(), { log: ["old"] });
  doc.apply({ author: b, seq: 3, time: 6, mutation: { type: "append", path: ["log"], value: 0 } });
  assert.deepStrictEqual(doc.list(["log"]), [0, "old"]);
  // Equal stamps from a forked author: the same tie-break as before the snapshot.
  const fork = { author: a, seq: 4, time: 11 };
  const forkOps: DocumentOperation[] = [
    { ...fork, mutation: { type: "update", path: ["f"], fields: { v: "b" } } },
    { ...fork, mutation: { type: "update", path: ["f"], fields: { v: "a" } } },
    { ...fork, mutation: { type: "append", path: ["l"], value: 2 } },
    { ...fork, mutation: { type: "append", path: ["l"], value: 1 } },
  ];
  for (const op of forkOps) doc.apply(op);
  const again = CrdtDocument.fromSnapshot(doc.toSnapshot());
  assert.deepStrictEqual(again.get(["f", "v"]), "b");
  assert.deepStrictEqual(again.list(["l"]), [1, 2]);
  again.apply({ ...fork, mutation: { type: "update", path: ["f"], fields: { v: "c" } } });
  assert.equal(again.get(["f", "v"]), "c");
});

Deno.test("an empty document round-trips", () => {
  const text = new CrdtDocument().toSnapshot();
  const doc = CrdtDocument.fromSnapshot(text);
  assert.deepStrictEqual(doc.value(), {});
  assert.equal(doc.stateHash(), new CrdtDocument().stateHash());
  assert.equal(doc.toSnapshot(), text);
  doc.apply({
    author: AUTHORS[0],
    seq: 1,
    time: 1,
    mutation: { type: "append", path: ["l"], value: 1 },
  });
  assert.deepStrictEqual(doc.value(), { l: [1] });
});

Deno.test("restored values are frozen copies, like applied ones", () => {
  const doc = CrdtDocument.fromSnapshot(
    docOf([{
      author: AUTHORS[0],
      seq: 1,
      time: 1,
      mutation: { type: "update", path: ["s"], fields: { v: { deep: [1, { x: 2 }] } } },
    }, {
      author: AUTHORS[0],
      seq: 2,
      time: 2,
      mutation: { type: "append", path: ["l"], value: { y: [3] } },
    }]).toSnapshot(),
  );
  const v = doc.get(["s", "v"]) as { deep: [number, { x: number }] };
  assert.ok(Object.isFrozen(v) && Object.isFrozen(v.deep) && Object.isFrozen(v.deep[1]));
  const entry = doc.list(["l"])[0] as { y: number[] };
  assert.ok(Object.isFrozen(entry) && Object.isFrozen(entry.y));
});

/** A valid snapshot with every kind of field, to damage. */
function sampleText(): string {
  const [a, b] = AUTHORS;
  return docOf([
    {
      author: a,
      seq: 1,
      time: 1,
      mutation: { type: "update", path: ["s"], fields: { x: 1, y: [2] } },
    },
    { author: b, seq: 1, time: 2, mutation: { type: "append", path: ["l"], value: "p" } },
    { author: a, seq: 2, time: 3, mutation: { type: "append", path: ["l"], value: "q" } },
    { author: b, seq: 2, time: 4, mutation: { type: "remove", path: ["s", "x"] } },
    { author: a, seq: 3, time: 5, mutation: { type: "update", path: ["e"], fields: {} } },
  ]).toSnapshot();
}

function assertRefused(text: unknown, pattern?: RegExp): void {
  assert.throws(
    () => CrdtDocument.fromSnapshot(text as string),
    (error: unknown) => {
      assert.ok(error instanceof SyntaxError, `SyntaxError, got ${error}`);
      assert.match(error.message, /^Cannot restore document: /);
      if (pattern) assert.match(error.message, pattern);
      return true;
    },
    JSON.stringify(text),
  );
}

Deno.test("malformed and inconsistent snapshots are refused with a SyntaxError naming the problem", () => {
  const text = sampleText();
  // deno-fmt-ignore
  assert.deepStrictEqual(JSON.parse(text).tree, [
    48,
    "s", 32, "x", 5, 1, 0, 1, 4, 1, "y", 1, 1, 0, [2],
    "l", 2, 2, 2, 1, "p", 3, 0, "q",
    "e", 8, 5, 0,
  ]);
  const edit = (change: (t: { [key: string]: unknown }) => void) => {
    const copy = JSON.parse(text);
    change(copy);
    return JSON.stringify(copy);
  };
  assertRefused(undefined, /must be a string/);
  assertRefused("", /not JSON/);
  assertRefused("null", /not a JSON object/);
  assertRefused("[]", /not a JSON object/);
  assertRefused(edit((t) => t.snapshot = "other"), /format/);
  assertRefused(edit((t) => t.version = 2), /unsupported snapshot version 2/);
  assertRefused(edit((t) => delete t.version), /unsupported snapshot version/);
  assertRefused(edit((t) => t.extra = 1), /unknown field "extra"/);
  assertRefused(edit((t) => delete t.authors), /authors must be an array/);
  assertRefused(edit((t) => t.authors = [AUTHORS[0], 7]), /author must be a string/);
  assertRefused(edit((t) => t.authors = [AUTHORS[0], AUTHORS[0]]), /listed twice/);
  const tree = (items: unknown[]) => edit((t) => t.tree = items);
  assertRefused(edit((t) => t.tree = {}), /tree must be an array/);
  assertRefused(tree([]), /at the root: a node head must be .*got the end/);
  assertRefused(tree([-16]), /node head/);
  assertRefused(tree([1.5]), /node head/);
  assertRefused(tree(["16"]), /node head/);
  assertRefused(tree([1, 1, 0, "v"]), /the root may hold only/);
  assertRefused(tree([0, 5]), /the tree has 1 more elements after its end/);
  assertRefused(tree([16, "s", 1, 1, 2, "v"]), /at \["s"\]: register author must be an index/);
  assertRefused(tree([16, "s", 1, 1, -1, "v"]), /author must be an index/);
  assertRefused(tree([16, "s", 1, 1, 0.5, "v"]), /author must be an index/);
  assertRefused(tree([16, "s", 1, 1.5, 0, "v"]), /register time must be a safe integer, got 1.5/);
  assertRefused(tree([16, "s", 1, "1", 0, "v"]), /time must be a safe integer/);
  assertRefused(tree([16, "s", 1, 2 ** 60, 0, "v"]), /time must be a safe integer/);
  assertRefused(tree([16, "s", 1, 1, 0]), /register has no value/);
  assertRefused(tree([16, "s", 1, 1, 0, 1.25]), /not a safe integer/);
  assertRefused(tree([16, "s", 1, 1, 0, { a: [1e300] }]), /not a safe integer/);
  assertRefused(tree([16, "l", 2, 0]), /count of at least 1/);
  assertRefused(tree([16, "l", 2, "1", 3, 0, "p"]), /count of at least 1/);
  assertRefused(tree([16, "l", 2, 2, 3, 0, "p"]), /list entry time .*the end/);
  assertRefused(tree([16, "l", 2, 2, 3, 0, "p", 2, 0, "q"]), /entry 1 is not after.*sorted/);
  assertRefused(tree([16, "l", 2, 2, 3, 0, "p", 3, 0, "p"]), /sorted/);
  assertRefused(tree([16, "l", 2, 2, 3, 0, "q", 3, 0, "p"]), /sorted/);
  assertRefused(tree([16, "r", 4, 1]), /removed author .*the end/);
  assertRefused(tree([16, "e", 24, 5, 0, "f", 1, 5, 0, 1]), /at \["e"\]: latest must be after/);
  assertRefused(tree([16, "e", 24, 5, 0, "f", 1, 6, 0, 1]), /latest must be after/);
  assertRefused(tree([16, 5]), /child 0 of 1 has no key \(got 5\)/);
  assertRefused(tree([32, "s", 0]), /child 1 of 2 has no key \(got the end\)/);
  assertRefused(tree([32, "s", 0, "s", 0]), /child key "s" appears twice/);
  assertRefused(tree([16, "s", 16, "t", 16, "u", "1"]), /at \["s","t","u"\]: a node head/);
  const deep: unknown[] = [];
  for (let i = 0; i < 1500; i++) deep.push(16, "k");
  assertRefused(tree([...deep, 1, 1, 0, 1]), /deeper than 1000 keys/);
  let deepValue: unknown = 1;
  for (let i = 0; i < 1500; i++) deepValue = [deepValue];
  assertRefused(tree([16, "s", 1, 1, 0, deepValue]), /nested deeper than 1000/);
  for (let end = 0; end < text.length; end++) assertRefused(text.slice(0, end), /not JSON/);
});

Deno.test("randomly damaged snapshots are restored or refused with a SyntaxError, never a crash", () => {
  const text = sampleText();
  const random = seeded(7);
  const junk: unknown[] = [null, -1, 0, 1, 1.5, 3, 8, 15, 99, "x", "", [], [0], {}, true, 2 ** 53];
  const slots = (value: unknown, out: [unknown[], number][] = []) => {
    if (Array.isArray(value)) {
      value.forEach((item, i) => {
        out.push([value, i]);
        slots(item, out);
      });
    }
    return out;
  };
  let refused = 0;
  for (let run = 0; run < 3000; run++) {
    const top = JSON.parse(text);
    const all = slots(top.tree);
    for (let n = 1 + Math.floor(random() * 2); n > 0; n--) {
      const [array, i] = all[Math.floor(random() * all.length)];
      if (random() < 0.15) array.splice(i, 1);
      else array[i] = junk[Math.floor(random() * junk.length)];
    }
    try {
      const doc = CrdtDocument.fromSnapshot(JSON.stringify(top));
      doc.value();
      doc.stateHash();
    } catch (error) {
      assert.ok(error instanceof SyntaxError, `${error}`);
      assert.match(error.message, /^Cannot restore document: /);
      refused++;
    }
  }
  assert.ok(refused > 1000);
});
