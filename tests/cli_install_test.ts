import assert from "node:assert/strict";
import { join } from "node:path";
import denoJson from "../deno.json" with { type: "json" };
import { removeDir, tempDir } from "./cli_helpers.ts";

const CONFIG = new URL("../deno.json", import.meta.url).pathname;
const MAIN = new URL("../main.ts", import.meta.url).pathname;

async function run(
  command: string,
  args: string[],
  cwd?: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const output = await new Deno.Command(command, {
    args,
    cwd,
    env: { NO_COLOR: "1" },
    stdin: "null",
  }).output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

Deno.test("`deno task huskies -- <command>` runs the CLI, `--` and all", async () => {
  const version = await run(Deno.execPath(), [
    "task",
    "-q",
    "--config",
    CONFIG,
    "huskies",
    "--",
    "--version",
  ]);
  assert.equal(version.code, 0, version.stderr);
  assert.equal(version.stdout.trim(), `huskies ${denoJson.version}`);
  const help = await run(Deno.execPath(), [
    "task",
    "-q",
    "--config",
    CONFIG,
    "huskies",
    "--",
    "help",
    "item",
    "list",
  ]);
  assert.equal(help.code, 0, help.stderr);
  assert.match(help.stdout, /^huskies item list: list work items/);
  assert.match(help.stdout, /--stage S/);
});

Deno.test("the documented `deno install` command gives a `huskies` that works from any folder", async () => {
  const root = await tempDir("huskies-install-");
  try {
    // The README's command, with --root so the test leaves the user's ~/.deno alone.
    const install = await run(Deno.execPath(), [
      "install",
      "--global",
      "--force",
      "--allow-read",
      "--allow-write",
      "--allow-net",
      "--allow-env",
      "--name",
      "huskies",
      "--root",
      root,
      "--config",
      CONFIG,
      MAIN,
    ]);
    assert.equal(install.code, 0, install.stderr);
    const bin = join(root, "bin", Deno.build.os === "windows" ? "huskies.cmd" : "huskies");
    const elsewhere = join(root, "work");
    await Deno.mkdir(elsewhere);
    const version = await run(bin, ["--version"], elsewhere);
    assert.equal(version.code, 0, version.stderr);
    assert.equal(version.stdout.trim(), `huskies ${denoJson.version}`);
    const keys = await run(bin, ["keys", "create", "--data-dir", "node", "--json"], elsewhere);
    assert.equal(keys.code, 0, keys.stderr);
    assert.match(JSON.parse(keys.stdout).nodeId, /^[0-9a-f]{64}$/);
    const help = await run(bin, ["help"], elsewhere);
    assert.equal(help.code, 0, help.stderr);
    assert.match(help.stdout, /Usage: huskies <command>/);
  } finally {
    await removeDir(root);
  }
});
