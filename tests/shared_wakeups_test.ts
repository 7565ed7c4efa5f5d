/** Sessions due at the same time share one timer; cancelling one leaves the others due. */
import assert from "node:assert/strict";
import { SharedWakeups } from "../sync/shared_wakeups.ts";
import type { Timers } from "../sync/timers.ts";

/** Timers that record what was set and fire on demand. */
function manualTimers() {
  let clock = 0;
  let nextId = 0;
  const pending = new Map<number, { at: number; callback: () => void }>();
  const timers: Timers = {
    now: () => clock,
    setTimeout(callback, delayMs) {
      pending.set(++nextId, { at: clock + delayMs, callback });
      return nextId;
    },
    clearTimeout: (handle) => void pending.delete(handle as number),
  };
  const advance = (to: number) => {
    clock = to;
    for (const [id, timer] of [...pending]) {
      if (timer.at > to) continue;
      pending.delete(id);
      timer.callback();
    }
  };
  return { timers, pending, advance };
}

Deno.test("wake-ups at the same time share one timer and each runs once", () => {
  const { timers, pending, advance } = manualTimers();
  const wakeups = new SharedWakeups(timers);
  const ran: string[] = [];
  wakeups.schedule(5, () => ran.push("a"));
  const cancelB = wakeups.schedule(5, () => ran.push("b"));
  wakeups.schedule(5, () => ran.push("c"));
  wakeups.schedule(9, () => ran.push("late"));
  assert.equal(pending.size, 2, "one timer per due time");
  cancelB();
  advance(5);
  assert.deepEqual(ran, ["a", "c"]);
  advance(9);
  assert.deepEqual(ran, ["a", "c", "late"]);
  assert.equal(pending.size, 0);
});

Deno.test("cancelling every wake-up of a time clears its timer; a wake-up set while firing is kept", () => {
  const { timers, pending, advance } = manualTimers();
  const wakeups = new SharedWakeups(timers);
  const cancels = [1, 2].map(() => wakeups.schedule(3, () => assert.fail("cancelled")));
  for (const cancel of cancels) cancel();
  assert.equal(pending.size, 0, "no timer left");
  const ran: string[] = [];
  wakeups.schedule(4, () => {
    ran.push("first");
    wakeups.schedule(4, () => ran.push("again"));
  });
  advance(4);
  advance(4);
  assert.deepEqual(ran, ["first", "again"]);
});

Deno.test("far wake-ups share one timer, for the earliest, and each runs once at its time", () => {
  const { timers, pending, advance } = manualTimers();
  const wakeups = new SharedWakeups(timers);
  const ran: string[] = [];
  wakeups.schedule(5000, () => ran.push("5000"));
  const cancel = wakeups.schedule(3000, () => ran.push("cancelled"));
  wakeups.schedule(4000, () => {
    ran.push("4000");
    wakeups.schedule(9000, () => ran.push("9000"));
  });
  wakeups.schedule(2, () => ran.push("near"));
  assert.equal(pending.size, 2, "one timer for the near wake-up, one for all the far ones");
  cancel(); // the far timer stays set for 3000: it finds nothing due and moves on
  for (let cancels = 0; cancels < 10; cancels++) {
    wakeups.schedule(7000, () => assert.fail("cancelled"))(); // a batching session's swaps
  }
  assert.equal(pending.size, 2, "swapping a later far wake-up in and out sets no timer");
  advance(2);
  advance(3000);
  assert.deepEqual(ran, ["near"]);
  advance(4000);
  assert.deepEqual(ran, ["near", "4000"]);
  advance(4999);
  assert.deepEqual(ran, ["near", "4000"], "not before its time");
  advance(5000);
  advance(9000);
  assert.deepEqual(ran, ["near", "4000", "5000", "9000"]);
  assert.equal(pending.size, 0);
  const last = wakeups.schedule(10_000, () => assert.fail("cancelled"));
  last();
  assert.equal(pending.size, 0, "the last far wake-up cancelled clears the timer");
});

Deno.test("far wake-ups run in time order, each once, and not once cancelled by an earlier one", () => {
  const { timers, advance } = manualTimers();
  const wakeups = new SharedWakeups(timers);
  const ran: number[] = [];
  const times = Array.from({ length: 200 }, (_, i) => 100 + ((i * 7919) % 1000));
  const cancels = new Map<number, () => void>();
  for (const [i, at] of times.entries()) {
    cancels.set(i, wakeups.schedule(at, () => ran.push(at)));
  }
  // The first of two at 2000 cancels the second; one callback scheduled twice runs twice.
  const twice = () => ran.push(3000);
  wakeups.schedule(3000, twice);
  wakeups.schedule(3000, twice);
  let second: () => void = () => {};
  wakeups.schedule(2000, () => {
    ran.push(2000);
    second();
  });
  second = wakeups.schedule(2000, () => assert.fail("cancelled by the first"));
  for (const i of [3, 50, 199]) cancels.get(i)!();
  const expected = times.filter((_, i) => ![3, 50, 199].includes(i)).sort((a, b) => a - b);
  for (let t = 100; t <= 3000; t++) advance(t);
  assert.deepEqual(ran, [...expected, 2000, 3000, 3000]);
});
