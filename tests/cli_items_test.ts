import assert from "node:assert/strict";
import { join } from "node:path";
import { huskies, removeDir, ServeProcess, tempDir, waitFor } from "./cli_helpers.ts";

interface Item {
  storyId: string;
  stage: string;
  name: string;
  agent: string | null;
  retryCount: number;
  blocked: boolean;
  frozen: boolean;
  dependsOn: string[];
}

async function getItem(dataDir: string, id: string): Promise<Item | undefined> {
  const result = await huskies(["item", "get", id, "--json", "--data-dir", dataDir]);
  if (result.code === 3) return undefined;
  assert.equal(result.code, 0, result.stderr);
  return JSON.parse(result.stdout);
}

/** Starts hub A and spoke B, B joining A with a token made by `huskies token create` on A. */
async function twoNodes(
  dir: string,
): Promise<{ a: ServeProcess; b: ServeProcess; aDir: string; bDir: string }> {
  const aDir = join(dir, "a");
  const bDir = join(dir, "b");
  const a = await ServeProcess.start(["--data-dir", aDir, "--listen", "127.0.0.1:0"]);
  try {
    const token = await huskies(["token", "create", "--data-dir", aDir]);
    assert.equal(token.code, 0, token.stderr);
    const b = await ServeProcess.start([
      "--data-dir",
      bDir,
      "--listen",
      "127.0.0.1:0",
      "--rendezvous",
      a.syncUrl,
      "--join",
      token.stdout.trim(),
    ]);
    return { a, b, aDir, bDir };
  } catch (error) {
    await a.kill();
    throw error;
  }
}

Deno.test("items put on one node show up on the other; move, list, events and delete work", async () => {
  const dir = await tempDir();
  let nodes: Awaited<ReturnType<typeof twoNodes>> | undefined;
  try {
    nodes = await twoNodes(dir);
    const { aDir, bDir } = nodes;

    const put = await huskies([
      "item",
      "put",
      "S-1",
      "--name",
      "Login page",
      "--stage",
      "coding",
      "--agent",
      "alice",
      "--retry-count",
      "2",
      "--blocked",
      "true",
      "--data-dir",
      bDir,
    ]);
    assert.equal(put.code, 0, put.stderr);
    assert.match(put.stdout, /stage\s+coding/);

    const onA = await waitFor(
      async () =>
        (await getItem(aDir, "S-1"))?.stage === "coding" ? await getItem(aDir, "S-1") : undefined,
      "S-1 to reach node A",
    );
    assert.deepEqual(onA, {
      storyId: "S-1",
      stage: "coding",
      name: "Login page",
      agent: "alice",
      retryCount: 2,
      blocked: true,
      frozen: false,
      dependsOn: [],
    });

    // Changes on A flow back to B.
    const moved = await huskies(["item", "move", "S-1", "qa", "--data-dir", aDir]);
    assert.equal(moved.code, 0, moved.stderr);
    assert.equal(moved.stdout.trim(), "Moved S-1 to qa.");
    await huskies([
      "item",
      "put",
      "S-2",
      "--depends-on",
      "S-1",
      "--frozen",
      "true",
      "--data-dir",
      aDir,
    ]);
    await waitFor(
      async () => (await getItem(bDir, "S-1"))?.stage === "qa" || undefined,
      "the move to reach B",
    );
    await waitFor(async () => (await getItem(bDir, "S-2")) ?? undefined, "S-2 to reach B");

    const list = await huskies(["item", "list", "--data-dir", bDir]);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /^STORY\s+STAGE\s+NAME/);
    assert.match(list.stdout, /S-1\s+qa\s+Login page\s+alice\s+2\s+blocked/);
    assert.match(list.stdout, /S-2\s+backlog\s+S-2\s+-\s+0\s+frozen\s+S-1/);
    const qa = JSON.parse(
      (await huskies(["item", "list", "--stage", "qa", "--json", "--data-dir", bDir])).stdout,
    );
    assert.deepEqual(qa.map((item: Item) => item.storyId), ["S-1"]);
    const none = await huskies(["item", "list", "--stage", "done", "--data-dir", bDir]);
    assert.equal(none.stdout.trim(), "No items in stage done.");

    const events = JSON.parse(
      (await huskies(["events", "--story", "S-1", "--json", "--data-dir", bDir])).stdout,
    );
    assert.deepEqual(
      events.map((
        e: { storyId: string; from: string | null; to: string },
      ) => [e.storyId, e.from, e.to]),
      [["S-1", null, "coding"], ["S-1", "coding", "qa"]],
    );
    const eventText = await huskies(["events", "--data-dir", aDir]);
    assert.match(eventText.stdout, /TIME\s+STORY\s+FROM\s+TO\s+NODE/);
    assert.match(eventText.stdout, /S-1\s+coding\s+qa/);

    const deleted = await huskies(["item", "delete", "S-2", "--data-dir", aDir]);
    assert.equal(deleted.code, 0, deleted.stderr);
    assert.equal(deleted.stdout.trim(), "Deleted S-2.");
    await waitFor(
      async () => (await getItem(bDir, "S-2")) === undefined || undefined,
      "the delete to reach B",
    );
  } finally {
    await nodes?.b.kill();
    await nodes?.a.kill();
    await removeDir(dir);
  }
});

Deno.test("status shows the peers, the rendezvous client and the counters", async () => {
  const dir = await tempDir();
  let nodes: Awaited<ReturnType<typeof twoNodes>> | undefined;
  try {
    nodes = await twoNodes(dir);
    const { a, b, aDir, bDir } = nodes;
    await huskies(["item", "put", "S-9", "--data-dir", bDir]);
    const status = await waitFor(async () => {
      const result = await huskies(["status", "--json", "--data-dir", bDir]);
      const value = JSON.parse(result.stdout);
      return value.peers.length === 1 && value.peers[0].state === "live" ? value : undefined;
    }, "B's session with A to be live");
    assert.equal(status.nodeId, b.nodeId);
    assert.equal(status.peers[0].peer, a.nodeId);
    assert.equal(status.peers[0].direction, "outbound");
    assert.equal(status.rendezvous[0].url, a.syncUrl);
    assert.equal(status.rendezvous[0].state, "connected");
    assert.ok(status.operations >= 2);
    assert.deepEqual(status.forks, []);
    assert.deepEqual(status.pending, { count: 0, bytes: 0 });

    // Converged nodes report the same state hash, in status and in /metrics.
    const hashes = await waitFor(async () => {
      const [onA, onB] = await Promise.all(
        [aDir, bDir].map(async (dir) =>
          JSON.parse((await huskies(["status", "--json", "--data-dir", dir])).stdout).stateHash
        ),
      );
      return onA === onB ? onB as string : undefined;
    }, "A and B to converge");
    assert.match(hashes, /^\S{8,}$/);
    const metrics = await (await fetch(new URL("metrics", a.statusUrl))).text();
    assert.ok(metrics.includes(`huskies_state_info{state_hash="${hashes}"} 1`), metrics);
    // With -A, /proc/self/fd is readable: descriptors and sockets are counted.
    const sockets = Number(/^huskies_open_sockets (\d+)$/m.exec(metrics)?.[1]);
    assert.ok(sockets >= 2, `the listener and B's session at least, got ${sockets}`);
    assert.ok(Number(/^process_open_fds (\d+)$/m.exec(metrics)?.[1]) >= sockets);
    // A received the item B wrote: a batch from a peer, and B's catch-up time as a gauge.
    assert.match(metrics, /^huskies_applied_batch_operations_count\{origin="peer"\} [1-9]\d*$/m);
    assert.match(
      metrics,
      new RegExp(
        `^huskies_peer_catchup_duration_seconds\\{peer="${b.nodeId}",direction="inbound"\\} [0-9.e-]+$`,
        "m",
      ),
    );

    const text = await huskies(["status", "--data-dir", bDir]);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, new RegExp(`node id\\s+${b.nodeId}`));
    assert.match(
      text.stdout,
      /PEER\s+DIRECTION\s+STATE\s+LAG\s+BEHIND\s+OPS IN\s+OPS OUT\s+BYTES IN\s+BYTES OUT/,
    );
    assert.match(text.stdout, /outbound\s+live/);
    assert.match(text.stdout, /forks\s+none detected/);
    assert.match(text.stdout, new RegExp(`state hash\\s+${hashes}`));
    assert.match(text.stdout, new RegExp(`${a.syncUrl.replaceAll(".", "\\.")}\\s+connected`));
  } finally {
    await nodes?.b.kill();
    await nodes?.a.kill();
    await removeDir(dir);
  }
});

Deno.test("invalid item input is refused with exit 2 and changes nothing", async () => {
  const dir = await tempDir();
  let serve: ServeProcess | undefined;
  try {
    serve = await ServeProcess.start(["--data-dir", dir, "--listen", "127.0.0.1:0"]);
    const put = await huskies(["item", "put", "S-1", "--stage", "coding", "--data-dir", dir]);
    assert.equal(put.code, 0, put.stderr);
    const before = await getItem(dir, "S-1");

    const cases: [string[], RegExp][] = [
      [["item", "put", "S-1", "--stage", "bogus"], /stage must be one of backlog, coding/],
      [["item", "put", "bad id!"], /storyId must be 1 to 128 characters/],
      [["item", "put", "S-1", "--retry-count", "many"], /--retry-count must be a whole number/],
      [["item", "put", "S-1", "--blocked", "yes"], /--blocked must be true or false/],
      [["item", "put", "S-1", "--depends-on", "S-1"], /must not contain the item itself/],
      [["item", "put", "S-1", "--name", ""], /name must have 1 to/],
      [["item", "move", "S-1", "nowhere"], /stage must be one of/],
      [["item", "list", "--stage", "nowhere"], /stage must be one of/],
      [["item", "get"], /missing <story_id>/],
      [["item", "put", "S-1", "--colour", "red"], /unknown option --colour/],
    ];
    for (const [args, pattern] of cases) {
      const result = await huskies([...args, "--data-dir", dir]);
      assert.equal(result.code, 2, `${args.join(" ")}: ${result.stderr}`);
      assert.match(result.stderr, pattern, args.join(" "));
    }
    assert.deepEqual(await getItem(dir, "S-1"), before, "the item is unchanged");
    const events = JSON.parse((await huskies(["events", "--json", "--data-dir", dir])).stdout);
    assert.equal(events.length, 1, "no stage event was recorded");

    for (
      const args of [["item", "get", "S-404"], ["item", "delete", "S-404"], [
        "item",
        "move",
        "S-404",
        "qa",
      ]]
    ) {
      const result = await huskies([...args, "--data-dir", dir]);
      assert.equal(result.code, 3, `${args.join(" ")}: ${result.stderr}`);
      assert.match(result.stderr, /no item S-404/);
    }
  } finally {
    await serve?.kill();
    await removeDir(dir);
  }
});

Deno.test("the admin API refuses requests without the right bearer token with 403", async () => {
  const dir = await tempDir();
  let serve: ServeProcess | undefined;
  try {
    serve = await ServeProcess.start(["--data-dir", dir, "--listen", "127.0.0.1:0"]);
    const url = new URL("admin/items", serve.statusUrl);
    const token = (await Deno.readTextFile(join(dir, "admin.token"))).trim();
    for (
      const headers of [
        {} as Record<string, string>,
        { authorization: "Bearer wrong" },
        { authorization: `Basic ${token}` },
        { authorization: `Bearer ${token}x` },
      ]
    ) {
      const response = await fetch(url, { headers });
      assert.equal(response.status, 403, JSON.stringify(headers));
      assert.match((await response.json()).error, /bearer token is missing or wrong/);
    }
    const put = await fetch(new URL("admin/item?id=S-1", serve.statusUrl), {
      method: "PUT",
      body: JSON.stringify({ stage: "qa" }),
    });
    assert.equal(put.status, 403);
    await put.body?.cancel();
    assert.equal(await getItem(dir, "S-1"), undefined, "the refused request changed nothing");

    const ok = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(ok.status, 200);
    assert.deepEqual(await ok.json(), []);
    assert.ok(!serve.stderr.includes(token), "the admin token is never logged");
  } finally {
    await serve?.kill();
    await removeDir(dir);
  }
});

Deno.test("item commands without a running node exit 4 and say how to start one", async () => {
  const dir = await tempDir();
  try {
    for (const args of [["item", "list"], ["item", "put", "S-1"], ["status"], ["events"]]) {
      const result = await huskies([...args, "--data-dir", dir]);
      assert.equal(result.code, 4, `${args.join(" ")}: ${result.stderr}`);
      assert.match(
        result.stderr,
        new RegExp(
          `no node is running for data folder ${dir}; start one with \`huskies serve --data-dir ${dir}\``,
        ),
      );
    }
    // A stale serve.json (a node that crashed) reads the same way.
    await Deno.writeTextFile(
      join(dir, "serve.json"),
      JSON.stringify({
        version: 1,
        pid: 1,
        nodeId: "x",
        url: "http://127.0.0.1:9/",
        adminUrl: "http://127.0.0.1:9/",
      }),
    );
    await Deno.writeTextFile(join(dir, "admin.token"), "secret\n", { mode: 0o600 }); // as serve writes it
    const stale = await huskies(["item", "list", "--data-dir", dir]);
    assert.equal(stale.code, 4, stale.stderr);
    assert.match(stale.stderr, /serve\.json may be stale/);
  } finally {
    await removeDir(dir);
  }
});
