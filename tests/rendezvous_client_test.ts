/** The reconnect loop on virtual timers: backoff, health reset, typed outcome, validation. */
import assert from "node:assert/strict";
import { CloseCode } from "../protocol/close_codes.ts";
import { type AttemptResult, RendezvousClient } from "../sync/rendezvous_client.ts";
import { VirtualTimers } from "../testing.ts";

/** An attempt function whose attempts the test ends by hand. */
function scripted() {
  const started: number[] = [];
  let finish: ((result: AttemptResult) => void) | undefined;
  let authenticate: (() => void) | undefined;
  return {
    started,
    attempt: (signal: AbortSignal, onAuthenticated: () => void) => {
      const { promise, resolve } = Promise.withResolvers<AttemptResult>();
      started.push(Date.now());
      finish = resolve;
      authenticate = onAuthenticated;
      signal.addEventListener("abort", () => resolve({ code: 1000, reason: "client stopping" }));
      return promise;
    },
    end(result: AttemptResult) {
      finish!(result);
    },
    authenticate() {
      authenticate!();
    },
  };
}

Deno.test("the rendezvous client backs off on virtual time and reports its next retry", async () => {
  const timers = new VirtualTimers();
  const script = scripted();
  const client = new RendezvousClient("sim://hub", script.attempt, {
    timers,
    initialMs: 100,
    maxMs: 1000,
    jitter: 0,
  });
  await timers.advance(0);
  assert.equal(script.started.length, 1);
  script.end({ code: 1006, reason: "" });
  await timers.advance(0);
  assert.deepEqual(client.info(), {
    url: "sim://hub",
    state: "waiting",
    failures: 1,
    lastError: "connection failed: 1006 unreachable",
    nextRetryAt: 100,
  });
  await timers.advance(99);
  assert.equal(script.started.length, 1, "no attempt before the backoff ends");
  await timers.advance(1);
  assert.equal(script.started.length, 2);
  script.end({ code: 1006, reason: "" });
  await timers.advance(0);
  assert.equal(client.info().nextRetryAt, 100 + 200, "the delay doubles");
  await timers.advance(200);
  script.authenticate();
  assert.equal(client.info().state, "connected");
  // A session that lasts past healthyAfterMs (default 10 s) resets the failure count.
  await timers.advance(10_000);
  script.end({ code: CloseCode.GOING_AWAY, reason: "hub restarting", authenticatedAt: 300 });
  await timers.advance(0);
  assert.equal(client.info().failures, 0, "the healthy session reset the count");
  assert.equal(client.info().nextRetryAt, timers.now() + 100, "and the delay");
  assert.equal(client.info().lastError, "session ended: 1001 hub restarting");
  const outcome = await client.stop();
  assert.deepEqual(outcome, { code: 1000, reason: "client stopped", permanent: false });
  assert.equal(client.info().state, "stopped");
});

Deno.test("the rendezvous client stops on a permanent refusal and says why", async () => {
  const timers = new VirtualTimers();
  const script = scripted();
  const client = new RendezvousClient("sim://hub", script.attempt, { timers });
  await timers.advance(0);
  script.end({ code: CloseCode.NOT_TRUSTED, reason: "key not trusted" });
  const outcome = await client.stopped;
  assert.deepEqual(outcome, {
    code: CloseCode.NOT_TRUSTED,
    reason: "key not trusted",
    permanent: true,
  });
  assert.deepEqual(client.info().outcome, outcome);
  assert.equal(timers.pending, 0, "no timer is left behind");
});

Deno.test("rendezvous options are checked up front with Cannot connect messages", () => {
  const attempt = () => Promise.resolve({ code: 1006, reason: "" });
  for (
    const [options, pattern] of [
      [{ initialMs: 0 }, /^Cannot connect: initialMs must be a number >= 1/],
      [{ maxMs: Number.NaN }, /^Cannot connect: maxMs/],
      [{ jitter: 1.5 }, /^Cannot connect: jitter must be a number between 0 and 1/],
      [{ healthyAfterMs: -1 }, /^Cannot connect: healthyAfterMs/],
      [{ initialMs: 500, maxMs: 100 }, /^Cannot connect: maxMs \(100\) must not be below/],
    ] as const
  ) {
    assert.throws(
      () => new RendezvousClient("sim://x", attempt, { ...options, timers: new VirtualTimers() }),
      (error: unknown) => error instanceof RangeError && pattern.test(error.message),
    );
  }
});
