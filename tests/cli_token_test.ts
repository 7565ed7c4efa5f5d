import assert from "node:assert/strict";
import { join } from "node:path";
import { huskies, removeDir, tempDir } from "./cli_helpers.ts";

const TOKEN = /^hjt1\.([0-9a-f]{16})\.([0-9a-f]{64})\.([0-9a-f]{64})$/;

Deno.test("token create prints only the token on stdout, embedding the hub's node id", async () => {
  const dir = await tempDir();
  try {
    const created = await huskies([
      "token",
      "create",
      "--ttl",
      "30m",
      "--uses",
      "2",
      "--data-dir",
      dir,
    ]);
    assert.equal(created.code, 0, created.stderr);
    const match = TOKEN.exec(created.stdout.trim());
    assert.ok(match, `stdout is the token alone: ${created.stdout}`);
    const [, id, secret, hub] = match;
    const show = await huskies(["keys", "show", "--json", "--data-dir", dir]);
    assert.equal(hub, JSON.parse(show.stdout).nodeId, "the token names this node as the hub");
    assert.match(created.stderr, /created a new identity/);
    assert.match(created.stderr, /huskies serve --rendezvous ws:\/\/.*--join/);
    assert.match(created.stderr, new RegExp(`Token ${id}: write scope, 2 uses`));

    const listed = await huskies(["token", "list", "--json", "--data-dir", dir]);
    const tokens = JSON.parse(listed.stdout);
    assert.equal(tokens.length, 1);
    assert.equal(tokens[0].id, id);
    assert.equal(tokens[0].status, "active");
    assert.equal(tokens[0].usesLeft, 2);
    const text = await huskies(["token", "list", "--data-dir", dir]);
    assert.match(text.stdout, new RegExp(`${id}\\s+active\\s+write\\s+2`));
    for (
      const output of [
        listed.stdout,
        text.stdout,
        await Deno.readTextFile(join(dir, "tokens.json")),
      ]
    ) {
      assert.ok(!output.includes(secret), "the secret is never shown or stored");
    }
    assert.equal((await Deno.stat(join(dir, "tokens.json"))).mode! & 0o777, 0o600);
  } finally {
    await removeDir(dir);
  }
});

Deno.test("token create --json gives the token and its details", async () => {
  const dir = await tempDir();
  try {
    const created = await huskies([
      "token",
      "create",
      "--scope",
      "read",
      "--json",
      "--data-dir",
      dir,
    ]);
    assert.equal(created.code, 0, created.stderr);
    const value = JSON.parse(created.stdout);
    assert.match(value.token, TOKEN);
    assert.equal(value.scope, "read");
    assert.equal(value.uses, 1);
    assert.match(value.expiresAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/, "an ISO 8601 time");
    const expires = Date.parse(value.expiresAt);
    assert.ok(expires > Date.now() + 59 * 60_000, "the default lifetime is one hour");
  } finally {
    await removeDir(dir);
  }
});

Deno.test("token revoke marks the token revoked; unknown ids exit 3, malformed ones 2", async () => {
  const dir = await tempDir();
  try {
    const token = (await huskies(["token", "create", "--data-dir", dir])).stdout.trim();
    const id = TOKEN.exec(token)![1];
    const revoked = await huskies(["token", "revoke", id, "--data-dir", dir]);
    assert.equal(revoked.code, 0, revoked.stderr);
    const listed = JSON.parse(
      (await huskies(["token", "list", "--json", "--data-dir", dir])).stdout,
    );
    assert.equal(listed[0].status, "revoked");

    const unknown = await huskies(["token", "revoke", "0123456789abcdef", "--data-dir", dir]);
    assert.equal(unknown.code, 3);
    assert.match(unknown.stderr, /no such token/);
    const malformed = await huskies(["token", "revoke", "nope", "--data-dir", dir]);
    assert.equal(malformed.code, 2);
    // A whole token is accepted (its id is used) and its secret is not echoed on error.
    const whole = await huskies(["token", "revoke", token, "--data-dir", dir]);
    assert.equal(whole.code, 0, whole.stderr);
    const badWhole = await huskies([
      "token",
      "revoke",
      token.replace("hjt1.", "hjt1.zz"),
      "--data-dir",
      dir,
    ]);
    assert.equal(badWhole.code, 2);
    assert.ok(!badWhole.stderr.includes(TOKEN.exec(token)![2]));
  } finally {
    await removeDir(dir);
  }
});

Deno.test("token create refuses bad --ttl, --uses and --scope with exit 2", async () => {
  const dir = await tempDir();
  try {
    for (
      const [flags, pattern] of [
        [["--ttl", "soon"], /Cannot parse TTL "soon"/],
        [["--ttl", "0m"], /greater than zero/],
        [["--uses", "0"], /--uses "0": expected a whole number >= 1/],
        [["--uses", "two"], /--uses "two"/],
        [["--scope", "all"], /--scope "all"/],
        [["--ttl"], /option --ttl needs a value/],
      ] as const
    ) {
      const result = await huskies(["token", "create", ...flags, "--data-dir", dir]);
      assert.equal(result.code, 2, `${flags.join(" ")}: ${result.stderr}`);
      assert.match(result.stderr, pattern);
      assert.equal(result.stdout, "");
    }
    await assert.rejects(Deno.stat(join(dir, "tokens.json")), Deno.errors.NotFound);
  } finally {
    await removeDir(dir);
  }
});
