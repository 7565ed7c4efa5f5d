import assert from "node:assert/strict";
import { AdmissionLimiter } from "../auth/mod.ts";
import { addressKey } from "../auth/limits.ts";

Deno.test("admission limiter caps concurrent unauthenticated connections until released", () => {
  const limiter = new AdmissionLimiter({ maxUnauthenticated: 2, now: () => 0 });
  const first = limiter.tryAdmit("10.0.0.1");
  const second = limiter.tryAdmit("10.0.0.2");
  assert.ok(first.ok && second.ok);
  const third = limiter.tryAdmit("10.0.0.3");
  assert.equal(third.ok, false);
  assert.equal(!third.ok && third.reason, "too many unauthenticated connections");
  first.release();
  first.release(); // a second release does not free another slot
  assert.equal(limiter.active, 1);
  const fourth = limiter.tryAdmit("10.0.0.3");
  assert.ok(fourth.ok);
  assert.equal(limiter.tryAdmit("10.0.0.4").ok, false);
});

Deno.test("admission limiter caps attempts per address in a sliding minute", () => {
  let clock = 0;
  const limiter = new AdmissionLimiter({ attemptsPerMinutePerAddress: 3, now: () => clock });
  for (let i = 0; i < 3; i++) {
    const admission = limiter.tryAdmit("192.0.2.1");
    assert.ok(admission.ok);
    admission.release();
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
