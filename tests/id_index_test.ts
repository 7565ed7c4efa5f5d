import assert from "node:assert/strict";
import { IdIndex } from "../crdt/id_index.ts";
import { mulberry32 } from "../testing/sim_random.ts";

Deno.test("IdIndex answers like a Map through inserts, growth, deletes and collisions", () => {
  for (const seed of [1, 2, 3]) {
    const next = mulberry32(seed);
    // Ids share their first 8 characters in small groups, so whole probe runs collide.
    const idOf = (n: number) => `${(n % 37).toString(16).padStart(8, "0")}${n.toString(16)}`;
    const ids: string[] = []; // position -> id, as the log's apply order keeps them
    const index = new IdIndex((position) => ids[position]);
    const model = new Map<string, number>();
    for (let step = 0; step < 20_000; step++) {
      const roll = next();
      if (roll < 0.6 || ids.length === 0) {
        const id = idOf(ids.length);
        ids.push(id);
        index.set(id, ids.length - 1);
        model.set(id, ids.length - 1);
      } else if (roll < 0.8) {
        // The log only ever removes its last position (a rollback).
        const id = ids[ids.length - 1];
        assert.equal(index.delete(id), model.delete(id));
        ids.pop();
      } else {
        const probe = idOf(Math.floor(next() * (ids.length + 10)));
        assert.equal(index.get(probe), model.get(probe), `seed ${seed} step ${step} ${probe}`);
        assert.equal(index.has(probe), model.has(probe));
      }
      assert.equal(index.size, model.size);
    }
    for (const [id, position] of model) assert.equal(index.get(id), position);
    index.clear();
    assert.equal(index.size, 0);
    assert.equal(index.get(ids[0]), undefined);
  }
});

Deno.test("IdIndex deletes from the middle of a probe run and still finds the rest", () => {
  const ids = Array.from({ length: 50 }, (_, i) => `00000000${i}`); // one hash: one probe run
  const index = new IdIndex((position) => ids[position]);
  ids.forEach((id, position) => index.set(id, position));
  for (let i = 0; i < ids.length; i += 3) assert.ok(index.delete(ids[i]));
  assert.equal(index.delete(ids[0]), false);
  ids.forEach((id, position) =>
    assert.equal(index.get(id), position % 3 === 0 ? undefined : position)
  );
});
