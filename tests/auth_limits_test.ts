import assert from "node:assert/strict";
import { AdmissionLimiter } from "../auth/mod.ts";
import { addressKey } from "../auth/limits.ts";
import { backoffDelay } from "../sync/backoff.ts";
import { mulberry32 as seeded } from "../testing/sim_random.ts";

Deno.test("admission limiter caps concurrent unauthenticated connections until released", () => {
  const limiter = new AdmissionLimiter({ maxUnauthenticated: 2, now: () => 0 });
  const first = limiter.tryAdmit("10.0.0.1");
  const second = limiter.tryAdmit("10.0.0.2");
  assert.ok(first.ok && second.ok);
  const third = limiter.tryAdmit("10.0.0.3");
  assert.equal(third.ok, false);
  assert.equal(!third.ok && third.reason, "too many unauthenticated connections");
  first.release(true);
  first.release(true); // a second release does not free another slot
  assert.equal(limiter.active, 1);
  const fourth = limiter.tryAdmit("10.0.0.3");
  assert.ok(fourth.ok);
  assert.equal(limiter.tryAdmit("10.0.0.4").ok, false);
});

Deno.test("admission limiter caps failed attempts per address in a sliding minute", () => {
  let clock = 0;
  const limiter = new AdmissionLimiter({ attemptsPerMinutePerAddress: 3, now: () => clock });
  for (let i = 0; i < 3; i++) {
    const admission = limiter.tryAdmit("192.0.2.1");
    assert.ok(admission.ok);
    admission.release(false);
    clock += 10_000;
  }
  // t = 30 s: three attempts in the last minute.
  const refused = limiter.tryAdmit("192.0.2.1");
  assert.equal(refused.ok, false);
  assert.equal(!refused.ok && refused.reason, "too many attempts");
  assert.equal(!refused.ok && refused.retryAfterMs, 30_000);
  // Another address is not affected.
  assert.ok(limiter.tryAdmit("192.0.2.2").ok);
  // t = 59.999 s: the first attempt (t = 0) is still inside the window.
  clock = 59_999;
  assert.equal(limiter.tryAdmit("192.0.2.1").ok, false);
  // t = 60 s: it slid out, one more attempt fits.
  clock = 60_000;
  assert.ok(limiter.tryAdmit("192.0.2.1").ok);
  assert.equal(limiter.tryAdmit("192.0.2.1").ok, false);
});

Deno.test("admission limiter does not count refused attempts", () => {
  let clock = 0;
  const limiter = new AdmissionLimiter({ attemptsPerMinutePerAddress: 1, now: () => clock });
  assert.ok(limiter.tryAdmit("192.0.2.1").ok);
  clock = 30_000;
  assert.equal(limiter.tryAdmit("192.0.2.1").ok, false);
  clock = 60_000;
  assert.ok(limiter.tryAdmit("192.0.2.1").ok);
});

Deno.test("admission limiter forgets idle addresses and caps how many it tracks", () => {
  let clock = 0;
  const limiter = new AdmissionLimiter({
    maxUnauthenticated: 100_000,
    maxTrackedAddresses: 100,
    now: () => clock,
  });
  for (let i = 0; i < 500; i++) limiter.tryAdmit(`10.0.${i >> 8}.${i & 255}`).ok;
  assert.equal(limiter.trackedAddresses, 100);
  clock = 60_000;
  assert.ok(limiter.tryAdmit("10.9.9.9").ok);
  assert.equal(limiter.trackedAddresses, 1);
});

Deno.test("admission limiter counts an IPv6 /64 as one address", () => {
  const limiter = new AdmissionLimiter({ attemptsPerMinutePerAddress: 2, now: () => 0 });
  assert.ok(limiter.tryAdmit("2001:db8:1:2::1").ok);
  assert.ok(limiter.tryAdmit("[2001:db8:1:2:ffff::9]").ok);
  assert.equal(limiter.tryAdmit("2001:0db8:0001:0002:0:0:0:7").ok, false);
  assert.ok(limiter.tryAdmit("2001:db8:1:3::1").ok);
});

Deno.test("address key normalises IPv6 prefixes and IPv4-mapped addresses", () => {
  assert.equal(addressKey("203.0.113.7"), "203.0.113.7");
  assert.equal(addressKey("::ffff:203.0.113.7"), "203.0.113.7");
  assert.equal(addressKey("2001:DB8::1"), "2001:db8:0:0::/64");
  assert.equal(addressKey("fe80::1%eth0"), "fe80:0:0:0::/64");
  assert.equal(addressKey("::1"), "0:0:0:0::/64");
  assert.equal(addressKey("not an address"), "not an address");
});

Deno.test("admission limiter refuses nonsensical limits", () => {
  assert.throws(() => new AdmissionLimiter({ maxUnauthenticated: 0 }), RangeError);
  assert.throws(() => new AdmissionLimiter({ attemptsPerMinutePerAddress: 1.5 }), RangeError);
});

Deno.test("admission limiter does not count handshakes that authenticated", () => {
  let clock = 0;
  const limiter = new AdmissionLimiter({ now: () => clock });
  // 40 successful connections from one address in a few seconds (finding 11).
  for (let i = 0; i < 40; i++) {
    const admission = limiter.tryAdmit("192.0.2.1");
    assert.ok(admission.ok, `attempt ${i + 1} refused`);
    clock += 100;
    admission.release(true);
  }
  const trusted = limiter.tryAdmit("192.0.2.1");
  assert.ok(trusted.ok);
  trusted.release(true);
  assert.equal(limiter.trackedAddresses, 0);
});

Deno.test("admission limiter counts unfinished handshakes and failures, not successes", () => {
  let clock = 0;
  const limiter = new AdmissionLimiter({ attemptsPerMinutePerAddress: 3, now: () => clock });
  const hanging = limiter.tryAdmit("192.0.2.1");
  const failing = limiter.tryAdmit("192.0.2.1");
  assert.ok(hanging.ok && failing.ok);
  failing.release(false);
  const honest = limiter.tryAdmit("192.0.2.1");
  assert.ok(honest.ok);
  honest.release(true);
  // One still running and one failed: one more fits, then the address is full.
  const third = limiter.tryAdmit("192.0.2.1");
  assert.ok(third.ok);
  assert.equal(limiter.tryAdmit("192.0.2.1").ok, false);
  // A handshake that authenticated after a late release still frees its place.
  third.release(true);
  assert.ok(limiter.tryAdmit("192.0.2.1").ok);
  // Failures stay counted for the whole window.
  hanging.release(false);
  clock = 59_999;
  assert.equal(limiter.tryAdmit("192.0.2.1").ok, false);
});

/**
 * Virtual-time model of a hub restart: `spokes` nodes behind one address
 * reconnect with the node's own backoff formula, each handshake takes
 * `handshakeMs`, and every refusal is retried after the next backoff delay.
 * Returns the virtual time (ms) at which the last spoke authenticated.
 */
function hubRestart(spokes: number, handshakeMs: number, random: () => number): number {
  let clock = 0;
  const limiter = new AdmissionLimiter({ now: () => clock });
  type Event = { at: number; run: () => void };
  const queue: Event[] = [];
  const schedule = (at: number, run: () => void) => {
    queue.push({ at, run });
  };
  let lastIn = 0;
  let authenticated = 0;
  const attempt = (failures: number) => {
    const admission = limiter.tryAdmit("198.51.100.9");
    if (admission.ok) {
      schedule(clock + handshakeMs, () => {
        admission.release(true);
        authenticated++;
        lastIn = clock;
      });
    } else {
      schedule(clock + backoffDelay(failures + 1, { random }), () => attempt(failures + 1));
    }
  };
  // The hub went away: every spoke's session closed at t = 0 and it waits its first delay.
  for (let i = 0; i < spokes; i++) schedule(backoffDelay(1, { random }), () => attempt(1));
  while (queue.length > 0 && clock < 600_000) {
    queue.sort((a, b) => a.at - b.at);
    const next = queue.shift()!;
    clock = next.at;
    next.run();
  }
  assert.equal(authenticated, spokes);
  return lastIn;
}

Deno.test("with default limits, 200 spokes on one address are all back within 30 s of a hub restart", () => {
  for (const seed of [1, 2, 3, 4, 5]) {
    for (const handshakeMs of [20, 250]) {
      const lastIn = hubRestart(200, handshakeMs, seeded(seed));
      assert.ok(
        lastIn <= 30_000,
        `seed ${seed}, ${handshakeMs} ms handshakes: last in at ${lastIn} ms`,
      );
    }
  }
});

Deno.test("one address gets a fair share of the unauthenticated pool", () => {
  // Slowloris (finding 5): 100 sockets from 4 addresses that never finish the handshake,
  // arriving interleaved or one address after another.
  const orders = {
    interleaved: (i: number) => i % 4,
    sequential: (i: number) => Math.floor(i / 25),
  };
  for (const [name, addressOf] of Object.entries(orders)) {
    const limiter = new AdmissionLimiter({ now: () => 0 });
    for (let i = 0; i < 100; i++) {
      const admission = limiter.tryAdmit(`203.0.113.${addressOf(i)}`);
      if (!admission.ok) {
        assert.equal(admission.reason, "too many unauthenticated connections from this address");
      }
    }
    // Over its share of max(2, 64 / 8) = 8 only while less than half the pool is in use.
    assert.ok(limiter.active <= 32 + 3 * 8, `${name}: ${limiter.active} held`);
    const trusted = limiter.tryAdmit("198.51.100.20");
    assert.ok(trusted.ok, `${name}: a peer from another address is refused`);
  }
});

Deno.test("the per-address share is configurable and freed on release", () => {
  const limiter = new AdmissionLimiter({
    maxUnauthenticated: 10,
    maxUnauthenticatedPerAddress: 1,
    now: () => 0,
  });
  const holders = [1, 2, 3, 4, 5].map((i) => limiter.tryAdmit(`192.0.2.${i}`));
  const first = limiter.tryAdmit("2001:db8:1:2::1");
  assert.ok(first.ok && holders.every((h) => h.ok));
  assert.equal(limiter.tryAdmit("2001:db8:1:2::99").ok, false); // same /64, pool half full
  first.release(true);
  assert.ok(limiter.tryAdmit("2001:db8:1:2::99").ok);
  // A small pool still lets two connections in from one address.
  const small = new AdmissionLimiter({ maxUnauthenticated: 4, now: () => 0 });
  assert.ok(small.tryAdmit("192.0.2.1").ok && small.tryAdmit("192.0.2.1").ok);
  const third = small.tryAdmit("192.0.2.1");
  assert.equal(!third.ok && third.reason, "too many unauthenticated connections from this address");
  assert.throws(
    () => new AdmissionLimiter({ maxUnauthenticatedPerAddress: 0 }),
    RangeError,
  );
});
