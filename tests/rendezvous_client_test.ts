/** The reconnect loop on virtual timers: backoff, health reset, typed outcome, validation. */
import assert from "node:assert/strict";
import { CloseCode } from "../protocol/close_codes.ts";
import {
  type AttemptResult,
  describeDialFailure,
  refusalFix,
  RendezvousClient,
} from "../sync/rendezvous_client.ts";
import { MemoryLogger } from "../sync/logger.ts";
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
    lastError: "could not connect: 1006 unreachable (the transport gave no reason)",
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

Deno.test("dial failures name their cause; permanent refusals name the fix", async () => {
  const url = "ws://hub.example:3001/crdt-sync";
  const cases: [number, string, RegExp][] = [
    [
      1006,
      "failed to connect to WebSocket: tcp connect error",
      /^connection refused by hub\.example:3001/,
    ],
    [1006, "Connection refused (os error 111)", /^connection refused by/],
    [
      1006,
      "failed to connect to WebSocket: dns error",
      /^host name of hub\.example:3001 not resolved/,
    ],
    [
      1006,
      "Invalid status code: 404",
      /^HTTP 404 from hub\.example:3001 at the WebSocket upgrade \(nothing serves the sync endpoint at this path; huskies serves it at \/crdt-sync\)/,
    ],
    [1006, "HTTP 503 Service Unavailable", /^HTTP 503 .*busy or starting/],
    [
      1006,
      "received corrupt message of type InvalidContentType",
      /^TLS failed with hub\.example:3001/,
    ],
    [
      1006,
      "not open after 5000 ms",
      /^timed out reaching hub\.example:3001 \[not open after 5000 ms\]$/,
    ],
    [1006, "", /^1006 unreachable \(the transport gave no reason\)$/],
    [1011, "internal error", /^1011 internal error$/],
  ];
  for (const [code, reason, expected] of cases) {
    assert.match(describeDialFailure(url, code, reason), expected, reason);
  }
  assert.match(
    refusalFix(4403, "ab".repeat(32)),
    new RegExp(`huskies trust add ${"ab".repeat(32)}`),
  );
  assert.match(refusalFix(4403, "ab".repeat(32)), /huskies token create/);
  assert.match(refusalFix(4405, undefined), /new one with `huskies token create` on the hub/);

  // The client logs the cause and the next try, and the fix when refused for good.
  const timers = new VirtualTimers();
  const logger = new MemoryLogger();
  const script = scripted();
  const client = new RendezvousClient(url, script.attempt, {
    timers,
    logger,
    initialMs: 100,
    jitter: 0,
    self: "cd".repeat(32),
  });
  await timers.advance(0);
  script.end({ code: 1006, reason: "failed to connect to WebSocket: dns error" });
  await timers.advance(0);
  const retry = logger.records.at(-1)!;
  assert.equal(retry.message, "rendezvous dial failed; retrying");
  assert.match(String(retry.fields.last), /^could not connect: host name of hub\.example:3001/);
  assert.equal(retry.fields.nextRetryAt, new Date(100).toISOString());
  assert.equal(client.info().nextRetryAt, 100);
  await timers.advance(100);
  script.end({ code: 4403, reason: "key not trusted" });
  await timers.advance(0);
  const refused = logger.records.at(-1)!;
  assert.equal(refused.level, "error");
  assert.match(refused.message, new RegExp(`huskies trust add ${"cd".repeat(32)}`));
  assert.equal((await client.stopped).permanent, true);
});
