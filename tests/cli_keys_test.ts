import assert from "node:assert/strict";
import { join } from "node:path";
import { huskies, removeDir, tempDir } from "./cli_helpers.ts";

const HEX64 = /^[0-9a-f]{64}$/;

Deno.test("keys create writes a 0600 key file, prints the node id and refuses to overwrite", async () => {
  const dir = await tempDir();
  try {
    const data = join(dir, "node");
    const first = await huskies(["keys", "create", "--data-dir", data]);
    assert.equal(first.code, 0, first.stderr);
    const id = /node id ([0-9a-f]{64})/.exec(first.stdout)?.[1];
    assert.ok(id, first.stdout);
    const info = await Deno.stat(join(data, "node.key"));
    assert.equal(info.mode! & 0o777, 0o600);

    const again = await huskies(["keys", "create", "--data-dir", data]);
    assert.equal(again.code, 10);
    assert.match(again.stderr, /Cannot create key: .*node\.key already exists/);
    assert.match(again.stderr, /--force/);
    const show = await huskies(["keys", "show", "--data-dir", data, "--json"]);
    assert.equal(JSON.parse(show.stdout).nodeId, id, "the identity is unchanged");

    const forced = await huskies(["keys", "create", "--force", "--data-dir", data, "--json"]);
    assert.equal(forced.code, 0, forced.stderr);
    const replaced = JSON.parse(forced.stdout).nodeId;
    assert.match(replaced, HEX64);
    assert.notEqual(replaced, id);
  } finally {
    await removeDir(dir);
  }
});

Deno.test("keys show and export-public print the node id; without a key file they exit 3", async () => {
  const dir = await tempDir();
  try {
    const missing = await huskies(["keys", "show", "--data-dir", dir]);
    assert.equal(missing.code, 3);
    assert.match(missing.stderr, /does not exist/);
    assert.match(missing.stderr, /huskies keys create/);

    await huskies(["keys", "create", "--data-dir", dir]);
    const show = await huskies(["keys", "show", "--data-dir", dir]);
    assert.equal(show.code, 0);
    const id = /node id\s+([0-9a-f]{64})/.exec(show.stdout)?.[1];
    const pub = await huskies(["keys", "export-public", "--data-dir", dir]);
    assert.equal(pub.code, 0);
    assert.equal(pub.stdout.trim(), id, "export-public prints the id alone");
  } finally {
    await removeDir(dir);
  }
});

Deno.test("keys export-private warns on stderr and keys import moves the identity elsewhere", async () => {
  const dir = await tempDir();
  try {
    const oldHost = join(dir, "old");
    const newHost = join(dir, "new");
    const created = await huskies(["keys", "create", "--data-dir", oldHost, "--json"]);
    const id = JSON.parse(created.stdout).nodeId;

    const show = await huskies(["keys", "show", "--data-dir", oldHost]);
    const exported = await huskies(["keys", "export-private", "--data-dir", oldHost]);
    assert.equal(exported.code, 0, exported.stderr);
    const seed = exported.stdout.trim();
    assert.match(seed, HEX64);
    assert.match(exported.stderr, /warning: this is the node's private key/);
    assert.ok(!exported.stderr.includes(seed), "the warning does not repeat the seed");
    assert.ok(!show.stdout.includes(seed), "keys show never prints the seed");

    // Through a file (mode 0600), the recommended way.
    const file = join(dir, "backup.key");
    const toFile = await huskies(["keys", "export-private", "--data-dir", oldHost, "--file", file]);
    assert.equal(toFile.code, 0, toFile.stderr);
    assert.equal(toFile.stdout, "", "the seed goes to the file only");
    assert.equal((await Deno.stat(file)).mode! & 0o777, 0o600);
    const refused = await huskies([
      "keys",
      "export-private",
      "--data-dir",
      oldHost,
      "--file",
      file,
    ]);
    assert.equal(refused.code, 10);

    const imported = await huskies(["keys", "import", "--file", file, "--data-dir", newHost]);
    assert.equal(imported.code, 0, imported.stderr);
    assert.match(imported.stdout, new RegExp(`node id ${id}`));
    assert.equal((await Deno.stat(join(newHost, "node.key"))).mode! & 0o777, 0o600);

    const again = await huskies(["keys", "import", "--file", file, "--data-dir", newHost]);
    assert.equal(again.code, 10, "import refuses to replace a key file");

    // From standard input, and as an argument (which warns about shell history).
    const viaStdin = await huskies(
      ["keys", "import", "--file", "-", "--force", "--data-dir", newHost, "--json"],
      { stdin: seed + "\n" },
    );
    assert.equal(viaStdin.code, 0, viaStdin.stderr);
    assert.equal(JSON.parse(viaStdin.stdout).nodeId, id);
    const viaArg = await huskies(["keys", "import", seed, "--data-dir", join(dir, "third")]);
    assert.equal(viaArg.code, 0, viaArg.stderr);
    assert.match(viaArg.stderr, /shell history/);
  } finally {
    await removeDir(dir);
  }
});

Deno.test("keys import rejects a bad seed with exit 2 without echoing it", async () => {
  const dir = await tempDir();
  try {
    const secretish = "zz" + "ab".repeat(31);
    const bad = await huskies(["keys", "import", secretish, "--data-dir", dir]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /64 hex characters/);
    assert.ok(!bad.stderr.includes(secretish));
    const neither = await huskies(["keys", "import", "--data-dir", dir]);
    assert.equal(neither.code, 2);
    assert.match(neither.stderr, /either <seed-hex> or --file/);
    await assert.rejects(Deno.stat(join(dir, "node.key")), Deno.errors.NotFound);
  } finally {
    await removeDir(dir);
  }
});

Deno.test("keys commands reject unknown flags and subcommands with exit 2", async () => {
  const unknownFlag = await huskies(["keys", "create", "--forse"]);
  assert.equal(unknownFlag.code, 2);
  assert.match(unknownFlag.stderr, /unknown option --forse \(did you mean --force\?\)/);
  const unknownCommand = await huskies(["keys", "shwo"]);
  assert.equal(unknownCommand.code, 2);
  assert.match(unknownCommand.stderr, /unknown command "keys shwo" \(did you mean "keys show"\?\)/);
  const help = await huskies(["keys", "import", "--help"]);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /Usage: huskies keys import \[seed-hex\] \[options\]/);
});
