import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import fc from "fast-check";
import { canonicalJson, type JsonValue } from "../crdt/canonical.ts";
import { CrdtDocument, type DocumentOperation } from "../crdt/document.ts";
import type { Mutation } from "../crdt/operation.ts";

const A = "a".repeat(64);
const B = "b".repeat(64);
const C = "c".repeat(64);
const D = "d".repeat(64);

function op(author: string, time: number, mutation: Mutation): DocumentOperation {
  return { author, seq: time, time, mutation };
}

function update(path: string[], fields: { [field: string]: JsonValue }): Mutation {
  return { type: "update", path, fields };
}

function remove(path: string[]): Mutation {
  return { type: "remove", path };
}

function append(path: string[], value: JsonValue): Mutation {
  return { type: "append", path, value };
}

function docOf(ops: DocumentOperation[]): CrdtDocument {
  const doc = new CrdtDocument();
  for (const o of ops) doc.apply(o);
  return doc;
}

/** Applies `ops` in the given order and in reverse; asserts both agree and returns the value. */
function bothOrders(ops: DocumentOperation[]): JsonValue {
  const forward = docOf(ops);
  const backward = docOf([...ops].reverse());
  assert.deepStrictEqual(backward.value(), forward.value());
  assert.equal(backward.stateHash(), forward.stateHash());
  return forward.value();
}

function isObject(value: unknown): value is { [key: string]: JsonValue } {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function at(value: JsonValue, path: string[]): JsonValue | undefined {
  let current: JsonValue | undefined = value;
  for (const key of path) {
    if (!isObject(current) || !Object.hasOwn(current, key)) return undefined;
    current = current[key];
  }
  return current;
}

/** Asserts that get, keys and list agree with value() at every path over `keys` up to `depth`. */
function assertReadsAgree(doc: CrdtDocument, keys: string[], depth: number): void {
  const whole = doc.value();
  const visit = (path: string[]) => {
    const expected = at(whole, path);
    assert.deepStrictEqual(doc.get(path), expected, `get ${path.join(".")}`);
    assert.deepStrictEqual(
      doc.keys(path),
      isObject(expected) ? Object.keys(expected).sort() : [],
      `keys ${path.join(".")}`,
    );
    assert.deepStrictEqual(
      doc.list(path),
      Array.isArray(expected) ? expected : [],
      `list ${path.join(".")}`,
    );
    if (path.length < depth) { for (const key of keys) visit([...path, key]); }
  };
  visit([]);
}

Deno.test("CrdtDocument keeps the latest write per field", () => {
  const value = bothOrders([
    op(A, 1, update(["items", "s1"], { x: 1, y: 1 })),
    op(B, 2, update(["items", "s1"], { x: 2 })),
  ]);
  assert.deepStrictEqual(value, { items: { s1: { x: 2, y: 1 } } });
});

Deno.test("CrdtDocument breaks equal-time ties by author order", () => {
  const value = bothOrders([
    op(B, 5, update(["k"], { x: "from b" })),
    op(A, 5, update(["k"], { x: "from a", y: "from a" })),
  ]);
  assert.deepStrictEqual(value, { k: { x: "from b", y: "from a" } });
});

Deno.test("CrdtDocument remove hides earlier writes but not later ones", () => {
  const doc = docOf([
    op(A, 1, update(["items", "s1"], { a: 1, b: 1 })),
    op(A, 2, update(["items", "s1", "nested"], { c: 1 })),
    op(A, 3, append(["items", "s1", "log"], "old")),
    op(A, 4, remove(["items", "s1"])),
  ]);
  assert.deepStrictEqual(doc.value(), {});
  assert.equal(doc.get(["items", "s1"]), undefined);
  doc.apply(op(A, 5, update(["items", "s1"], { b: 2 })));
  doc.apply(op(A, 6, append(["items", "s1", "log"], "new")));
  assert.deepStrictEqual(doc.value(), { items: { s1: { b: 2, log: ["new"] } } });
});

Deno.test("CrdtDocument resolves a concurrent update and remove by stamp", () => {
  const base = op(A, 1, update(["items", "s1"], { stage: "qa" }));
  // Same Lamport time: the author order decides, b after a.
  assert.deepStrictEqual(
    bothOrders([
      base,
      op(A, 2, update(["items", "s1"], { stage: "done" })),
      op(B, 2, remove(["items", "s1"])),
    ]),
    {},
  );
  assert.deepStrictEqual(
    bothOrders([
      base,
      op(A, 2, remove(["items", "s1"])),
      op(B, 2, update(["items", "s1"], { stage: "done" })),
    ]),
    { items: { s1: { stage: "done" } } },
  );
  // A later time wins whatever the authors.
  assert.deepStrictEqual(
    bothOrders([
      base,
      op(B, 2, remove(["items"])),
      op(A, 3, update(["items", "s2"], { stage: "qa" })),
    ]),
    { items: { s2: { stage: "qa" } } },
  );
});

Deno.test("CrdtDocument orders list entries by stamp whatever the apply order", () => {
  const ops = [
    op(A, 1, append(["log"], "a1")),
    op(B, 1, append(["log"], "b1")),
    op(C, 2, append(["log"], "c2")),
    op(A, 3, append(["log"], "a3")),
    op(B, 3, append(["log"], { v: "b3" })),
  ];
  const expected = ["a1", "b1", "c2", "a3", { v: "b3" }];
  for (const order of [[0, 1, 2, 3, 4], [4, 3, 2, 1, 0], [2, 4, 0, 3, 1]]) {
    assert.deepStrictEqual(docOf(order.map((i) => ops[i])).list(["log"]), expected);
  }
  const doc = docOf([...ops, op(C, 4, remove(["log"])), op(A, 5, append(["log"], "after"))]);
  assert.deepStrictEqual(doc.list(["log"]), ["after"]);
  assert.deepStrictEqual(doc.list(["missing"]), []);
});

Deno.test("CrdtDocument shows the latest of a register and a map at the same path", () => {
  const doc = new CrdtDocument();
  doc.apply(op(A, 1, update(["a"], { b: 1 })));
  doc.apply(op(A, 2, update(["a", "b"], { c: 2 })));
  assert.deepStrictEqual(doc.value(), { a: { b: { c: 2 } } });
  doc.apply(op(A, 3, update(["a"], { b: 3 })));
  assert.deepStrictEqual(doc.value(), { a: { b: 3 } });
  assert.equal(doc.get(["a", "b", "c"]), undefined);
  // A later write in the map brings it back, with its older entries.
  doc.apply(op(A, 4, update(["a", "b"], { d: 4 })));
  assert.deepStrictEqual(doc.get(["a", "b"]), { c: 2, d: 4 });
  // Removing the map shows the register again: the remove does not reach it.
  doc.apply(op(A, 5, remove(["a", "b", "c"])));
  doc.apply(op(A, 6, remove(["a", "b", "d"])));
  assert.deepStrictEqual(doc.value(), { a: { b: 3 } });
});

Deno.test("CrdtDocument ignores map writes hidden by an ancestor remove when choosing", () => {
  const doc = docOf([
    op(A, 5, update(["a"], { n: { c: "from register" } })),
    op(A, 6, update(["a", "n", "c", "g"], { y: 1 })), // hidden by the remove at 7
    op(A, 7, remove(["a", "n", "c"])),
    op(A, 8, update(["a", "n", "c", "h"], { z: 1 })), // hidden by the remove at 9
    op(A, 9, remove(["a", "n", "c", "h"])),
  ]);
  assert.deepStrictEqual(doc.value(), { a: { n: { c: "from register" } } });
  assert.equal(doc.get(["a", "n", "c"]), "from register");
  assertReadsAgree(doc, ["a", "n", "c", "g", "h", "y", "z"], 5);
});

Deno.test("CrdtDocument shows the latest of a list and a map at the same path", () => {
  const ops = [
    op(A, 1, append(["x"], "entry")),
    op(B, 2, update(["x"], { k: "v" })),
  ];
  assert.deepStrictEqual(bothOrders(ops), { x: { k: "v" } });
  assert.deepStrictEqual(bothOrders([...ops, op(C, 3, append(["x"], "late"))]), {
    x: ["entry", "late"],
  });
});

Deno.test("CrdtDocument reads inside a register that holds an object", () => {
  const doc = docOf([op(A, 1, update(["cfg"], { limits: { max: 3, names: ["x"] } }))]);
  assert.equal(doc.get(["cfg", "limits", "max"]), 3);
  assert.deepStrictEqual(doc.keys(["cfg", "limits"]), ["max", "names"]);
  assert.deepStrictEqual(doc.list(["cfg", "limits", "names"]), ["x"]);
  assert.equal(doc.get(["cfg", "limits", "nope"]), undefined);
});

Deno.test("CrdtDocument get, keys and list agree with value", () => {
  const doc = docOf([
    op(A, 1, update(["items", "s1"], { stage: "qa", tags: { a: 1 } })),
    op(B, 1, update(["items", "s2"], { stage: "done" })),
    op(A, 2, append(["items", "s2", "log"], 1)),
    op(C, 3, remove(["items", "s2"])),
    op(C, 4, update(["items", "s2", "log"], { stage: "x" })),
    op(B, 5, append(["event_log"], { story: "s1" })),
    op(A, 6, update(["items"], { log: "register" })),
  ]);
  assertReadsAgree(doc, ["items", "s1", "s2", "stage", "tags", "a", "log", "event_log"], 4);
  assert.deepStrictEqual(doc.keys(["items"]), ["log", "s1", "s2"]);
  assert.deepStrictEqual(doc.keys([]), ["event_log", "items"]);
  assert.deepStrictEqual(doc.get([]), doc.value());
});

Deno.test("CrdtDocument stateHash is equal for equal content and differs otherwise", () => {
  const plain = docOf([op(A, 1, update(["k"], { x: 1 }))]);
  const roundabout = docOf([
    op(B, 1, update(["k"], { x: 0, y: 2 })),
    op(B, 2, remove(["k", "y"])),
    op(C, 3, update(["k"], { x: 1 })),
  ]);
  assert.equal(roundabout.stateHash(), plain.stateHash());
  const other = docOf([op(A, 1, update(["k"], { x: 2 }))]);
  assert.notEqual(other.stateHash(), plain.stateHash());
  const expected = createHash("sha256")
    .update("huskies-sync/state/v1\n" + canonicalJson({ k: { x: 1 } }))
    .digest("hex");
  assert.equal(plain.stateHash(), expected);
  assert.match(new CrdtDocument().stateHash(), /^[0-9a-f]{64}$/);
});

Deno.test("CrdtDocument is not changed by later edits to the applied values", () => {
  const fields = { cfg: { max: 1 } };
  const doc = docOf([op(A, 1, update(["k"], fields))]);
  fields.cfg.max = 2;
  assert.deepStrictEqual(doc.value(), { k: { cfg: { max: 1 } } });
});

Deno.test("CrdtDocument refuses operations without a usable path", () => {
  const doc = new CrdtDocument();
  assert.throws(() => doc.apply(op(A, 1, update([], { x: 1 }))), TypeError);
  assert.throws(() => doc.apply(op(A, 1.5, update(["k"], { x: 1 }))), TypeError);
  assert.deepStrictEqual(doc.value(), {});
});

// ---- Property: any causal order of the same operations gives the same state ----

const KEYS = ["a", "b", "c"];
const AUTHORS = [A, B, C, D];

const valueArb: fc.Arbitrary<JsonValue> = fc.oneof(
  fc.integer({ min: -2, max: 2 }),
  fc.constantFrom("x", "y", null, true),
  fc.dictionary(fc.constantFrom(...KEYS), fc.integer({ min: 0, max: 3 }), {
    maxKeys: 2,
    noNullPrototype: true,
  }),
);
const pathArb = (maxLength: number) =>
  fc.array(fc.constantFrom(...KEYS), { minLength: 1, maxLength });
const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({
    type: fc.constant("update" as const),
    path: pathArb(2),
    fields: fc.dictionary(fc.constantFrom(...KEYS), valueArb, {
      minKeys: 1,
      maxKeys: 2,
      noNullPrototype: true,
    }),
  }),
  fc.record({ type: fc.constant("remove" as const), path: pathArb(3) }),
  fc.record({ type: fc.constant("append" as const), path: pathArb(2), value: valueArb }),
);
interface Step {
  author: number;
  deps: number[];
  mutation: Mutation;
}
const stepArb: fc.Arbitrary<Step> = fc.record({
  author: fc.nat({ max: AUTHORS.length - 1 }),
  /** Earlier operations this one depends on, as offsets reduced modulo its index. */
  deps: fc.array(fc.nat(), { maxLength: 2 }),
  mutation: mutationArb,
});

interface CausalOp {
  op: DocumentOperation;
  deps: number[];
}

/** Turns generated steps into operations with causal dependencies and Lamport times. */
function buildHistory(authorCount: number, steps: Step[]): CausalOp[] {
  const history: CausalOp[] = [];
  const last = new Map<string, number>();
  const seqs = new Map<string, number>();
  steps.forEach((step, i) => {
    const author = AUTHORS[step.author % authorCount];
    const deps = new Set<number>(i === 0 ? [] : step.deps.map((d) => d % i));
    if (last.has(author)) deps.add(last.get(author)!);
    const time = 1 + Math.max(0, ...[...deps].map((d) => history[d].op.time));
    const seq = (seqs.get(author) ?? 0) + 1;
    seqs.set(author, seq);
    last.set(author, i);
    history.push({ op: { author, seq, time, mutation: step.mutation }, deps: [...deps] });
  });
  return history;
}

/** A random topological order of `history`, driven by a small seeded generator. */
function randomCausalOrder(history: CausalOp[], seed: number): DocumentOperation[] {
  let state = seed >>> 0;
  const random = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const applied = new Set<number>();
  const order: DocumentOperation[] = [];
  while (order.length < history.length) {
    const ready = history
      .map((_, i) => i)
      .filter((i) => !applied.has(i) && history[i].deps.every((d) => applied.has(d)));
    const pick = ready[Math.floor(random() * ready.length)];
    applied.add(pick);
    order.push(history[pick].op);
  }
  return order;
}

Deno.test("CrdtDocument converges for every causal order of the same operations", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 3, max: 4 }),
      fc.array(stepArb, { minLength: 1, maxLength: 40 }),
      fc.array(fc.nat(), { minLength: 3, maxLength: 3 }),
      (authorCount, steps, seeds) => {
        const history = buildHistory(authorCount, steps);
        const reference = docOf(history.map((h) => h.op));
        for (const seed of seeds) {
          const doc = docOf(randomCausalOrder(history, seed));
          assert.deepStrictEqual(doc.value(), reference.value());
          assert.equal(doc.stateHash(), reference.stateHash());
        }
        assertReadsAgree(reference, KEYS, 4);
      },
    ),
    { seed: 0x5eed, numRuns: 300 },
  );
});

Deno.test("CrdtDocument applies 100k operations quickly", () => {
  const doc = new CrdtDocument();
  const start = performance.now();
  for (let i = 1; i <= 100_000; i++) {
    const mutation = i % 10 === 0
      ? append(["event_log"], { story: `s${i % 1000}`, time: i })
      : update(["items", `s${i % 1000}`], { retry_count: i, stage: "qa" });
    doc.apply(op(AUTHORS[i % 4], i, mutation));
  }
  const elapsed = performance.now() - start;
  // Generous bound so a loaded CI machine does not flake; typically far lower.
  assert.ok(elapsed < 3000, `100k applies took ${elapsed.toFixed(0)} ms`);
  assert.equal(doc.list(["event_log"]).length, 10_000);
  assert.deepStrictEqual(doc.get(["items", "s7"]), { retry_count: 99_007, stage: "qa" });
});
