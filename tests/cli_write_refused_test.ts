/**
 * Refused writes through `huskies serve`: the admin API answers 503 with
 * `Retry-After` (409 when an operator must act) and a JSON body, and
 * `item put/move/delete` exit 12 (`WRITE_REFUSED`) saying what happened and
 * whether to retry. A refused write is never acknowledged.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { WriteRefusedError } from "../crdt/write_guard.ts";
import { writeRefusedResponse } from "../cli/http/admin.ts";
import { resolveServeSettings } from "../cli/serve.ts";
import { parseProjectConfig } from "../cli/config.ts";
import { huskies, removeDir, ServeProcess, tempDir, waitFor } from "./cli_helpers.ts";

Deno.test("a restarted serve refuses writes retryably until its start-up grace ends", async () => {
  const dir = await tempDir();
  const data = join(dir, "node");
  let serve: ServeProcess | undefined;
  try {
    serve = await ServeProcess.start(["--data-dir", data, "--listen", "127.0.0.1:0"]);
    const first = await huskies(["item", "put", "S-1", "--data-dir", data]);
    assert.equal(first.code, 0, first.stderr); // a new key: no grace
    assert.equal(await serve.stop(), 0);
    serve = await ServeProcess.start([
      "--data-dir",
      data,
      "--listen",
      "127.0.0.1:0",
      "--startup-grace",
      "60",
    ]);
    const put = await huskies(["item", "put", "S-2", "--data-dir", data]);
    assert.equal(put.code, 12, put.stderr);
    assert.match(put.stderr, /Cannot commit: the node is starting/);
    assert.match(
      put.stderr,
      /Nothing was changed\. Retryable: run the same command again in \d+ s/,
    );
    const json = await huskies(["item", "move", "S-1", "qa", "--json", "--data-dir", data]);
    assert.equal(json.code, 12);
    const error = JSON.parse(json.stderr).error;
    assert.equal(error.code, "WRITE_REFUSED");
    assert.equal(error.exitCode, 12);
    const deleted = await huskies(["item", "delete", "S-1", "--data-dir", data]);
    assert.equal(deleted.code, 12, deleted.stderr);

    // The admin API itself: 503, Retry-After, a JSON body with the code.
    const info = JSON.parse(await Deno.readTextFile(join(data, "serve.json")));
    const token = (await Deno.readTextFile(join(data, "admin.token"))).trim();
    const response = await fetch(new URL("/admin/item?id=S-3", info.adminUrl), {
      method: "PUT",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: "{}",
    });
    assert.equal(response.status, 503);
    const retryAfter = Number(response.headers.get("retry-after"));
    assert.ok(retryAfter >= 1 && retryAfter <= 60, `Retry-After ${retryAfter}`);
    const body = await response.json();
    assert.equal(body.code, "WRITE_REFUSED");
    assert.equal(body.reason, "starting");
    assert.equal(body.retryable, true);
    assert.match(body.error, /^Cannot commit: /);

    // Never acknowledged and then dropped: the refused items do not exist; S-1 is unchanged.
    assert.equal((await huskies(["item", "get", "S-2", "--data-dir", data])).code, 3);
    assert.equal((await huskies(["item", "get", "S-3", "--data-dir", data])).code, 3);
    const kept = await huskies(["item", "get", "S-1", "--json", "--data-dir", data]);
    assert.equal(JSON.parse(kept.stdout).stage, "backlog", "the refused move changed nothing");
  } finally {
    if (serve) await serve.stop();
    await removeDir(dir);
  }
});

Deno.test("a write refused for good is 409 without Retry-After", async () => {
  const error = new WriteRefusedError({ reason: "own-key-forked", forkPoint: 4 }, 0);
  const response = writeRefusedResponse(error, 0);
  assert.equal(response.status, 409);
  assert.equal(response.headers.get("retry-after"), null);
  const body = await response.json();
  assert.deepEqual(
    { code: body.code, reason: body.reason, retryable: body.retryable },
    { code: "WRITE_REFUSED", reason: "own-key-forked", retryable: false },
  );
  assert.match(body.error, /own key is forked/);
  const claim = new WriteRefusedError(
    { reason: "peer-claim", peer: "ab".repeat(32), claimed: 9, held: 3, until: 7_200 },
    1_000,
  );
  const retry = writeRefusedResponse(claim, 1_000);
  assert.equal(retry.status, 503);
  assert.equal(retry.headers.get("retry-after"), "7");
  await retry.body?.cancel();
});

Deno.test("serve reads the start-up grace from --startup-grace over startup_grace_secs", () => {
  const args = (list: string[]) => {
    const values: Record<string, string | boolean> = {};
    for (let i = 0; i < list.length; i++) {
      const name = list[i].slice(2);
      if (name === "accept-lost-history") values[name] = true;
      else values[name] = list[++i];
    }
    return { values, positionals: [] };
  };
  const config = parseProjectConfig("startup_grace_secs = 2.5\n", "/x/project.toml");
  assert.equal(resolveServeSettings(args([]), config).startupGraceMs, 2500);
  assert.equal(resolveServeSettings(args(["--startup-grace", "0"]), config).startupGraceMs, 0);
  assert.equal(resolveServeSettings(args([]), {}).startupGraceMs, undefined);
  assert.equal(resolveServeSettings(args([]), {}).acceptLostHistory, false);
  assert.equal(
    resolveServeSettings(args(["--accept-lost-history"]), {}).acceptLostHistory,
    true,
  );
  assert.throws(
    () => resolveServeSettings(args(["--startup-grace", "-1"]), {}),
    /Cannot use --startup-grace "-1": expected seconds from 0 to 3600/,
  );
  assert.throws(
    () => parseProjectConfig('startup_grace_secs = "ten"\n', "/x/project.toml"),
    /startup_grace_secs/,
  );
});

Deno.test("a node that lost own history says so: ERROR at start, status, metrics, refused writes", async () => {
  const dir = await tempDir();
  const data = join(dir, "node");
  let serve: ServeProcess | undefined;
  try {
    serve = await ServeProcess.start(["--data-dir", data, "--listen", "127.0.0.1:0"]);
    assert.equal((await huskies(["item", "put", "S-1", "--data-dir", data])).code, 0);
    assert.equal(await serve.stop(), 0);
    await Deno.copyFile(join(data, "ops.db"), join(dir, "backup.db"));
    serve = await ServeProcess.start([
      ...["--data-dir", data, "--listen", "127.0.0.1:0", "--startup-grace", "0.5"],
    ]);
    // The restarted node waits for its grace, with no peer: writes after it ends.
    await waitFor(
      async () => {
        const put = await huskies(["item", "put", "S-2", "--data-dir", data]);
        return put.code === 0 ? true : undefined;
      },
      "a write after the start-up grace",
      20_000,
      500,
    );
    assert.match(serve.stderr, /start-up grace of 0.5 s passed without a catch-up from any peer/);
    assert.equal(await serve.stop(), 0);
    await Deno.copyFile(join(dir, "backup.db"), join(data, "ops.db")); // restore the older store

    serve = await ServeProcess.start([
      ...["--data-dir", data, "--listen", "127.0.0.1:0", "--startup-grace", "0"],
    ]);
    await waitFor(() => /lost history/.test(serve!.stderr) || undefined, "the ERROR", 5_000);
    assert.match(serve.stderr, /ERROR.*lost history: the store holds \d+ of this node's own/);
    assert.match(serve.stderr, /--accept-lost-history/);
    const text = await huskies(["status", "--data-dir", data]);
    assert.match(text.stdout, /^writes\s+LOST-HISTORY: refused for now\. Cannot commit: /m);
    const json = JSON.parse((await huskies(["status", "--json", "--data-dir", data])).stdout);
    assert.equal(json.writeGate.state, "lost-history");
    assert.ok(json.writeGate.lostHistory.recorded > json.writeGate.lostHistory.held);
    const metrics = await (await fetch(new URL("/metrics", serve.statusUrl))).text();
    assert.match(metrics, /^huskies_write_gate\{state="lost-history"\} 1$/m);
    const put = await huskies(["item", "put", "S-3", "--data-dir", data]);
    assert.equal(put.code, 12, put.stderr);
    assert.match(put.stderr, /recent writes were lost/);
    assert.equal(await serve.stop(), 0);

    // The operator accepts the loss after a deliberate restore.
    serve = await ServeProcess.start([
      ...["--data-dir", data, "--listen", "127.0.0.1:0", "--accept-lost-history"],
      ...["--startup-grace", "0"],
    ]);
    const accepted = await huskies(["item", "put", "S-3", "--data-dir", data]);
    assert.equal(accepted.code, 0, accepted.stderr);
    const open = JSON.parse((await huskies(["status", "--json", "--data-dir", data])).stdout);
    assert.equal(open.writeGate.state, "open");
  } finally {
    if (serve) await serve.stop();
    await removeDir(dir);
  }
});
