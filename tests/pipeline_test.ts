import assert from "node:assert/strict";
import type { JsonValue } from "../crdt/canonical.ts";
import { CrdtDocument } from "../crdt/document.ts";
import type { Mutation } from "../crdt/operation.ts";
import {
  ItemNotFoundError,
  listItems,
  Pipeline,
  type PipelineHost,
  readEvents,
  readItem,
  validatePatch,
  validateStoryId,
  type WorkItemPatch,
} from "../crdt/pipeline.ts";
import { Replica } from "../crdt/replica.ts";
import { WriteRefusedError } from "../crdt/write_guard.ts";
import { identity } from "./helpers.ts";

const NODE = "a".repeat(64);
const OTHER = "b".repeat(64);

/** Applies each mutation as an operation with increasing Lamport time and records every commit. */
class FakeHost implements PipelineHost {
  readonly document = new CrdtDocument();
  readonly commits: Mutation[][] = [];
  #time = 0;

  constructor(readonly nodeId: string = NODE) {}

  commit(mutations: Mutation[]): void {
    this.commits.push(structuredClone(mutations));
    for (const mutation of mutations) this.write(this.nodeId, mutation);
  }

  /** Applies one mutation as if another node had written it. */
  write(author: string, mutation: Mutation): void {
    this.#time++;
    this.document.apply({ author, seq: this.#time, time: this.#time, mutation });
  }
}

function setup(): { host: FakeHost; pipeline: Pipeline } {
  const host = new FakeHost();
  let clock = 1000;
  return { host, pipeline: new Pipeline(host, () => clock++) };
}

Deno.test("Pipeline put creates an item with defaults and logs its creation", () => {
  const { host, pipeline } = setup();
  const item = pipeline.put("s1", {});
  const expected = {
    story_id: "s1",
    stage: "backlog",
    name: "s1",
    agent: null,
    retry_count: 0,
    blocked: false,
    frozen: false,
    depends_on: [],
  };
  assert.deepStrictEqual(item, expected);
  assert.deepStrictEqual(pipeline.get("s1"), expected);
  assert.deepStrictEqual(pipeline.events(), [
    { story: "s1", from: null, to: "backlog", node: NODE, time: 1000 },
  ]);
  assert.equal(host.commits.length, 1);
  assert.deepStrictEqual(host.commits[0].map((m) => m.type), ["update", "append"]);

  const second = pipeline.put("s2", { stage: "coding", name: "Login", depends_on: ["s1"] });
  assert.equal(second.stage, "coding");
  assert.deepStrictEqual(second.depends_on, ["s1"]);
  assert.deepStrictEqual(pipeline.events({ story: "s2" }), [
    { story: "s2", from: null, to: "coding", node: NODE, time: 1001 },
  ]);
});

Deno.test("Pipeline put on an existing item changes only the given fields", () => {
  const { host, pipeline } = setup();
  pipeline.put("s1", { name: "Login", agent: "coder-1", blocked: true });
  const updated = pipeline.put("s1", { retry_count: 2, agent: null });
  assert.deepStrictEqual(updated, {
    story_id: "s1",
    stage: "backlog",
    name: "Login",
    agent: null,
    retry_count: 2,
    blocked: true,
    frozen: false,
    depends_on: [],
  });
  // Only the given fields are written, and no event without a stage change.
  assert.deepStrictEqual(host.commits[1], [
    { type: "update", path: ["items", "s1"], fields: { retry_count: 2, agent: null } },
  ]);
  assert.equal(pipeline.events().length, 1);
  // An empty patch on an existing item commits nothing.
  pipeline.put("s1", {});
  assert.equal(host.commits.length, 2);
});

Deno.test("Pipeline move logs the previous and the new stage", () => {
  const { host, pipeline } = setup();
  pipeline.put("s1", {});
  assert.equal(pipeline.move("s1", "coding").stage, "coding");
  pipeline.put("s1", { stage: "qa", retry_count: 1 });
  assert.deepStrictEqual(host.commits[2].map((m) => m.type), ["update", "append"]);
  assert.deepStrictEqual(
    pipeline.events({ story: "s1" }).map((e) => [e.from, e.to, e.time]),
    [[null, "backlog", 1000], ["backlog", "coding", 1001], ["coding", "qa", 1002]],
  );
  // Moving to the stage it is already in logs nothing.
  pipeline.move("s1", "qa");
  assert.equal(pipeline.events().length, 3);
  assert.throws(
    () => pipeline.move("nope", "qa"),
    (error) =>
      error instanceof ItemNotFoundError && error.storyId === "nope" &&
      /no item nope/.test(error.message),
  );
});

Deno.test("Pipeline refuses invalid values without committing anything", () => {
  const { host, pipeline } = setup();
  pipeline.put("s1", {});
  const before = host.commits.length;
  const bad: [unknown, ErrorConstructor, RegExp][] = [
    [{ stage: "shipped" }, RangeError, /stage must be one of/],
    [{ stage: 3 }, TypeError, /stage must be a string/],
    [{ retry_count: -1 }, RangeError, /retry_count/],
    [{ retry_count: 1.5 }, RangeError, /retry_count/],
    [{ retry_count: "2" }, TypeError, /retry_count/],
    [{ blocked: "yes" }, TypeError, /blocked must be a boolean/],
    [{ frozen: 1 }, TypeError, /frozen must be a boolean/],
    [{ name: 5 }, TypeError, /name must be a string/],
    [{ name: "" }, RangeError, /name/],
    [{ agent: 7 }, TypeError, /agent must be a string or null/],
    [{ depends_on: "s2" }, TypeError, /depends_on must be an array/],
    [{ depends_on: ["s2", "bad id"] }, TypeError, /depends_on\[1\]/],
    [{ depends_on: ["s2", "s2"] }, RangeError, /duplicates/],
    [{ colour: "red" }, TypeError, /unknown field "colour"/],
    [{ stage: "qa", priority: 1 }, TypeError, /unknown field "priority"/],
    [null, TypeError, /patch must be an object/],
  ];
  for (const [patch, kind, message] of bad) {
    assert.throws(() => pipeline.put("s1", patch as WorkItemPatch), kind, JSON.stringify(patch));
    assert.throws(() => pipeline.put("s1", patch as WorkItemPatch), { message });
    assert.throws(() => pipeline.put("new", patch as WorkItemPatch), kind);
    assert.throws(() => pipeline.put("s1", patch as WorkItemPatch), /^\w+: Cannot put item: /);
  }
  for (const id of ["", "a b", "x".repeat(129), "é", 42]) {
    assert.throws(() => pipeline.put(id as string, {}), {
      name: "TypeError",
      message: /^Cannot put item: storyId must be/,
    });
    assert.throws(() => pipeline.get(id as string), TypeError);
  }
  assert.throws(() => pipeline.put("s1", { depends_on: ["s1"] }), {
    name: "RangeError",
    message: /itself/,
  });
  assert.throws(() => pipeline.put("new", { depends_on: ["new"] }), {
    name: "RangeError",
    message: /itself/,
  });
  assert.throws(() => pipeline.move("s1", "later" as "qa"), RangeError);
  assert.equal(host.commits.length, before);
  assert.equal(pipeline.list().length, 1);
  assert.doesNotThrow(() => validateStoryId("Story_1.2:x-y"));
  assert.doesNotThrow(() => validatePatch({ stage: undefined, agent: null }));
});

Deno.test("Pipeline delete removes an item and refuses unknown ones", () => {
  const { host, pipeline } = setup();
  pipeline.put("s1", { name: "Login", stage: "qa" });
  pipeline.put("s2", {});
  pipeline.delete("s1");
  assert.deepStrictEqual(host.commits.at(-1), [{ type: "remove", path: ["items", "s1"] }]);
  assert.equal(pipeline.get("s1"), undefined);
  assert.deepStrictEqual(pipeline.list().map((i) => i.story_id), ["s2"]);
  assert.throws(
    () => pipeline.delete("s1"),
    (error) =>
      error instanceof ItemNotFoundError && error.name === "ItemNotFoundError" &&
      error.storyId === "s1",
  );
  // Creating it again starts from the defaults.
  const again = pipeline.put("s1", {});
  assert.equal(again.name, "s1");
  assert.equal(again.stage, "backlog");
  assert.deepStrictEqual(pipeline.events({ story: "s1" }).map((e) => e.from), [null, null]);
});

Deno.test("Pipeline list filters by stage and sorts by story id", () => {
  const { pipeline } = setup();
  pipeline.put("s3", { stage: "qa" });
  pipeline.put("s1", { stage: "qa" });
  pipeline.put("s2", { stage: "coding" });
  pipeline.put("s10", {});
  assert.deepStrictEqual(pipeline.list().map((i) => i.story_id), ["s1", "s10", "s2", "s3"]);
  assert.deepStrictEqual(pipeline.list({ stage: "qa" }).map((i) => i.story_id), ["s1", "s3"]);
  assert.deepStrictEqual(pipeline.list({ stage: "done" }), []);
});

Deno.test("Pipeline events filter by story and keep log order", () => {
  const { pipeline } = setup();
  pipeline.put("s1", {});
  pipeline.put("s2", {});
  pipeline.move("s1", "coding");
  pipeline.move("s2", "qa");
  pipeline.move("s1", "done");
  assert.deepStrictEqual(
    pipeline.events().map((e) => `${e.story}:${e.to}`),
    ["s1:backlog", "s2:backlog", "s1:coding", "s2:qa", "s1:done"],
  );
  assert.deepStrictEqual(
    pipeline.events({ story: "s1" }).map((e) => e.to),
    ["backlog", "coding", "done"],
  );
  assert.deepStrictEqual(pipeline.events({ story: "none" }), []);
});

Deno.test("Pipeline reading tolerates wrong-typed fields written by other nodes", () => {
  const { host, pipeline } = setup();
  const junk: { [field: string]: JsonValue } = {
    stage: "shipped",
    name: 5,
    agent: { id: 1 },
    retry_count: -3,
    blocked: "yes",
    frozen: 1,
    depends_on: ["s2", "bad id"],
  };
  host.write(OTHER, { type: "update", path: ["items", "s1"], fields: junk });
  host.write(OTHER, { type: "update", path: ["items"], fields: { "bad id": { stage: "qa" } } });
  host.write(OTHER, { type: "update", path: ["items"], fields: { s3: "not an object" } });
  for (const entry of [42, { story: 1, to: "qa" }, { story: "s1", to: "nowhere" }]) {
    host.write(OTHER, { type: "append", path: ["event_log"], value: entry });
  }
  host.write(OTHER, {
    type: "append",
    path: ["event_log"],
    value: { story: "s1", from: 7, to: "qa", node: null, time: "soon" },
  });
  const expected = {
    story_id: "s1",
    stage: "backlog",
    name: "s1",
    agent: null,
    retry_count: 0,
    blocked: false,
    frozen: false,
    depends_on: [],
  };
  assert.deepStrictEqual(pipeline.get("s1"), expected);
  assert.deepStrictEqual(readItem(host.document, "s1"), expected);
  assert.equal(pipeline.get("s3"), undefined);
  assert.deepStrictEqual(listItems(host.document).map((i) => i.story_id), ["s1"]);
  assert.deepStrictEqual(readEvents(host.document), [
    { story: "s1", from: null, to: "qa", node: "", time: 0 },
  ]);
  // Writing through the pipeline repairs the fields it sets.
  assert.equal(pipeline.put("s1", { stage: "coding" }).stage, "coding");
  assert.deepStrictEqual(pipeline.events({ story: "s1" }).at(-1), {
    story: "s1",
    from: "backlog",
    to: "coding",
    node: NODE,
    time: 1000,
  });
});

Deno.test("Pipeline sees writes from other nodes through the shared document", () => {
  const { host, pipeline } = setup();
  pipeline.put("s1", { name: "Login" });
  host.write(OTHER, { type: "update", path: ["items", "s1"], fields: { stage: "merge" } });
  assert.equal(pipeline.get("s1")?.stage, "merge");
  assert.equal(pipeline.get("s1")?.name, "Login");
  pipeline.move("s1", "done");
  assert.deepStrictEqual(pipeline.events().at(-1)?.from, "merge");
});

Deno.test("a Pipeline write on a replica that may not sign fails with WriteRefusedError and changes nothing", () => {
  const replica = Replica.open({ identity: identity(60) });
  const pipeline = new Pipeline(replica, () => 1);
  pipeline.put("S-1", { stage: "coding" });
  replica.notePeerClock({ [replica.nodeId]: 7 }, "hub"); // the hub holds more of ours
  const before = replica.stateHash();
  assert.throws(
    () => pipeline.move("S-1", "qa"),
    (error) =>
      error instanceof WriteRefusedError && error.retryable &&
      /^Cannot commit: peer .* holds 7 of this node's own operations/.test(error.message),
  );
  assert.equal(replica.stateHash(), before);
  assert.equal(pipeline.get("S-1")?.stage, "coding");
  assert.equal(replica.size, 2); // the put and its stage event only
});
