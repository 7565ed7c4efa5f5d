import assert from "node:assert/strict";
import {
  CLOCK_FLOOD_LIMIT,
  CLOCK_MIN_INTERVAL_MS,
  ClockGate,
  ClockResend,
} from "../sync/clock_gate.ts";
import { escapeLogText } from "../sync/logger.ts";
import { SLOW_CONSUMER_GRACE_MS, SlowConsumerCheck } from "../sync/live_queue.ts";

Deno.test("clock gate: one catch-up at a time, later clocks wait and the newest wins", () => {
  const gate = new ClockGate<string>();
  assert.equal(gate.offer("c1", 0, false), "apply");
  assert.equal(gate.offer("c2", 10, true), "wait", "a catch-up is running");
  assert.equal(gate.offer("c3", 20, true), "wait");
  assert.equal(gate.due(30, true), undefined, "still running");
  assert.equal(gate.due(500, false), undefined, "sooner than the interval");
  assert.equal(gate.dueAt, CLOCK_MIN_INTERVAL_MS);
  assert.equal(gate.due(CLOCK_MIN_INTERVAL_MS, false), "c3", "the newest waiting clock");
  assert.equal(gate.due(5_000, false), undefined, "answered once");
});

Deno.test("clock gate: more than the flood limit within the window is a flood", () => {
  const gate = new ClockGate<number>();
  for (let i = 0; i < CLOCK_FLOOD_LIMIT; i++) assert.notEqual(gate.offer(i, i, false), "flood");
  assert.equal(gate.offer(99, CLOCK_FLOOD_LIMIT, false), "flood");
  const slow = new ClockGate<number>();
  for (let i = 0; i < 3 * CLOCK_FLOOD_LIMIT; i++) {
    assert.equal(slow.offer(i, i * CLOCK_MIN_INTERVAL_MS, false), "apply", "one a second is fine");
  }
});

Deno.test("clock re-send waits for the interval after our last clock", () => {
  const resend = new ClockResend();
  resend.sent(100);
  resend.want(200);
  assert.equal(resend.dueAt, 100 + CLOCK_MIN_INTERVAL_MS);
  assert.equal(resend.isDue(500), false);
  assert.equal(resend.isDue(100 + CLOCK_MIN_INTERVAL_MS), true);
});

Deno.test("a slow consumer is one that stays over its limit, or passes four times it", () => {
  const check = new SlowConsumerCheck(1000);
  assert.equal(check.tooSlow(1500, 0), false, "over, but within the grace time");
  assert.equal(check.tooSlow(500, 100), false, "drained: the grace restarts");
  assert.equal(check.tooSlow(1500, 200), false);
  assert.equal(check.tooSlow(3900, 300), false, "under four times the limit: still the grace");
  assert.equal(check.tooSlow(1500, 200 + SLOW_CONSUMER_GRACE_MS), true, "stayed over");
  assert.equal(new SlowConsumerCheck(1000).tooSlow(4001, 0), true, "four times the limit at once");
});

Deno.test("log text escapes controls, quotes and bidi overrides, and quotes spaces", () => {
  assert.equal(escapeLogText("plain"), "plain");
  assert.equal(escapeLogText(""), '""');
  assert.equal(
    escapeLogText('bye\nERROR "x"\u202e'),
    '"bye\\u000aERROR \\u0022x\\u0022\\u202e"',
  );
  assert.equal(escapeLogText("a\\b"), "a\\u005cb");
});
