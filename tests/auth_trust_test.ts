import assert from "node:assert/strict";
import { Identity } from "../crdt/identity.ts";
import { CloseCode } from "../protocol/close_codes.ts";
import {
  AccessPolicy,
  ClientHandshake,
  makeAuthorizer,
  ServerHandshake,
  TokenStore,
  type TrustChange,
  TrustStore,
} from "../auth/mod.ts";

const IDENTITY_POINT = "0100000000000000000000000000000000000000000000000000000000000000";
const a = Identity.generate().nodeId;
const b = Identity.generate().nodeId;
const c = Identity.generate().nodeId;

async function withDir(fn: (dir: string) => void | Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "huskies-trust-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("trust store persists add, remove and list in trust.json with mode 0600", () =>
  withDir((dir) => {
    let clock = 1000;
    const store = TrustStore.open(dir, { now: () => clock });
    assert.ok(store.isEmpty());
    store.add(a, "write", "laptop");
    clock = 2000;
    store.add(b, "read");
    assert.equal(Deno.statSync(`${dir}/trust.json`).mode! & 0o777, 0o600);

    const file = JSON.parse(Deno.readTextFileSync(`${dir}/trust.json`));
    assert.equal(file.version, 1);
    assert.deepEqual(
      new Set(file.keys.map((k: { key: string }) => k.key)),
      new Set([a, b]),
    );

    const reopened = TrustStore.open(dir);
    assert.equal(reopened.scopeOf(a), "write");
    assert.equal(reopened.scopeOf(b), "read");
    const listed = reopened.list().find((e) => e.key === a);
    assert.deepEqual(listed, {
      key: a,
      scope: "write",
      label: "laptop",
      addedAt: 1000,
      source: "store",
    });

    assert.equal(reopened.remove(a), true);
    assert.equal(reopened.remove(a), false);
    assert.deepEqual(TrustStore.open(dir).list().map((e) => e.key), [b]);
  }));

Deno.test("trust store reload picks up changes made by another instance on the same dir", () =>
  withDir((dir) => {
    const node = TrustStore.open(dir);
    const cli = TrustStore.open(dir);
    cli.add(a, "write");
    cli.add(b, "write");
    const first = node.reload();
    assert.deepEqual({ ...first, added: first.added.sort() }, {
      added: [a, b].sort(),
      removed: [],
      changed: [],
    });
    assert.equal(node.scopeOf(a), "write");

    cli.remove(a);
    cli.add(b, "read");
    const change = node.reload();
    assert.deepEqual(change, { added: [], removed: [a], changed: [b] });
    assert.equal(node.scopeOf(a), undefined);
    assert.equal(node.scopeOf(b), "read");
    // Nothing changed since: no reread, no change.
    assert.deepEqual(node.reload(), { added: [], removed: [], changed: [] });
  }));

Deno.test("trust store add by one instance keeps keys added by another", () =>
  withDir((dir) => {
    const one = TrustStore.open(dir);
    const two = TrustStore.open(dir);
    one.add(a, "write");
    two.add(b, "write");
    assert.deepEqual(
      TrustStore.open(dir).list().map((e) => e.key).sort(),
      [a, b].sort(),
    );
  }));

Deno.test("trust store watch reports keys removed by the CLI to a running node", async () => {
  await withDir(async (dir) => {
    const node = TrustStore.open(dir);
    const cli = TrustStore.open(dir);
    cli.add(a, "write");
    node.reload();
    const controller = new AbortController();
    const seen: TrustChange[] = [];
    const changed = new Promise<void>((resolve) => {
      node.watch((change) => {
        seen.push(change);
        resolve();
      }, { signal: controller.signal, intervalMs: 10 });
    });
    cli.remove(a);
    await changed;
    controller.abort();
    assert.deepEqual(seen[0], { added: [], removed: [a], changed: [] });
  });
});

Deno.test("trust store watch also reports removals made through the same instance", () => {
  const store = TrustStore.memory([a, b]);
  const controller = new AbortController();
  const seen: TrustChange[] = [];
  store.watch((change) => seen.push(change), { signal: controller.signal });
  store.remove(a);
  controller.abort();
  store.remove(b);
  assert.deepEqual(seen, [{ added: [], removed: [a], changed: [] }]);
});

Deno.test("trust store refuses invalid keys with a TypeError", () => {
  const store = TrustStore.memory();
  for (const bad of ["", "zz", a.toUpperCase(), a.slice(2), a + "00"]) {
    assert.throws(() => store.add(bad, "write"), (error: Error) => {
      assert.ok(error instanceof TypeError);
      assert.ok(error.message.startsWith("Cannot trust key: "), error.message);
      return true;
    });
  }
  assert.throws(() => store.add(a, "admin" as "write"), TypeError);
  assert.ok(store.isEmpty());
});

Deno.test("trust store refuses small-order keys such as the identity point", () => {
  const store = TrustStore.memory();
  assert.throws(() => store.add(IDENTITY_POINT, "write"), /small-order/);
  // An all-zero encoding is a small-order point too (order 4).
  assert.throws(() => store.add("00".repeat(32), "write"), TypeError);
  assert.throws(() => TrustStore.memory([IDENTITY_POINT]), TypeError);
});

Deno.test("trust store refuses an invalid config key when opened", () =>
  withDir((dir) => {
    assert.throws(
      () => TrustStore.open(dir, { configKeys: [a, IDENTITY_POINT] }),
      /trusted_keys\[1\]/,
    );
  }));

Deno.test("trust store config keys get write scope and the trust file can override them", () =>
  withDir((dir) => {
    const store = TrustStore.open(dir, { configKeys: [a, b] });
    assert.equal(store.scopeOf(a), "write");
    assert.equal(store.isEmpty(), false);
    store.add(b, "read");
    assert.equal(store.scopeOf(b), "read");
    assert.equal(store.remove(a), false, "a config key cannot be removed through the store");
    assert.equal(store.scopeOf(a), "write");
    assert.deepEqual(
      store.list().map((e) => [e.key, e.scope, e.source]),
      [[b, "read", "store"], [a, "write", "config"]],
    );
  }));

Deno.test("trust store refuses a corrupt trust file and does not overwrite it", () =>
  withDir((dir) => {
    Deno.writeTextFileSync(`${dir}/trust.json`, "{oops", { mode: 0o600 });
    assert.throws(() => TrustStore.open(dir), /Cannot read trust file .*trust\.json/);
    Deno.writeTextFileSync(`${dir}/trust.json`, '{"version":1,"keys":[]}\n');
    const opened = TrustStore.open(dir);
    Deno.writeTextFileSync(`${dir}/trust.json`, "{oops");
    assert.throws(() => opened.add(a, "write"), /Cannot read trust file/);
    assert.equal(Deno.readTextFileSync(`${dir}/trust.json`), "{oops");
  }));

Deno.test("trust store refuses a trust file writable by others", () =>
  withDir((dir) => {
    TrustStore.open(dir).add(a, "write");
    Deno.chmodSync(`${dir}/trust.json`, 0o666);
    assert.throws(() => TrustStore.open(dir), /chmod 600/);
  }));

Deno.test("access policy in a closed mesh admits only trusted keys and lets only writers author", () => {
  const trust = TrustStore.memory([{ key: a, scope: "write" }, { key: b, scope: "read" }]);
  const policy = new AccessPolicy(trust, { open: false });
  assert.equal(policy.connectScope(a), "write");
  assert.equal(policy.connectScope(b), "read");
  assert.equal(policy.connectScope(c), undefined);
  assert.equal(policy.mayAuthor(a), true);
  assert.equal(policy.mayAuthor(b), false);
  assert.equal(policy.mayAuthor(c), false);
});

Deno.test("access policy in an open mesh admits unknown keys but still refuses read-scoped authors", () => {
  const trust = TrustStore.memory([{ key: b, scope: "read" }]);
  const policy = new AccessPolicy(trust, { open: true });
  assert.equal(policy.connectScope(c), "write");
  assert.equal(policy.connectScope(b), "read");
  assert.equal(policy.mayAuthor(c), true);
  assert.equal(policy.mayAuthor(b), false);
});

Deno.test("access policy when-empty is open until the first key is trusted", () => {
  const trust = TrustStore.memory();
  const policy = new AccessPolicy(trust, { open: "when-empty" });
  assert.equal(policy.isOpen(), true);
  assert.equal(policy.connectScope(c), "write");
  trust.add(a, "write");
  assert.equal(policy.isOpen(), false);
  assert.equal(policy.connectScope(c), undefined);
  assert.equal(policy.mayAuthor(c), false);
  assert.throws(() => new AccessPolicy(trust, {} as { open: boolean }), TypeError);
});

Deno.test("join over files trusts the new key in trust.json and uses up the token in tokens.json", () =>
  withDir((dir) => {
    const hub = Identity.generate();
    const joiner = Identity.generate();
    const trust = TrustStore.open(dir);
    const tokens = TokenStore.open(dir);
    // The CLI creates the token in its own process while the node runs.
    const { token } = TokenStore.open(dir).create({ ttlMs: 60_000 }, hub.nodeId);
    const authorize = makeAuthorizer(new AccessPolicy(trust, { open: false }), tokens);
    const handshake = (withToken: boolean) => {
      const server = new ServerHandshake({ identity: hub, authorize });
      const client = new ClientHandshake({
        identity: joiner,
        hubKey: hub.nodeId,
        token: withToken ? token : undefined,
      });
      client.start();
      return server.receive(client.receive(server.start().send!).send!);
    };
    assert.deepEqual(handshake(true).done, { peer: joiner.nodeId, scope: "write" });
    assert.equal(TrustStore.open(dir).scopeOf(joiner.nodeId), "write");
    assert.equal(TokenStore.open(dir).list()[0].status, "used");
    assert.ok(handshake(false).done);
    // A fresh node process sees the same state.
    const restarted = makeAuthorizer(
      new AccessPolicy(TrustStore.open(dir), { open: false }),
      TokenStore.open(dir),
    );
    assert.deepEqual(restarted(joiner.nodeId, undefined), { ok: true, scope: "write" });
    assert.deepEqual(restarted(c, token.split(".").slice(1, 3).join(".")), {
      ok: false,
      code: CloseCode.TOKEN_REFUSED,
      reason: "token used up",
    });
  }));
