import assert from "node:assert/strict";
import { MemoryStore, type Store } from "../crdt/store.ts";
import { silentLogger } from "../sync/logger.ts";
import { CHECK_BUSY_WAIT_MS, watchStoreCheck } from "../sync/store_check.ts";
import { VirtualTimers } from "../testing/virtual_timers.ts";

/** A store of `rows` rows whose check fails at row `bad` (if any), recording each slice. */
function checkedStore(rows: number, bad?: number): Store & { slices: number[] } {
  const slices: number[] = [];
  return Object.assign(new MemoryStore(), {
    slices,
    checkRows(after: number, limit: number): number | null {
      slices.push(after);
      if (bad !== undefined && bad > after && bad <= after + limit) {
        throw new Error(`row ${bad} does not match its id`);
      }
      return after + limit >= rows ? null : after + limit;
    },
  });
}

Deno.test("the background check goes through every row in slices and stops at a corrupt one", async () => {
  const timers = new VirtualTimers();
  const clean = checkedStore(1200);
  const corrupt: Error[] = [];
  watchStoreCheck(clean, timers, silentLogger, (error) => corrupt.push(error));
  await timers.advance(10);
  assert.deepEqual(clean.slices, [0, 500, 1000]);
  assert.equal(corrupt.length, 0);

  const damaged = checkedStore(5000, 700);
  watchStoreCheck(damaged, timers, silentLogger, (error) => corrupt.push(error));
  await timers.advance(10);
  assert.deepEqual(damaged.slices, [0, 500], "nothing after the corrupt row");
  assert.match(corrupt[0].message, /row 700/);
});

Deno.test("the background check waits while a catch-up runs, and stops when told", async () => {
  const timers = new VirtualTimers();
  const store = checkedStore(10_000);
  let busy = true;
  const stop = watchStoreCheck(store, timers, silentLogger, () => {}, () => busy);
  await timers.advance(3 * CHECK_BUSY_WAIT_MS);
  assert.deepEqual(store.slices, [], "no slice while busy");
  busy = false;
  await timers.advance(CHECK_BUSY_WAIT_MS);
  assert.ok(store.slices.length > 0);
  const done = store.slices.length;
  stop();
  await timers.advance(1000);
  assert.equal(store.slices.length, done, "no slice after stop");
});
