import assert from "node:assert/strict";
import { refusalMessage, WriteGuard, WriteRefusedError } from "../crdt/write_guard.ts";

Deno.test("write guard: evidence outranks claims, and the order of reasons is fixed", () => {
  const guard = new WriteGuard({}, 0);
  assert.equal(guard.check(0, 0, undefined), undefined);
  guard.noteClaim("p", 9, 0, 0);
  assert.equal(guard.check(0, 0, undefined)?.reason, "peer-claim");
  guard.noteOwnEvidence(4);
  assert.equal(guard.check(0, 0, undefined)?.reason, "own-evidence");
  guard.noteRecordedHead(6);
  assert.deepEqual(guard.check(0, 0, undefined), { reason: "lost-history", recorded: 6, held: 0 });
  assert.deepEqual(guard.check(0, 0, 3), { reason: "own-key-forked", forkPoint: 3 });
  // Holding the operations lifts each reason in turn.
  assert.equal(guard.check(0, 6, undefined)?.reason, "peer-claim");
  assert.equal(guard.check(0, 9, undefined), undefined);
});

Deno.test("write guard: a claim's deadline never moves, and a discredited peer is ignored until distrust ends", () => {
  const guard = new WriteGuard({ claimTimeoutMs: 1_000, distrustMs: 10_000 }, 0);
  guard.noteClaim("p", 5, 0, 0);
  guard.noteClaim("p", 50, 0, 900); // raising the claim does not extend it
  assert.deepEqual(guard.check(900, 0, undefined), {
    reason: "peer-claim",
    peer: "p",
    claimed: 50,
    held: 0,
    until: 1_000,
  });
  assert.equal(guard.check(1_000, 0, undefined), undefined);
  guard.noteClaim("p", 60, 0, 5_000);
  assert.equal(guard.check(5_000, 0, undefined), undefined);
  guard.noteClaim("p", 60, 0, 11_000); // distrust over: believed (briefly) again
  assert.equal(guard.check(11_000, 0, undefined)?.reason, "peer-claim");
  // A claim we already meet is no claim at all.
  const met = new WriteGuard({}, 0);
  met.noteClaim("q", 3, 3, 0);
  assert.equal(met.check(0, 3, undefined), undefined);
  assert.deepEqual(met.state(0, 3, undefined).claims, []);
});

Deno.test("write guard: refusal messages say what happened and what to do; only a forked key is final", () => {
  const forked = new WriteRefusedError({ reason: "own-key-forked", forkPoint: 2 }, 0);
  assert.equal(forked.retryable, false);
  assert.equal(forked.name, "WriteRefusedError");
  const starting = new WriteRefusedError({ reason: "starting", until: 2_500 }, 0);
  assert.equal(starting.retryable, true);
  assert.equal(starting.message, refusalMessage({ reason: "starting", until: 2_500 }, 0));
  assert.match(starting.message, /^Cannot commit: the node is starting .* retry in 3 s at most$/);
  assert.match(
    refusalMessage({ reason: "lost-history", recorded: 5, held: 3 }, 0),
    /^Cannot commit: .* holds 3 .* signed 5 .*--accept-lost-history/,
  );
});

Deno.test("write guard: a claim being met (our own operations arriving) is extended; a stalled one expires", () => {
  const guard = new WriteGuard({ claimTimeoutMs: 1_000 }, 0);
  guard.noteClaim("hub", 100, 0, 0);
  assert.equal(guard.check(900, 40, undefined)?.reason, "peer-claim"); // progress at 900
  assert.equal(guard.check(1_800, 40, undefined)?.reason, "peer-claim");
  assert.equal(guard.check(1_900, 40, undefined), undefined); // 1 s without progress
});
