import assert from "node:assert/strict";
import { join } from "node:path";
import { readableOsMessage } from "../cli/errors.ts";
import { huskies, removeDir, tempDir } from "./cli_helpers.ts";

const KEY = "ab".repeat(32);

Deno.test("operating-system errors read as 'Cannot <action> <path>: <reason>'", () => {
  assert.equal(
    readableOsMessage("No such file or directory (os error 2): mkdir '/proc/nope'"),
    "Cannot create folder /proc/nope: a folder above it does not exist or does not allow new folders",
  );
  assert.equal(
    readableOsMessage("File exists (os error 17): mkdir '/tmp/f'"),
    "Cannot create folder /tmp/f: a file of that name is in the way (it must be a folder)",
  );
  assert.equal(
    readableOsMessage(
      "Cannot read trust file /f/trust.json: Not a directory (os error 20): open '/f/trust.json'",
    ),
    "Cannot read trust file /f/trust.json: a part of the path is a file, not a folder",
  );
  assert.equal(readableOsMessage("Cannot do x: because"), "Cannot do x: because");
});

Deno.test("a data folder that cannot be made, or is a file, gets a clear error", async () => {
  const dir = await tempDir();
  try {
    const file = join(dir, "afile");
    await Deno.writeTextFile(file, "");
    for (const args of [["keys", "create"], ["trust", "add", KEY], ["token", "create"]]) {
      const result = await huskies([...args, "--data-dir", join(file, "sub")]);
      assert.notEqual(result.code, 0);
      assert.match(
        result.stderr,
        /^error: Cannot [^\n]+: a part of the path is a file, not a folder\n/,
      );
      assert.doesNotMatch(result.stderr, /os error/);
    }
    const inTheWay = await huskies(["keys", "create", "--data-dir", file]);
    assert.match(
      inTheWay.stderr,
      /^error: Cannot create folder \S+afile: a file of that name is in the way/,
    );
  } finally {
    await removeDir(dir);
  }
});

Deno.test("trust add on a trusted key changes its scope and keeps its label", async () => {
  const dir = await tempDir();
  try {
    await huskies(["keys", "create", "--data-dir", join(dir, "other")]);
    const KEY = (await huskies(["keys", "export-public", "--data-dir", join(dir, "other")])).stdout
      .trim();
    assert.equal(
      (await huskies(["trust", "add", KEY, "--label", "laptop", "--data-dir", dir])).code,
      0,
    );
    const again = await huskies(["trust", "add", KEY, "--scope", "read", "--data-dir", dir]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /with read scope \(it had write scope\)/);
    const list = JSON.parse((await huskies(["trust", "list", "--json", "--data-dir", dir])).stdout);
    assert.equal(list[0].label, "laptop");
    assert.equal(list[0].scope, "read");
  } finally {
    await removeDir(dir);
  }
});

Deno.test("a negative number is a range error; a missing --config file points at the flag", async () => {
  const dir = await tempDir();
  try {
    const negative = await huskies([
      "item",
      "put",
      "S-1",
      "--retry-count",
      "-1",
      "--data-dir",
      dir,
    ]);
    assert.equal(negative.code, 2);
    assert.match(negative.stderr, /--retry-count must be a whole number >= 0, got "-1"/);
    const config = await huskies(["item", "list", "--config", join(dir, "nope.toml")]);
    assert.equal(config.code, 7);
    assert.match(config.stderr, /Cannot read config file \S+nope\.toml: it does not exist/);
    assert.match(config.stderr, /Check the path given to --config/);
    assert.doesNotMatch(config.stderr, /Fix /);
  } finally {
    await removeDir(dir);
  }
});
