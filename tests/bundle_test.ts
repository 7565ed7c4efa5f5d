/**
 * The CLI bundles into one JavaScript file (`deno bundle`, offline) that runs
 * on its own: proof that nothing reads source files or imports local paths
 * dynamically at run time, which `deno compile` needs as well.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { removeDir, ServeProcess, TASK_PERMISSIONS, tempDir } from "./cli_helpers.ts";

const ROOT = new URL("..", import.meta.url).pathname;

async function run(
  args: string[],
  cwd: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const output = await new Deno.Command(Deno.execPath(), {
    args,
    cwd,
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

Deno.test("the bundled CLI runs --help and keys create on its own", async () => {
  const dir = await tempDir();
  try {
    const bundle = join(dir, "huskies.js");
    const built = await run(["bundle", "--output", bundle, "main.ts"], ROOT);
    assert.equal(built.code, 0, built.stderr);

    // Run from an unrelated folder so that nothing can resolve against the sources.
    const help = await run(["run", "-A", bundle, "--help"], dir);
    assert.equal(help.code, 0, help.stderr);
    assert.match(help.stdout, /^huskies \d+\.\d+\.\d+: /);
    assert.match(help.stdout, /keys create/);

    const version = await run(["run", "-A", bundle, "--version"], dir);
    assert.match(version.stdout.trim(), /^huskies \d+\.\d+\.\d+$/);

    const created = await run(
      ["run", "-A", bundle, "keys", "create", "--data-dir", join(dir, "d")],
      dir,
    );
    assert.equal(created.code, 0, created.stderr);
    assert.match(created.stdout, /node id [0-9a-f]{64}/);
    assert.equal((await Deno.stat(join(dir, "d", "node.key"))).mode! & 0o777, 0o600);

    // The bundle serves with the permissions of `deno task start` and stops cleanly.
    const serve = await ServeProcess.start([
      "--data-dir",
      join(dir, "d"),
      "--listen",
      "127.0.0.1:0",
    ], {
      script: bundle,
      cwd: dir,
      permissions: TASK_PERMISSIONS,
    });
    try {
      const health = await fetch(new URL("healthz", serve.statusUrl));
      assert.equal((await health.json()).status, "ok");
      assert.equal(await serve.stop("SIGINT"), 0, serve.stderr);
    } finally {
      await serve.kill();
    }
  } finally {
    await removeDir(dir);
  }
});
