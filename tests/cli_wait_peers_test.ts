/**
 * `item put/move/delete --wait-peers N [--timeout S]` between two `huskies
 * serve` processes: success once N peers' clocks count the change, exit 13
 * when fewer do in time, exit 2 for bad values (before anything is written).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { huskies, removeDir, ServeProcess, tempDir, waitFor } from "./cli_helpers.ts";

Deno.test("--wait-peers returns once the peer holds the change, exit 13 when too few do", async () => {
  const dir = await tempDir();
  const aDir = join(dir, "a");
  const bDir = join(dir, "b");
  let a: ServeProcess | undefined;
  let b: ServeProcess | undefined;
  try {
    a = await ServeProcess.start(["--data-dir", aDir, "--listen", "127.0.0.1:0"]);
    const token = await huskies(["token", "create", "--data-dir", aDir]);
    assert.equal(token.code, 0, token.stderr);
    b = await ServeProcess.start([
      ...["--data-dir", bDir, "--listen", "127.0.0.1:0"],
      ...["--rendezvous", a.syncUrl, "--join", token.stdout.trim()],
    ]);
    await waitFor(
      async () => {
        const status = await huskies(["status", "--json", "--data-dir", aDir]);
        return JSON.parse(status.stdout).peers?.some((p: { state: string }) => p.state === "live");
      },
      "the spoke live at the hub",
      20_000,
    );

    const put = await huskies(
      ["item", "put", "S-1", "--stage", "qa", "--wait-peers", "1", "--timeout", "20"].concat(
        ["--data-dir", aDir],
      ),
    );
    assert.equal(put.code, 0, put.stderr);
    // Acknowledged with --wait-peers 1: the spoke has it now, no polling needed.
    const atB = await huskies(["item", "get", "S-1", "--json", "--data-dir", bDir]);
    assert.equal(atB.code, 0, atB.stderr);
    assert.equal(JSON.parse(atB.stdout).stage, "qa");

    const move = await huskies(
      ["item", "move", "S-1", "merge", "--wait-peers", "2", "--timeout", "1"].concat(
        ["--data-dir", aDir],
      ),
    );
    assert.equal(move.code, 13, move.stderr);
    assert.match(move.stderr, /Cannot confirm the write at 2 peers: .*applied and durable/);
    const here = await huskies(["item", "get", "S-1", "--json", "--data-dir", aDir]);
    assert.equal(JSON.parse(here.stdout).stage, "merge", "the change is made on this node");

    const alone = await huskies(["item", "delete", "S-1", "--timeout", "5", "--data-dir", aDir]);
    assert.equal(alone.code, 2, alone.stderr);
    assert.match(alone.stderr, /Cannot delete item: --timeout needs --wait-peers/);
    const bad = await huskies(["item", "put", "S-2", "--wait-peers", "x", "--data-dir", aDir]);
    assert.equal(bad.code, 2, bad.stderr);
    assert.equal((await huskies(["item", "get", "S-2", "--data-dir", aDir])).code, 3);
  } finally {
    if (b) await b.stop();
    if (a) await a.stop();
    await removeDir(dir);
  }
});
