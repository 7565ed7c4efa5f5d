import assert from "node:assert/strict";
import {
  CHECKPOINT_BURST_BYTES,
  CHECKPOINT_INTERVAL_MS,
  checkpointStep,
  MAX_UNCHECKED_BYTES,
} from "../crdt/sqlite_checkpointer.ts";

const idle = { pending: false, unchecked: 0, sinceRequest: 0, msSinceRequest: Infinity };

Deno.test("checkpoint rule: a live stream of small commits asks the Worker at most every 100 ms", () => {
  assert.equal(checkpointStep(idle), "ask");
  const soon = { ...idle, sinceRequest: 4096, msSinceRequest: CHECKPOINT_INTERVAL_MS - 1 };
  assert.equal(checkpointStep(soon), "none");
  assert.equal(checkpointStep({ ...soon, msSinceRequest: CHECKPOINT_INTERVAL_MS }), "ask");
  // Never a second request while one is pending.
  assert.equal(checkpointStep({ ...idle, pending: true }), "none");
});

Deno.test("checkpoint rule: a burst asks the idle Worker again without waiting the interval", () => {
  const burst = { ...idle, sinceRequest: CHECKPOINT_BURST_BYTES, msSinceRequest: 5 };
  assert.equal(checkpointStep(burst), "ask");
  assert.equal(checkpointStep({ ...burst, sinceRequest: CHECKPOINT_BURST_BYTES - 1 }), "none");
  assert.equal(checkpointStep({ ...burst, pending: true }), "none");
});

Deno.test("checkpoint rule: the writer checkpoints itself at 4 MiB when the Worker is idle, at 8 MiB always", () => {
  const full = { ...idle, unchecked: MAX_UNCHECKED_BYTES, msSinceRequest: 5 };
  assert.equal(checkpointStep(full), "here");
  assert.equal(checkpointStep({ ...full, pending: true }), "none");
  assert.equal(
    checkpointStep({ ...full, pending: true, unchecked: 2 * MAX_UNCHECKED_BYTES }),
    "here",
  );
});
