/**
 * The conformance suite every {@link Store} implementation must pass, plus
 * helpers that build real signed operations for store tests. Exported (as
 * `@huskies/sync/testing`) so that other store implementations run the same
 * cases as the built-in ones.
 *
 * Call {@link storeConformance} from a test file to register its cases (not
 * run here: it registers `Deno.test`s, which a doc example cannot; this
 * repository runs it in `tests/store_test.ts`):
 *
 * ```ts ignore
 * import { MemoryStore } from "@huskies/sync";
 * import { storeConformance } from "@huskies/sync/testing";
 * storeConformance("MemoryStore", () => ({ store: new MemoryStore(), cleanup: () => {} }), {
 *   atomic: false,
 * });
 * ```
 * @module
 */
import assert from "node:assert/strict";
import { Identity } from "../crdt/identity.ts";
import {
  encodeOperation,
  type Mutation,
  type Operation,
  operationToWire,
  signOperation,
} from "../crdt/operation.ts";
import type { ForkProof, Store } from "../crdt/store.ts";

/** What a store factory hands to the suite. */
export interface StoreFixture {
  /** A fresh, empty store. */
  store: Store;
  /**
   * Opens the same data again. The suite closes the previous store first and
   * closes the reopened one itself. Required when `durable` is set.
   */
  reopen?: () => Store;
  /** Removes whatever the fixture created (files, folders). Runs after the stores are closed. */
  cleanup: () => Promise<void> | void;
}

/** What the implementation under test promises beyond the basic contract. */
export interface StoreConformanceOptions {
  /**
   * `append` can fail part-way (here: an operation the database refuses) and
   * then stores nothing from the batch.
   * @default true
   */
  atomic?: boolean;
  /**
   * Data survives closing and reopening; the fixture must provide `reopen`.
   * @default false
   */
  durable?: boolean;
  /**
   * The store keeps operations on disk: it has `loadLazy`, `checkRows`,
   * `loadState` and `saveState` (the optional members of `Store`).
   * @default false
   */
  onDisk?: boolean;
}

/**
 * A deterministic identity for tests: the seed is 32 bytes of `n`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { testIdentity } from "@huskies/sync/testing";
 *
 * assert.equal(testIdentity(1).nodeId, testIdentity(1).nodeId);
 * assert.notEqual(testIdentity(1).nodeId, testIdentity(2).nodeId);
 * ```
 */
export function testIdentity(n: number): Identity {
  return Identity.fromSeed(new Uint8Array(32).fill(n));
}

/** Options for {@link makeChain}. */
export interface ChainOptions {
  /** `seq` of the first operation; `prev` of the first links to `prevId`. @default 1 */
  startSeq?: number;
  /** Id of the operation before the first; required when `startSeq` > 1. @default null */
  prevId?: string | null;
  /** `time` of the first operation; later ones count up by one. @default startSeq */
  startTime?: number;
  /** The mutation of the operation at index `i` of the chain. */
  mutation?: (i: number) => Mutation;
}

/**
 * Builds `n` real signed operations by `identity`, each naming the previous
 * one as `prev`, with `deps: []` and increasing `time`. The default mutation
 * is `{type: "update", path: ["items", "s1"], fields: {stage: "coding"}}`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Identity, Replica } from "@huskies/sync";
 * import { makeChain, testIdentity } from "@huskies/sync/testing";
 *
 * const ops = makeChain(testIdentity(1), 3);
 * assert.deepEqual(ops.map((op) => op.seq), [1, 2, 3]);
 * assert.equal(ops[1].prev, ops[0].id);
 * const replica = Replica.open({ identity: Identity.generate() });
 * replica.receive(ops);
 * assert.equal(replica.size, 3);
 * replica.close();
 * ```
 */
export function makeChain(identity: Identity, n: number, options: ChainOptions = {}): Operation[] {
  const startSeq = options.startSeq ?? 1;
  let prev = options.prevId ?? null;
  let time = options.startTime ?? startSeq;
  const mutation = options.mutation ??
    ((): Mutation => ({ type: "update", path: ["items", "s1"], fields: { stage: "coding" } }));
  const ops: Operation[] = [];
  for (let i = 0; i < n; i++) {
    const op = signOperation({
      author: identity.nodeId,
      seq: startSeq + i,
      prev,
      deps: [],
      time: time++,
      mutation: mutation(i),
    }, identity);
    ops.push(op);
    prev = op.id;
  }
  return ops;
}

/**
 * Two different signed operations by `identity` at seq 1, as a fork proof (smaller id first).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { MemoryStore } from "@huskies/sync";
 * import { makeForkProof, testIdentity } from "@huskies/sync/testing";
 *
 * const proof = makeForkProof(testIdentity(1), "qa");
 * assert.equal(proof.seq, 1);
 * assert.ok(proof.a.id < proof.b.id);
 * const store = new MemoryStore();
 * store.saveFork(proof);
 * assert.equal(store.loadForks().length, 1);
 * ```
 */
export function makeForkProof(identity: Identity, stage: string): ForkProof {
  const [x] = makeChain(identity, 1, {
    mutation: () => ({ type: "update", path: ["items", "s1"], fields: { stage } }),
  });
  const [y] = makeChain(identity, 1, {
    mutation: () => ({ type: "update", path: ["items", "s1"], fields: { stage: `${stage}-2` } }),
  });
  const [a, b] = x.id < y.id ? [x, y] : [y, x];
  return { author: identity.nodeId, seq: 1, a, b };
}

/** Mutations covering every type and every kind of JSON value. */
const VARIED_MUTATIONS: Mutation[] = [
  { type: "update", path: ["items", "s1"], fields: { stage: "coding", rank: 3, done: false } },
  {
    type: "update",
    path: ["items", "ünïcödé ✓", "😀"],
    fields: { note: 'quote " back\\slash\nnewline\u0000nul', big: Number.MAX_SAFE_INTEGER },
  },
  { type: "remove", path: ["items", "s1"] },
  {
    type: "append",
    path: ["log"],
    value: { nested: { list: [1, -2, null, true, "x", [], {}] }, empty: "" },
  },
  { type: "append", path: ["log"], value: null },
  { type: "update", path: ["a"], fields: { n: null, ["__proto__"]: { x: 1 } } },
];

function ids(ops: Iterable<Operation>): string[] {
  return [...ops].map((op) => op.id);
}

/**
 * Registers `Deno.test` cases that every {@link Store} implementation must
 * pass. `makeStore` is called once per case and must return a fresh, empty
 * store; the suite closes every store it used and then calls `cleanup`.
 */
export function storeConformance(
  name: string,
  makeStore: () => Promise<StoreFixture> | StoreFixture,
  options: StoreConformanceOptions = {},
): void {
  const atomic = options.atomic ?? true;
  const durable = options.durable ?? false;

  /** Runs `body` with a fresh fixture; closes every store it hands out, then cleans up. */
  const withStore = async (
    body: (store: Store, reopen: () => Store) => void | Promise<void>,
  ): Promise<void> => {
    const fixture = await makeStore();
    const opened: Store[] = [fixture.store];
    const reopen = (): Store => {
      if (!fixture.reopen) throw new Error(`${name} fixture does not provide reopen`);
      for (const store of opened) store.close();
      const store = fixture.reopen();
      opened.push(store);
      return store;
    };
    try {
      await body(fixture.store, reopen);
    } finally {
      for (const store of opened) store.close();
      await fixture.cleanup();
    }
  };

  const alice = testIdentity(1);
  const bob = testIdentity(2);

  Deno.test(`${name} starts empty`, () =>
    withStore((store) => {
      assert.equal(store.count(), 0);
      assert.deepEqual([...store.load()], []);
      assert.deepEqual(store.loadForks(), []);
    }));

  Deno.test(`${name} load returns appended operations in insertion order`, () =>
    withStore((store) => {
      const a = makeChain(alice, 4);
      const b = makeChain(bob, 3);
      // Interleaved authors across several batches: order is insertion, not author or seq.
      const batches = [[b[0], a[0]], [a[1]], [b[1], b[2], a[2], a[3]]];
      for (const batch of batches) store.append(batch);
      const expected = batches.flat();
      assert.deepEqual([...store.load()], expected);
      // load can be iterated again and gives the same answer.
      assert.deepEqual(ids(store.load()), ids(expected));
    }));

  Deno.test(`${name} round-trips every mutation type and JSON value exactly`, () =>
    withStore((store) => {
      const ops = makeChain(alice, VARIED_MUTATIONS.length, {
        mutation: (i) => VARIED_MUTATIONS[i],
      });
      store.append(ops);
      assert.deepEqual([...store.load()], ops);
    }));

  Deno.test(`${name} count follows appends and an empty append changes nothing`, () =>
    withStore((store) => {
      const ops = makeChain(alice, 5);
      store.append([]);
      assert.equal(store.count(), 0);
      store.append(ops.slice(0, 2));
      assert.equal(store.count(), 2);
      store.append([]);
      store.append(ops.slice(2));
      assert.equal(store.count(), 5);
      assert.equal([...store.load()].length, 5);
    }));

  // Only for stores that can fail part-way through a batch (not registered otherwise).
  if (atomic) {
    Deno.test({
      name: `${name} stores nothing from a batch that fails part-way`,
      fn: () =>
        withStore((store) => {
          const [first, second, third, fourth] = makeChain(alice, 4);
          store.append([first]);
          // The database refuses the middle operation (it has no id).
          const broken = { ...third, id: null } as unknown as Operation;
          assert.throws(() => store.append([second, broken, fourth]));
          assert.deepEqual([...store.load()], [first]);
          assert.equal(store.count(), 1);
          // The store is still usable afterwards.
          store.append([second, third, fourth]);
          assert.deepEqual([...store.load()], [first, second, third, fourth]);
          assert.equal(store.count(), 4);
        }),
    });
  }

  Deno.test(`${name} keeps the first fork proof per author`, () =>
    withStore((store) => {
      const first = makeForkProof(alice, "first");
      const later = makeForkProof(alice, "later");
      const other = makeForkProof(bob, "other");
      store.saveFork(first);
      store.saveFork(later);
      store.saveFork(other);
      store.saveFork(first);
      assert.deepEqual(store.loadForks(), [first, other]);
      // Fork proofs are separate from the operation log.
      assert.equal(store.count(), 0);
    }));

  Deno.test(`${name} records the own chain head with an append, or alone`, () =>
    withStore((store) => {
      assert.equal(store.loadOwnHead(), null);
      const ops = makeChain(alice, 3);
      store.append(ops.slice(0, 2), { ownHead: { author: alice.nodeId, seq: 2, id: ops[1].id } });
      assert.deepEqual(store.loadOwnHead(), { author: alice.nodeId, seq: 2, id: ops[1].id });
      // Appends without a record (operations from peers) leave it as it is.
      store.append(makeChain(bob, 2), { durable: false });
      assert.equal(store.loadOwnHead()?.seq, 2);
      store.append([], { ownHead: { author: alice.nodeId, seq: 3, id: ops[2].id } });
      assert.deepEqual(store.loadOwnHead(), { author: alice.nodeId, seq: 3, id: ops[2].id });
      assert.equal(store.count(), 4);
    }));

  Deno.test(`${name} close is idempotent and every later call throws`, () =>
    withStore((store) => {
      const [op] = makeChain(alice, 1);
      store.append([op]);
      store.close();
      store.close();
      const closed = /closed/;
      assert.throws(() => store.append([]), closed);
      assert.throws(() => store.append([op]), closed);
      assert.throws(() => [...store.load()], closed);
      assert.throws(() => store.count(), closed);
      assert.throws(() => store.saveFork(makeForkProof(alice, "x")), closed);
      assert.throws(() => store.loadForks(), closed);
      assert.throws(() => store.loadOwnHead(), closed);
    }));

  // Only for stores that keep operations on disk (not registered otherwise).
  if (options.onDisk) {
    Deno.test(`${name} loadLazy gives the stored operations; checkRows and saved states work`, () =>
      withStore((store) => {
        assert.ok(store.loadLazy && store.checkRows && store.loadState && store.saveState);
        const ops = makeChain(alice, VARIED_MUTATIONS.length, {
          mutation: (i) => VARIED_MUTATIONS[i],
        });
        store.append(ops.slice(0, 3));
        store.append(ops.slice(3));
        const lazy = [...store.loadLazy!()];
        assert.deepEqual(
          lazy.map((op) => encodeOperation(op)),
          ops.map((op) => encodeOperation(op)),
        );
        assert.deepEqual(lazy.map(operationToWire), ops.map(operationToWire));
        let after: number | null = 0;
        for (let slices = 0; after !== null; slices++) {
          assert.ok(slices <= ops.length, "checkRows ends");
          after = store.checkRows!(after, 2);
        }
        assert.equal(store.loadState!(), null);
        store.saveState!("state one");
        store.append(makeChain(bob, 1));
        store.saveState!("state two");
        const saved = store.loadState!();
        assert.equal(saved?.body, "state two");
        assert.ok(typeof saved?.upTo === "number");
      }));
  }

  // Only for stores whose data outlives the process (not registered otherwise).
  if (durable) {
    Deno.test({
      name: `${name} keeps operations and fork proofs after reopening`,
      fn: () =>
        withStore((store, reopen) => {
          const ops = makeChain(alice, 3);
          const proof = makeForkProof(bob, "fork");
          store.append(ops.slice(0, 2));
          store.append(ops.slice(2));
          store.saveFork(proof);
          let again = reopen();
          assert.equal(again.count(), 3);
          assert.deepEqual([...again.load()], ops);
          assert.deepEqual(again.loadForks(), [proof]);
          assert.equal(again.loadOwnHead(), null);
          // Appends after reopening continue the same log.
          const more = makeChain(alice, 2, { startSeq: 4, prevId: ops[2].id });
          const head = { author: alice.nodeId, seq: 5, id: more[1].id };
          again.append(more, { ownHead: head });
          again = reopen();
          assert.deepEqual([...again.load()], [...ops, ...more]);
          assert.equal(again.count(), 5);
          assert.deepEqual(again.loadOwnHead(), head);
        }),
    });
  }
}
