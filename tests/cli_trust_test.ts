import assert from "node:assert/strict";
import { join } from "node:path";
import { huskies, removeDir, ServeProcess, tempDir, waitFor } from "./cli_helpers.ts";

async function newKey(dir: string): Promise<string> {
  const created = await huskies(["keys", "create", "--data-dir", dir, "--json"]);
  assert.equal(created.code, 0, created.stderr);
  return JSON.parse(created.stdout).nodeId;
}

Deno.test("trust add, list and remove edit trust.json", async () => {
  const dir = await tempDir();
  try {
    const data = join(dir, "hub");
    const key = await newKey(join(dir, "other"));
    const added = await huskies([
      "trust",
      "add",
      key.toUpperCase(),
      "--scope",
      "read",
      "--label",
      "build box",
      "--data-dir",
      data,
    ]);
    assert.equal(added.code, 0, added.stderr);
    assert.match(added.stdout, new RegExp(`Trusted ${key} with read scope`));
    assert.equal((await Deno.stat(join(data, "trust.json"))).mode! & 0o777, 0o600);

    const listed = await huskies(["trust", "list", "--json", "--data-dir", data]);
    const entries = JSON.parse(listed.stdout);
    assert.equal(entries.length, 1);
    assert.deepEqual(
      { key: entries[0].key, scope: entries[0].scope, label: entries[0].label },
      { key, scope: "read", label: "build box" },
    );
    const text = await huskies(["trust", "list", "--data-dir", data]);
    assert.match(text.stdout, /KEY\s+SCOPE\s+SOURCE/);
    assert.match(text.stdout, new RegExp(`${key}\\s+read\\s+trust\\.json`));

    const removed = await huskies(["trust", "remove", key, "--data-dir", data]);
    assert.equal(removed.code, 0, removed.stderr);
    const again = await huskies(["trust", "remove", key, "--data-dir", data]);
    assert.equal(again.code, 3);
    assert.match(again.stderr, /it is not trusted/);
    const empty = await huskies(["trust", "list", "--data-dir", data]);
    assert.equal(empty.stdout.trim(), "No trusted keys.");
  } finally {
    await removeDir(dir);
  }
});

Deno.test("trust add refuses a bad key or scope with exit 2 and writes nothing", async () => {
  const dir = await tempDir();
  try {
    const badKey = await huskies(["trust", "add", "abc", "--data-dir", dir]);
    assert.equal(badKey.code, 2);
    assert.match(badKey.stderr, /Cannot trust key: key must be 64 lowercase hex characters/);
    const smallOrder = await huskies(["trust", "add", "00".repeat(32), "--data-dir", dir]);
    assert.equal(smallOrder.code, 2);
    const key = await newKey(join(dir, "k"));
    const badScope = await huskies(["trust", "add", key, "--scope", "admin", "--data-dir", dir]);
    assert.equal(badScope.code, 2);
    assert.match(badScope.stderr, /--scope "admin": expected write or read/);
    await assert.rejects(Deno.stat(join(dir, "trust.json")), Deno.errors.NotFound);
    const missing = await huskies(["trust", "add", "--data-dir", dir]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /missing <key>/);
  } finally {
    await removeDir(dir);
  }
});

Deno.test("trust list shows trusted_keys from project.toml, which trust remove cannot remove", async () => {
  const dir = await tempDir();
  try {
    const key = await newKey(join(dir, "k"));
    await Deno.mkdir(join(dir, "hub"));
    await Deno.writeTextFile(join(dir, "hub", "project.toml"), `trusted_keys = ["${key}"]\n`);
    const listed = await huskies(["trust", "list", "--data-dir", join(dir, "hub")]);
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, new RegExp(`${key}\\s+write\\s+project\\.toml`));
    const removed = await huskies(["trust", "remove", key, "--data-dir", join(dir, "hub")]);
    assert.equal(removed.code, 3);
    assert.match(removed.stderr, /comes from trusted_keys in .*project\.toml/);
  } finally {
    await removeDir(dir);
  }
});

Deno.test("a running node picks up trust remove by itself and drops the peer", async () => {
  const dir = await tempDir();
  let hub: ServeProcess | undefined;
  let spoke: ServeProcess | undefined;
  try {
    const hubDir = join(dir, "hub");
    const spokeDir = join(dir, "spoke");
    hub = await ServeProcess.start(["--data-dir", hubDir, "--listen", "127.0.0.1:0"]);
    const token = (await huskies(["token", "create", "--data-dir", hubDir])).stdout.trim();
    spoke = await ServeProcess.start([
      "--data-dir",
      spokeDir,
      "--listen",
      "127.0.0.1:0",
      "--rendezvous",
      hub.syncUrl,
      "--join",
      token,
    ]);
    const peersOf = async (data: string) => {
      const status = await huskies(["status", "--json", "--data-dir", data]);
      return JSON.parse(status.stdout).peers as { peer: string; state: string }[];
    };
    await waitFor(
      async () => (await peersOf(hubDir)).length === 1 || undefined,
      "the spoke to join",
    );
    const trusted = await huskies(["trust", "list", "--json", "--data-dir", hubDir]);
    assert.ok(
      JSON.parse(trusted.stdout).some((e: { key: string }) => e.key === spoke!.nodeId),
      "redeeming the token trusted the spoke",
    );

    const removed = await huskies(["trust", "remove", spoke.nodeId, "--data-dir", hubDir]);
    assert.equal(removed.code, 0, removed.stderr);
    await waitFor(
      async () => (await peersOf(hubDir)).length === 0 || undefined,
      "the hub to drop the spoke",
    );
  } finally {
    await spoke?.kill();
    await hub?.kill();
    await removeDir(dir);
  }
});
