import assert from "node:assert/strict";
import { Identity } from "../crdt/identity.ts";
import { parseJoinToken, parsePresentedToken, parseTtl, TokenStore } from "../auth/mod.ts";

const hub = Identity.generate().nodeId;

async function withDir(fn: (dir: string) => void | Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "huskies-tokens-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function presented(token: string): string {
  const { id, secret } = parseJoinToken(token);
  return `${id}.${secret}`;
}

Deno.test("token store file never contains the secret and has mode 0600", () =>
  withDir((dir) => {
    const store = TokenStore.open(dir);
    const { token, id } = store.create({ ttlMs: 3_600_000, uses: 2, scope: "read" }, hub);
    const { secret } = parseJoinToken(token);
    const text = Deno.readTextFileSync(`${dir}/tokens.json`);
    assert.ok(!text.includes(secret), "tokens.json must not contain the secret");
    assert.ok(text.includes(id));
    assert.equal(Deno.statSync(`${dir}/tokens.json`).mode! & 0o777, 0o600);
    const record = JSON.parse(text).tokens[0];
    assert.deepEqual(Object.keys(record).sort(), [
      "created_at",
      "expires_at",
      "hash",
      "id",
      "revoked",
      "scope",
      "uses_left",
    ]);
    assert.equal(record.uses_left, 2);
    assert.equal(record.scope, "read");
  }));

Deno.test("token store list shows no secrets or hashes", () =>
  withDir((dir) => {
    const store = TokenStore.open(dir);
    const { token } = store.create({ ttlMs: 60_000, label: "ci runner" }, hub);
    const { secret } = parseJoinToken(token);
    const listed = store.list();
    assert.equal(listed.length, 1);
    const text = JSON.stringify(listed);
    assert.ok(!text.includes(secret));
    const hash = JSON.parse(Deno.readTextFileSync(`${dir}/tokens.json`)).tokens[0].hash;
    assert.ok(!text.includes(hash));
    assert.deepEqual(Object.keys(listed[0]).sort(), [
      "createdAt",
      "expiresAt",
      "id",
      "label",
      "revoked",
      "scope",
      "status",
      "usesLeft",
    ]);
    assert.equal(listed[0].status, "active");
  }));

Deno.test("token redeem counts uses down and persists them before returning ok", () =>
  withDir((dir) => {
    const store = TokenStore.open(dir);
    const { token } = store.create({ ttlMs: 60_000, uses: 2 }, hub);
    assert.deepEqual(store.redeem(presented(token)), { ok: true, scope: "write" });
    assert.equal(TokenStore.open(dir).list()[0].usesLeft, 1);
    // Another process redeeming sees the persisted count.
    assert.deepEqual(TokenStore.open(dir).redeem(presented(token)), { ok: true, scope: "write" });
    assert.deepEqual(store.redeem(presented(token)), { ok: false, reason: "used" });
  }));

Deno.test("token redeem sees tokens the CLI created while the node runs", () =>
  withDir((dir) => {
    const node = TokenStore.open(dir);
    const { token } = TokenStore.open(dir).create({ ttlMs: 60_000 }, hub);
    assert.deepEqual(node.redeem(presented(token)), { ok: true, scope: "write" });
  }));

Deno.test("token redeem reports unknown, expired, revoked and malformed tokens", () => {
  let clock = 0;
  const store = TokenStore.memory({ now: () => clock });
  const live = store.create({ ttlMs: 1000 }, hub);
  const { id, secret } = parseJoinToken(live.token);
  assert.deepEqual(store.redeem(`${id}.${"f".repeat(64)}`), { ok: false, reason: "unknown" });
  assert.deepEqual(store.redeem(`${"0".repeat(16)}.${secret}`), { ok: false, reason: "unknown" });
  assert.deepEqual(store.redeem(live.token), { ok: false, reason: "malformed" });
  assert.deepEqual(store.redeem(`${id}.${secret.toUpperCase()}`), {
    ok: false,
    reason: "malformed",
  });
  clock = 1000;
  assert.deepEqual(store.redeem(`${id}.${secret}`), { ok: false, reason: "expired" });
  const revoked = store.create({ ttlMs: null }, hub);
  assert.equal(store.revoke(revoked.id), true);
  assert.equal(store.revoke("0".repeat(16)), false);
  assert.deepEqual(store.redeem(presented(revoked.token)), { ok: false, reason: "revoked" });
  assert.equal(store.list().find((t) => t.id === revoked.id)?.status, "revoked");
});

Deno.test("token with a wrong secret reveals nothing about the token's state", () => {
  const store = TokenStore.memory();
  const { token, id } = store.create({ ttlMs: 60_000 }, hub);
  store.revoke(id);
  assert.deepEqual(store.redeem(`${id}.${"a".repeat(64)}`), { ok: false, reason: "unknown" });
  assert.deepEqual(store.redeem(presented(token)), { ok: false, reason: "revoked" });
});

Deno.test("token store prune removes tokens that can no longer be redeemed", () => {
  let clock = 0;
  const store = TokenStore.memory({ now: () => clock });
  store.create({ ttlMs: 10 }, hub);
  const keep = store.create({ ttlMs: null }, hub);
  clock = 10;
  assert.equal(store.prune(), 1);
  assert.deepEqual(store.list().map((t) => t.id), [keep.id]);
});

Deno.test("join token parser returns its parts and names the problem with bad input", () => {
  const { token, id } = TokenStore.memory().create({ ttlMs: 1000 }, hub);
  const parsed = parseJoinToken(`  ${token}\n`);
  assert.equal(parsed.id, id);
  assert.equal(parsed.hubKey, hub);
  assert.match(token, /^hjt1\.[0-9a-f]{16}\.[0-9a-f]{64}\.[0-9a-f]{64}$/);
  const [, , secret] = token.split(".");
  const cases: Array<[string, RegExp]> = [
    ["hjt2." + token.slice(5), /must start with "hjt1\."/],
    [token.split(".").slice(0, 3).join("."), /4 dot-separated parts/],
    [token.replace(id, "xyz"), /token id/],
    [token.replace(secret, "00"), /secret/],
    [token.replace(hub, "00"), /hub node id must be 64 hex/],
    [token.replace(hub, "01" + "00".repeat(31)), /hub node id: public key is a small-order point/],
  ];
  for (const [text, message] of cases) {
    assert.throws(() => parseJoinToken(text), (error: Error) => {
      assert.ok(error instanceof TypeError);
      assert.match(error.message, /^Cannot parse join token: /);
      assert.match(error.message, message);
      assert.ok(!error.message.includes(secret), "the secret must not appear in errors");
      return true;
    });
  }
  assert.deepEqual(parsePresentedToken(presented(token)), { id, secret });
  assert.equal(parsePresentedToken(token), undefined);
});

Deno.test("ttl parser reads seconds, minutes, hours and days", () => {
  assert.equal(parseTtl("90s"), 90_000);
  assert.equal(parseTtl("30m"), 1_800_000);
  assert.equal(parseTtl("1h"), 3_600_000);
  assert.equal(parseTtl("7d"), 604_800_000);
  assert.throws(() => parseTtl("1w"), SyntaxError);
  assert.throws(() => parseTtl("h"), SyntaxError);
  assert.throws(() => parseTtl("1.5h"), SyntaxError);
  assert.throws(() => parseTtl("-1h"), SyntaxError);
  assert.throws(() => parseTtl("0m"), RangeError);
  assert.throws(() => parseTtl("99999999999999999d"), RangeError);
});

Deno.test("token store create validates its options", () => {
  const store = TokenStore.memory();
  assert.throws(() => store.create({ ttlMs: 0 }, hub), RangeError);
  assert.throws(() => store.create({ ttlMs: 1000, uses: 0 }, hub), RangeError);
  assert.throws(() => store.create({ ttlMs: 1000 }, "00"), TypeError);
  assert.throws(() => store.create({ ttlMs: 1000, scope: "admin" as "read" }, hub), TypeError);
  assert.equal(store.list().length, 0);
});

Deno.test("token store refuses a corrupt tokens file and leaves it intact", () =>
  withDir((dir) => {
    Deno.writeTextFileSync(`${dir}/tokens.json`, '{"version":1,"tokens":[{"id":1}]}', {
      mode: 0o600,
    });
    assert.throws(() => TokenStore.open(dir), /Cannot read token file .*tokens\.json/);
    assert.equal(
      Deno.readTextFileSync(`${dir}/tokens.json`),
      '{"version":1,"tokens":[{"id":1}]}',
    );
  }));
