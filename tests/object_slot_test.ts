import assert from "node:assert/strict";
import { ObjectSlot } from "../crdt/object_slot.ts";

Deno.test("a slot's value stays with its object and nowhere else", () => {
  const wire = new ObjectSlot<string>("test.wire");
  const checked = new ObjectSlot<boolean>("test.checked");
  const op = { seq: 1, id: "a" };
  assert.equal(wire.get(op), undefined);
  assert.equal(wire.set(op, "first"), "first");
  wire.set(op, "second"); // replaces
  checked.set(op, true);
  assert.equal(wire.get(op), "second");
  assert.equal(checked.get(op), true); // slots are independent
  assert.equal(wire.get({ seq: 1, id: "a" }), undefined);
  // Invisible to reflection, copies and comparisons.
  assert.deepEqual(Reflect.ownKeys(op), ["seq", "id"]);
  assert.equal(JSON.stringify(op), '{"seq":1,"id":"a"}');
  assert.deepStrictEqual(op, { seq: 1, id: "a" });
  assert.equal(wire.get({ ...op }), undefined);
  assert.equal(wire.get(Object.assign({}, op)), undefined);
  assert.equal(wire.get(structuredClone(op)), undefined);
});

Deno.test("an object that cannot take new properties keeps nothing in a slot", () => {
  const slot = new ObjectSlot<number>("test.frozen");
  for (const object of [Object.freeze({}), Object.seal({}), Object.preventExtensions({})]) {
    assert.equal(slot.set(object, 7), 7);
    assert.equal(slot.get(object), undefined);
  }
});
