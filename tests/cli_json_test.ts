import assert from "node:assert/strict";
import { join } from "node:path";
import { huskies, removeDir, ServeProcess, tempDir } from "./cli_helpers.ts";

const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

/**
 * Checks the convention of cli/USAGE.md on a `--json` document: camelCase
 * keys, times (`...At`, `time`) as ISO 8601 strings or null, durations
 * (`...Ms`) as whole milliseconds. Returns the paths checked, for coverage.
 */
function checkConvention(value: unknown, path = "$", seen: string[] = []): string[] {
  if (Array.isArray(value)) value.forEach((v, i) => checkConvention(v, `${path}[${i}]`, seen));
  else if (typeof value === "object" && value !== null) {
    for (const [key, child] of Object.entries(value)) {
      const where = `${path}.${key}`;
      seen.push(where);
      assert.match(key, /^[a-z][a-zA-Z0-9]*$/, `${where}: camelCase key`);
      if (/At$/.test(key) || key === "time") {
        assert.ok(child === null || ISO.test(String(child)), `${where}: ISO time, got ${child}`);
      }
      if (/Ms$/.test(key)) {
        assert.ok(
          child === null || Number.isSafeInteger(child),
          `${where}: whole ms, got ${child}`,
        );
      }
      assert.ok(!/seconds/i.test(key), `${where}: durations are in ms`);
      checkConvention(child, where, seen);
    }
  }
  return seen;
}

async function json(args: string[]): Promise<unknown> {
  const result = await huskies([...args, "--json"]);
  assert.equal(result.code, 0, `${args.join(" ")}: ${result.stderr}`);
  return JSON.parse(result.stdout);
}

Deno.test("every --json output follows one convention: camelCase, ISO times, whole ms", async () => {
  const dir = await tempDir();
  const data = join(dir, "node");
  const other = join(dir, "other");
  let serve: ServeProcess | undefined;
  try {
    await huskies(["keys", "create", "--data-dir", other]);
    const otherId = (await huskies(["keys", "export-public", "--data-dir", other])).stdout.trim();
    checkConvention(await json(["keys", "create", "--data-dir", data]));
    checkConvention(await json(["keys", "show", "--data-dir", data]));
    const added = await json(["trust", "add", otherId, "--label", "o", "--data-dir", data]);
    assert.deepEqual(checkConvention(added).sort(), [
      "$.addedAt",
      "$.key",
      "$.label",
      "$.scope",
      "$.source",
    ]);
    checkConvention(await json(["trust", "list", "--data-dir", data]));
    const token = await json(["token", "create", "--data-dir", data]) as { expiresAt: string };
    assert.match(token.expiresAt, ISO);
    const tokens = await json(["token", "list", "--data-dir", data]);
    assert.ok(checkConvention(tokens).includes("$[0].createdAt"));

    serve = await ServeProcess.start(["--data-dir", data, "--listen", "127.0.0.1:0"]);
    const item = await json([
      "item",
      "put",
      "S-1",
      "--retry-count",
      "2",
      "--depends-on",
      "S-0",
      "--data-dir",
      data,
    ]);
    assert.deepEqual(item, {
      storyId: "S-1",
      stage: "backlog",
      name: "S-1",
      agent: null,
      retryCount: 2,
      blocked: false,
      frozen: false,
      dependsOn: ["S-0"],
    });
    checkConvention(await json(["item", "get", "S-1", "--data-dir", data]));
    checkConvention(await json(["item", "list", "--data-dir", data]));
    checkConvention(await json(["item", "move", "S-1", "qa", "--data-dir", data]));
    const events = await json(["events", "--data-dir", data]) as { time: string }[];
    assert.ok(checkConvention(events).includes("$[1].storyId"));
    assert.match(events[1].time, ISO);
    const status = await json(["status", "--data-dir", data]);
    const paths = checkConvention(status);
    assert.ok(paths.includes("$.startedAt") && paths.includes("$.uptimeMs"), paths.join(" "));
    assert.equal(await serve.stop(), 0);
    serve = undefined;
    const report = await json(["verify", "--data-dir", data]);
    assert.ok(checkConvention(report).includes("$.durationMs"));
  } finally {
    await serve?.kill();
    await removeDir(dir);
  }
});

Deno.test("with --json, errors are one JSON object on standard error with a code", async () => {
  const dir = await tempDir();
  try {
    const missing = await huskies(["item", "get", "S-1", "--json", "--data-dir", dir]);
    assert.equal(missing.code, 4);
    assert.equal(missing.stdout, "");
    const error = JSON.parse(missing.stderr);
    assert.deepEqual(Object.keys(error.error).sort(), ["code", "exitCode", "hint", "message"]);
    assert.equal(error.error.code, "NOT_RUNNING");
    assert.equal(error.error.exitCode, 4);
    assert.match(error.error.message, /^Cannot reach the node: /);

    const usage = await huskies(["--json", "trust", "add", "nothex", "--data-dir", dir]);
    assert.equal(usage.code, 2);
    assert.equal(JSON.parse(usage.stderr).error.code, "USAGE");
    const unknown = await huskies(["keys", "show", "--json", "--data-dir", dir]);
    assert.equal(unknown.code, 3);
    assert.equal(JSON.parse(unknown.stderr).error.code, "NOT_FOUND");
  } finally {
    await removeDir(dir);
  }
});
