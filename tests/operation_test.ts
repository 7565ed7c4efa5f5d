import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { Identity, SignatureVerifier } from "../crdt/identity.ts";
import {
  canonicalBody,
  decodeOperation,
  encodedSize,
  encodeOperation,
  hasValidId,
  type Operation,
  OPERATION_LIMITS,
  operationId,
  OperationTooLargeError,
  operationToWire,
  parseOperation,
  signOperation,
} from "../crdt/operation.ts";
import {
  chainRuns,
  hasValidSignature,
  recordVerifiedSignature,
  verifyBatch,
  verifyOperation,
} from "../crdt/signatures.ts";
import { canonicalJson, type JsonValue } from "../crdt/canonical.ts";
import fc from "fast-check";
import { utf8Length } from "../protocol/bytes.ts";
import vectors from "./vectors.json" with { type: "json" };
import { handSigned, identity, OpFactory, setField } from "./helpers.ts";

const verifier = new SignatureVerifier();

Deno.test("operation encoding reproduces the committed test vectors byte for byte", () => {
  for (const vector of vectors) {
    const author = Identity.fromSeed(Uint8Array.fromHex(vector.seed));
    const { id: _id, sig: _sig, ...unsigned } = vector.op as Operation;
    assert.equal(canonicalBody(unsigned), vector.canonical);
    const expectedId = createHash("sha256").update("huskies-sync/op/v1\n").update(vector.canonical)
      .digest("hex");
    assert.equal(operationId(unsigned), expectedId);
    assert.equal(expectedId, vector.id);
    const signed = signOperation(unsigned, author);
    assert.equal(signed.id, vector.id);
    assert.equal(signed.sig, vector.sig);
    assert.ok(verifyOperation(signed, verifier));
  }
});

Deno.test("canonical JSON sorts keys and is independent of insertion order", () => {
  assert.equal(
    canonicalJson({ b: 1, a: { d: [1, "x"], c: null } }),
    '{"a":{"c":null,"d":[1,"x"]},"b":1}',
  );
  assert.equal(canonicalJson({ a: 1, b: 2 }), canonicalJson({ b: 2, a: 1 }));
});

Deno.test("operation wire form round-trips and rejects malformed input with a named reason", () => {
  const op = new OpFactory().next(identity(1), setField("s1", "stage", "qa"));
  assert.deepEqual(decodeOperation(encodeOperation(op)), op);
  const bad = (patch: Record<string, unknown>, pattern: RegExp) =>
    assert.throws(() => decodeOperation(JSON.stringify({ ...op, ...patch })), pattern);
  bad({ author: "XYZ" }, /author/);
  bad({ seq: 0 }, /seq/);
  bad({ prev: "00".repeat(32) }, /prev/);
  bad({ deps: ["b".repeat(64), "a".repeat(64)] }, /sorted/);
  bad({ time: 1.5 }, /time/);
  bad({ sig: "zz" }, /sig/);
  bad({ mutation: { type: "drop", path: ["x"] } }, /unknown mutation type/);
  bad({ mutation: { type: "update", path: [], fields: { a: 1 } } }, /path/);
  bad({ mutation: { type: "update", path: ["a"], fields: { a: 0.5 } } }, /safe integer/);
  bad({ mutation: { type: "remove", path: ["a"], extra: 1 } }, /exactly the fields/);
  assert.throws(() => decodeOperation("{"), /not valid JSON/);
  assert.throws(() => decodeOperation(" ".repeat(400_000)), /longer than 393216 characters/);
});

Deno.test("a changed field invalidates the id and a foreign signature fails", () => {
  const factory = new OpFactory();
  const op = factory.next(identity(1), setField("s1", "stage", "qa"));
  assert.ok(!verifyOperation({ ...op, time: op.time + 1 }, verifier));
  const other = factory.next(identity(2), setField("s1", "stage", "qa"));
  assert.ok(!verifyOperation({ ...op, sig: other.sig }, verifier));
});

Deno.test("what a parsed operation caches does not follow a copy with a changed field", () => {
  const factory = new OpFactory();
  const signed = factory.next(identity(1), setField("s1", "stage", "qa"));
  const parsed = decodeOperation(encodeOperation(signed)); // id checked and wire form kept
  assert.ok(hasValidId(parsed));
  recordVerifiedSignature(parsed);
  assert.ok(hasValidSignature(parsed, verifier));
  assert.deepEqual(Object.keys(parsed), Object.keys(operationToWire(parsed)));
  assert.deepEqual({ ...parsed }, parsed);
  const later = { ...parsed, time: parsed.time + 1 };
  assert.ok(!hasValidId(later));
  assert.equal(JSON.parse(encodeOperation(later)).time, parsed.time + 1);
  const other = factory.next(identity(2), setField("s1", "stage", "qa"));
  assert.ok(!hasValidSignature({ ...parsed, sig: other.sig }, verifier));
  assert.ok(!hasValidSignature(Object.assign({}, parsed, { sig: other.sig }), verifier));
  // An operation that cannot take the cache is checked and encoded each time.
  const frozen = Object.freeze({ ...operationToWire(signed) });
  assert.ok(verifyOperation(frozen, verifier));
  assert.equal(encodeOperation(frozen), encodeOperation(signed));
  recordVerifiedSignature(frozen);
  assert.ok(!hasValidSignature(Object.freeze({ ...frozen, sig: other.sig }), verifier));
});

Deno.test("signing refuses invalid operations before anything is signed", () => {
  const me = identity(1);
  assert.throws(
    () =>
      signOperation({
        author: me.nodeId,
        seq: 1,
        prev: null,
        deps: [],
        time: 1,
        mutation: { type: "update", path: ["x"], fields: { n: Number.NaN } },
      }, me),
    /safe integer/,
  );
  assert.throws(
    () =>
      signOperation({
        author: identity(2).nodeId,
        seq: 1,
        prev: null,
        deps: [],
        time: 1,
        mutation: { type: "remove", path: ["x"] },
      }, me),
    /author/,
  );
});

Deno.test("batch verification accepts a whole run through its last signature", () => {
  const factory = new OpFactory();
  const run = factory.chain(identity(1), 20);
  // Blank every signature but the last: the run is still authenticated by it.
  const thinned = run.map((op, i) => i === run.length - 1 ? op : { ...op, sig: "00".repeat(64) });
  assert.deepEqual(verifyBatch(thinned, verifier), run.map(() => true));
});

Deno.test("batch verification keeps only the valid prefix when the last signature fails", () => {
  const factory = new OpFactory();
  const run = factory.chain(identity(1), 6);
  const broken = run.map((op, i) => i >= 3 ? { ...op, sig: "00".repeat(64) } : op);
  assert.deepEqual(verifyBatch(broken, verifier), [true, true, true, false, false, false]);
});

Deno.test("batch verification never accepts content the author did not sign", () => {
  const factory = new OpFactory();
  const run = factory.chain(identity(1), 5);
  // Alter content of op 2 (its id no longer matches): ops from 2 on are unauthenticated.
  const tampered = run.map((op, i) =>
    i === 2 ? { ...op, mutation: setField("s1", "stage", "done") } : op
  );
  assert.deepEqual(verifyBatch(tampered, verifier), [true, true, false, false, false]);
  // Interleaved authors form separate runs; a bad tail falls back to per-operation checks.
  const a = factory.chain(identity(2), 3);
  const b = factory.chain(identity(3), 3);
  const mixed = [a[0], b[0], a[1], b[1], a[2], { ...b[2], sig: a[2].sig }];
  assert.deepEqual(verifyBatch(mixed, verifier), [true, true, true, true, true, false]);
});

Deno.test("chain runs split any batch, repeated and forked operations included, into maximal chains", () => {
  // chainRuns reads only author, seq, prev and id. A pool of such operations, each naming as
  // its prev none or one picked among those before it (its author's, or another's: forks and
  // hostile links), with the next seq or a wrong one; batches drawn from it, with or without
  // repeats, in any order.
  const shape = fc.array(fc.tuple(fc.nat(2), fc.nat(7), fc.boolean(), fc.nat(4)), {
    minLength: 1,
    maxLength: 18,
    size: "max",
  });
  const picks = fc.record({
    chosen: fc.array(fc.nat(), { maxLength: 30, size: "max" }),
    unique: fc.boolean(),
  });
  fc.assert(
    fc.property(shape, picks, (specs, { chosen, unique }) => {
      const pool: Operation[] = [];
      specs.forEach(([author, pick, anyAuthor, skew], n) => {
        const candidates = anyAuthor ? pool : pool.filter((op) => op.author === `author-${author}`);
        const parent = pick === 0 || candidates.length === 0
          ? undefined
          : candidates[pick % candidates.length];
        pool.push({
          author: `author-${author}`,
          seq: parent ? parent.seq + (skew === 0 ? 2 : 1) : 1,
          prev: parent ? parent.id : null,
          id: `op-${n}`,
        } as Operation);
      });
      const drawn = chosen.map((i) => pool[i % pool.length]);
      const ops = unique ? [...new Set(drawn)] : drawn;
      const runs = chainRuns(ops);
      const runOf = new Map<number, number[]>();
      for (const run of runs) for (const position of run) runOf.set(position, run);
      assert.deepEqual(runs.flat().sort((a, b) => a - b), ops.map((_, i) => i)); // a partition
      const continues = (later: Operation, earlier: Operation) =>
        later.prev === earlier.id && later.author === earlier.author &&
        later.seq === earlier.seq + 1;
      for (const run of runs) {
        for (let k = 1; k < run.length; k++) {
          assert.ok(run[k - 1] < run[k] && continues(ops[run[k]], ops[run[k - 1]]));
        }
      }
      if (!unique) return; // maximal when no operation repeats
      for (const run of runs) {
        const first = run[0];
        for (let k = 0; k < first; k++) {
          if (!continues(ops[first], ops[k])) continue;
          const after = runOf.get(k)!.find((position) => position > k);
          assert.ok(after !== undefined && after < first, `${first} could continue ${k}'s run`);
        }
      }
    }),
    { numRuns: 1000 },
  );
});

Deno.test("the 64 KiB limit counts the canonical encoding, so 9e15-style literals cannot hide size", () => {
  const author = identity(1);
  // Four arrays of 1,000 integers: "9e15" is 4 characters, its canonical form 16.
  const op = handSigned(author, Array.from({ length: 4 }, () => new Array(1000).fill(9e15)));
  const canonical = encodeOperation(op);
  const literal = canonical.replaceAll("9000000000000000", "9e15");
  assert.ok(literal.length < OPERATION_LIMITS.maxBytes / 2, `${literal.length}`);
  assert.ok(canonical.length > OPERATION_LIMITS.maxBytes, `${canonical.length}`);
  assert.throws(
    () => parseOperation(JSON.parse(literal)),
    (error) => error instanceof OperationTooLargeError && error.op.id === op.id,
  );
  assert.throws(() => decodeOperation(literal), /canonical encoding is \d+ bytes, over the limit/);
  // The same limit holds when signing: a node never makes an operation its peers refuse.
  assert.throws(
    () => signOperation({ ...op, mutation: op.mutation }, author),
    OperationTooLargeError,
  );
  // Bytes, not characters: 30,000 two-byte characters are 60,000 bytes.
  const wide = handSigned(author, "é".repeat(33_000));
  assert.throws(() => parseOperation(JSON.parse(encodeOperation(wide))), OperationTooLargeError);
  const small = handSigned(author, "é".repeat(30_000));
  assert.equal(parseOperation(JSON.parse(encodeOperation(small))).id, small.id);
});

Deno.test("ids, sizes and the wire form agree with the general canonical encoder for any mutation", () => {
  // The id check and the wire form write the body's keys out in order; a receiver relies on them
  // giving exactly canonicalJson of the body and JSON of the wire object, whatever the mutation.
  const author = identity(3);
  const key = fc.oneof(fc.string({ minLength: 1, maxLength: 8 }), fc.constantFrom("1", "10", "é"));
  const leaf = fc.oneof(fc.maxSafeInteger(), fc.string(), fc.boolean(), fc.constant(null));
  const value = fc.letrec((tie) => ({
    node: fc.oneof({ depthSize: "small" }, leaf, fc.array(tie("node")), tie("object")),
    object: fc.dictionary(key, tie("node"), { maxKeys: 4, noNullPrototype: true }),
  })).node as fc.Arbitrary<JsonValue>;
  fc.assert(
    fc.property(
      fc.dictionary(key, value, { minKeys: 1, maxKeys: 5, noNullPrototype: true }),
      (fields) => {
        const op = signOperation({
          author: author.nodeId,
          seq: 1,
          prev: null,
          deps: [],
          time: 1,
          mutation: { type: "update", path: ["x"], fields },
        }, author);
        const { id: _id, sig: _sig, ...unsigned } = op;
        const general = canonicalJson(unsigned as unknown as JsonValue);
        assert.equal(canonicalBody(unsigned), general);
        const hashed = createHash("sha256").update("huskies-sync/op/v1\n" + general).digest("hex");
        assert.equal(op.id, hashed);
        const received = decodeOperation(JSON.stringify(op));
        // The wire form is the JSON of the wire object (integer-like keys, which engines list
        // first, come in canonical order), and its size counts its UTF-8 bytes.
        const wire = encodeOperation(received);
        const plain = JSON.stringify(operationToWire(received));
        assert.deepEqual(JSON.parse(wire), JSON.parse(plain));
        assert.equal(wire.length, plain.length);
        assert.equal(encodedSize(received), new TextEncoder().encode(wire).length);
        assert.ok(verifyOperation(received, verifier));
        // A library caller's object with keys out of order has the same id.
        const shuffled = {
          ...received,
          mutation: { fields, path: ["x"], type: "update" as const },
        };
        assert.ok(verifyOperation(shuffled, verifier));
      },
    ),
    { numRuns: 200 },
  );
});

Deno.test("utf8Length counts the bytes TextEncoder writes, for short and long text", () => {
  // Frame and operation limits are in bytes on the wire: a count off by one lets an oversize
  // frame through or refuses a legal one.
  const encoder = new TextEncoder();
  const samples = ["", "ascii", "é", "€", "😀", "a\\ud800b", "\\udc00", "x😀".repeat(40_000)];
  samples.push("a".repeat(65_535) + "😀" + "b"); // a surrogate pair across the chunk boundary
  samples.push("é".repeat(70_000) + "\\ud800");
  for (const sample of samples) {
    const text = JSON.parse(`"${sample}"`) as string;
    assert.equal(utf8Length(text), encoder.encode(text).length, `length ${text.length}`);
  }
});
