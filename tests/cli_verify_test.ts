import assert from "node:assert/strict";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { Identity } from "../crdt/identity.ts";
import type { Operation } from "../crdt/operation.ts";
import { Replica } from "../crdt/replica.ts";
import { HuskiesNode } from "../sync/node.ts";
import { renderProgress, StoreChecker } from "../cli/verify.ts";
import { huskies, MAIN, removeDir, ServeProcess, tempDir } from "./cli_helpers.ts";
import { canRunUnshared } from "./helpers.ts";
import { createIdentityFile } from "../auth/keystore.ts";
import { signOperation } from "../crdt/operation.ts";
import { SqliteStore } from "../crdt/sqlite_store.ts";
import { identity, OpFactory, setField } from "./helpers.ts";

/** Makes a data folder holding a few operations, with the node closed again. */
async function storeWithItems(dir: string): Promise<void> {
  const node = await HuskiesNode.open({ dataDir: dir });
  node.pipeline.put("S-1", { name: "Login page", stage: "coding" });
  node.pipeline.put("S-2", { depends_on: ["S-1"] });
  node.pipeline.move("S-1", "qa");
  await node.close();
}

Deno.test("verify passes a clean store with exit 0", async () => {
  const dir = await tempDir();
  try {
    await storeWithItems(dir);
    const result = await huskies(["verify", "--data-dir", dir]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /OK: verified \d+ operations from 1 author in .*no problems found/);
    const json = await huskies(["verify", "--json", "--data-dir", dir]);
    const report = JSON.parse(json.stdout);
    assert.equal(report.problemCount, 0);
    assert.ok(report.operations >= 5);
    assert.equal(json.stderr, "", "no progress bar when stderr is not a terminal");
  } finally {
    await removeDir(dir);
  }
});

Deno.test("verify reports a tampered row with its row number and exits 9; serve refuses the store", async () => {
  const dir = await tempDir();
  try {
    await storeWithItems(dir);
    const db = new DatabaseSync(join(dir, "ops.db"));
    const row = db.prepare("SELECT seq_no, id, body FROM ops ORDER BY seq_no LIMIT 1 OFFSET 1")
      .get() as {
        seq_no: number;
        id: string;
        body: string;
      };
    assert.ok(row.body.includes("Login page") || row.body.includes("coding"), row.body);
    const tampered = row.body.replace("Login page", "Logout page").replace('"coding"', '"done"');
    assert.notEqual(tampered, row.body);
    db.prepare("UPDATE ops SET body = ? WHERE seq_no = ?").run(tampered, row.seq_no);
    db.close();

    const result = await huskies(["verify", "--data-dir", dir]);
    assert.equal(result.code, 9, result.stderr);
    assert.match(result.stdout, /FAILED: 1 problem in/);
    assert.match(
      result.stdout,
      new RegExp(`row 2 op ${row.id.slice(0, 12)}…: id does not match the operation's content`),
    );
    assert.match(result.stderr, /Cannot vouch for data folder/);

    const serve = await huskies(["serve", "--data-dir", dir, "--listen", "127.0.0.1:0"]);
    assert.equal(serve.code, 6, serve.stderr);
    assert.match(serve.stderr, /does not match its id/);
    assert.match(serve.stderr, /huskies verify --data-dir/);
  } finally {
    await removeDir(dir);
  }
});

Deno.test("verify reports a row whose index columns disagree with its body (exit 9)", async () => {
  const dir = await tempDir();
  try {
    await storeWithItems(dir);
    const db = new DatabaseSync(join(dir, "ops.db"));
    db.exec("UPDATE ops SET time = time + 1000 WHERE seq_no = 3");
    db.close();
    const result = await huskies(["verify", "--data-dir", dir]);
    assert.equal(result.code, 9, result.stderr);
    assert.match(result.stdout, /FAILED: 1 problem in/);
    assert.match(result.stdout, /row 3 op .*disagrees with its index columns/);
  } finally {
    await removeDir(dir);
  }
});

Deno.test("verify refuses while the node runs (exit 5) and says when there is no store (exit 3)", async () => {
  const dir = await tempDir();
  let serve: ServeProcess | undefined;
  try {
    const none = await huskies(["verify", "--data-dir", dir]);
    assert.equal(none.code, 3);
    assert.match(none.stderr, /it has no store/);
    await assert.rejects(
      Deno.stat(join(dir, "ops.db")),
      Deno.errors.NotFound,
      "verify creates nothing",
    );

    serve = await ServeProcess.start(["--data-dir", dir, "--listen", "127.0.0.1:0"]);
    const locked = await huskies(["verify", "--data-dir", dir]);
    assert.equal(locked.code, 5, locked.stderr);
    assert.match(locked.stderr, /its store is locked by a running node/);
    assert.match(locked.stderr, /verify works offline/);
  } finally {
    await serve?.kill();
    await removeDir(dir);
  }
});

/** A replica's operations in apply order. */
function sampleOps(): Operation[] {
  const replica = Replica.open({ identity: Identity.generate() });
  replica.commit([{ type: "update", path: ["items", "a"], fields: { stage: "qa" } }]);
  replica.commit([{ type: "update", path: ["items", "b"], fields: { stage: "qa" } }]);
  replica.commit([{ type: "remove", path: ["items", "a"] }]);
  return replica.opsSince({});
}

Deno.test("StoreChecker accepts a sound log and names gaps, broken links and missing dependencies", () => {
  const ops = sampleOps();
  assert.ok(ops.length >= 3);
  const sound = new StoreChecker();
  for (const op of ops) assert.deepEqual(sound.check(op), []);
  assert.equal(sound.rows, ops.length);
  assert.equal(sound.authors, 1);

  const gap = new StoreChecker();
  gap.check(ops[0]);
  const skipped = gap.check(ops[2]);
  assert.match(skipped[0].problem, /seq 3 does not follow the author's previous stored seq 1/);
  assert.equal(skipped.length, 1);
  assert.equal(skipped[0].row, 2);

  const first = new StoreChecker().check(ops[1]);
  assert.match(first[0].problem, /seq 2 is the author's first stored operation/);

  const forged = { ...ops[1], sig: "00".repeat(64) };
  const badSig = new StoreChecker();
  badSig.check(ops[0]);
  assert.match(badSig.check(forged)[0].problem, /signature is not valid/);

  const missingDep = new StoreChecker().check({ ...ops[0], deps: ["ab".repeat(32)] });
  const problems = missingDep.map((p) => p.problem);
  assert.ok(problems.some((p) => /^id does not match/.test(p)), problems.join("; "));
  assert.ok(
    problems.some((p) => /^dependency abababababab… is not stored before it$/.test(p)),
    problems.join("; "),
  );
});

Deno.test("renderProgress draws a bounded bar", () => {
  assert.equal(renderProgress(0, 10, 10), "verifying [----------]   0%  0/10");
  assert.equal(renderProgress(5, 10, 10), "verifying [#####-----]  50%  5/10");
  assert.equal(renderProgress(12, 10, 10), "verifying [##########] 100%  12/10");
  assert.equal(renderProgress(0, 0, 4), "verifying [####] 100%  0/0");
});

/**
 * A data folder whose store holds a recorded fork of author `forker`: its ops
 * 1 and 2, then a rival op 2 (the proof is recorded as the node records it).
 * The folder's node.key is `keyOf`.
 */
async function forkedStore(dir: string, forker: Identity, keyOf: Identity): Promise<void> {
  await createIdentityFile(dir, { seed: keyOf.exportSeed() });
  const f = new OpFactory();
  const [x1, x2] = [
    f.next(forker, setField("s1", "stage", "coding")),
    f.next(forker, setField("s1", "stage", "qa")),
  ];
  const rival = signOperation({ ...x2, mutation: setField("s1", "stage", "done") }, forker);
  const honest = f.next(identity(40), setField("s2", "stage", "qa"), [x1.id]);
  const replica = Replica.open({ identity: keyOf, store: SqliteStore.open(join(dir, "ops.db")) });
  try {
    replica.receive([x1, x2, honest]);
    const result = replica.receive([rival]);
    assert.deepEqual(result.statuses, ["fork"]);
    assert.equal(replica.forks().length, 1);
  } finally {
    replica.close();
  }
}

Deno.test("verify passes a store holding a recorded fork (exit 0) and reports the fork as a finding", async () => {
  const dir = await tempDir();
  try {
    const forker = identity(41);
    await forkedStore(dir, forker, identity(42));
    const result = await huskies(["verify", "--data-dir", dir]);
    assert.equal(result.code, 0, result.stdout + result.stderr);
    assert.match(result.stdout, /OK: verified 4 operations from 2 authors in .*no problems found/);
    assert.match(
      result.stdout,
      new RegExp(
        `Forks: 1 author signed two operations at one position \\(${
          forker.nodeId.slice(0, 12)
        }… at seq 2\\)`,
      ),
    );
    assert.match(result.stdout, /2 quarantined operations; this is a finding/);
    assert.doesNotMatch(result.stdout, /OWN key/);
    const json = JSON.parse((await huskies(["verify", "--json", "--data-dir", dir])).stdout);
    assert.equal(json.problemCount, 0);
    assert.deepEqual(json.forks, [{ author: forker.nodeId, seq: 2, ownKey: false }]);
    assert.equal(json.ownKeyForked, false);
  } finally {
    await removeDir(dir);
  }
});

Deno.test("verify exits 11 and warns loudly when the node's own key is forked", async () => {
  const dir = await tempDir();
  try {
    const own = identity(43);
    await forkedStore(dir, own, own);
    const result = await huskies(["verify", "--data-dir", dir]);
    assert.equal(result.code, 11, result.stdout + result.stderr);
    assert.match(result.stdout, /no problems found/);
    assert.match(result.stdout, /WARNING: this node's OWN key .* is forked at seq 2/);
    assert.match(result.stderr, /Cannot vouch for node .*: its own key is forked/);
  } finally {
    await removeDir(dir);
  }
});

/** Runs `huskies <args>` with `dir` bind-mounted read-only (a user and mount namespace). */
async function huskiesOnReadOnly(dir: string, args: string[]) {
  const script = 'mount --bind -o ro "$1" "$1" && shift && exec "$@"';
  const output = await new Deno.Command("unshare", {
    args: ["-rm", "sh", "-c", script, "sh", dir, Deno.execPath(), "run", "-A", MAIN, ...args],
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder();
  return {
    code: output.code,
    stdout: text.decode(output.stdout),
    stderr: text.decode(output.stderr),
  };
}

/** True when this machine can make a read-only bind mount in a user namespace (Linux). */
const CAN_MOUNT_READ_ONLY = await canRunUnshared(
  'd=$(mktemp -d) && mount --bind -o ro "$d" "$d"; r=$?; umount "$d"; rmdir "$d"; exit $r',
);

Deno.test({
  name: "verify checks a store in a read-only folder and changes nothing in it",
  ignore: !CAN_MOUNT_READ_ONLY,
  fn: async () => {
    const dir = await tempDir();
    try {
      await storeWithItems(dir);
      const names = async () =>
        (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name).sort();
      const before = await names();
      const { mtime } = await Deno.stat(join(dir, "ops.db"));
      const result = await huskiesOnReadOnly(dir, ["verify", "--data-dir", dir]);
      assert.equal(result.code, 0, result.stdout + result.stderr);
      assert.match(result.stdout, /no problems found/);
      assert.deepEqual(await names(), before);
      assert.deepEqual((await Deno.stat(join(dir, "ops.db"))).mtime, mtime);
    } finally {
      await removeDir(dir);
    }
  },
});

Deno.test("verify says a file that is not a store could not be read, not '1 problem in 0 operations'", async () => {
  const dir = await tempDir();
  try {
    await Deno.writeTextFile(join(dir, "ops.db"), "this is not a database, just some text\n");
    const result = await huskies(["verify", "--data-dir", dir]);
    assert.equal(result.code, 9, result.stderr);
    assert.match(
      result.stdout,
      /FAILED: the store could not be read, nothing was checked: .*not a SQLite database/,
    );
    assert.doesNotMatch(result.stdout, /in 0 operations/);
    assert.match(result.stderr, /Cannot vouch for data folder .*: its store cannot be read/);
  } finally {
    await removeDir(dir);
  }
});

Deno.test("StoreChecker treats a second signed operation at a taken position as a fork, not damage", () => {
  const f = new OpFactory();
  const x = identity(44);
  const [x1, x2, x3] = [0, 1, 2].map((i) => f.next(x, setField("s", "n", i)));
  const rival = signOperation({ ...x2, mutation: setField("s", "n", 99) }, x);
  const checker = new StoreChecker();
  for (const op of [x1, x2, x3, rival]) assert.deepEqual(checker.check(op), []);
  assert.deepEqual([...checker.forkPoints()], [[x.nodeId, 2]]);
  assert.equal(checker.quarantined, 3);
  // The same position with a bad signature is damage.
  const damaged = new StoreChecker();
  damaged.check(x1);
  damaged.check(x2);
  const problems = damaged.check({ ...rival, sig: x2.sig }).map((p) => p.problem);
  assert.deepEqual(problems, [
    `signature is not valid for author ${x.nodeId.slice(0, 12)}…`,
    `position 2 of author ${x.nodeId.slice(0, 12)}… is already taken`,
  ]);
  assert.equal(damaged.forkPoints().size, 0);
});

Deno.test("verify warns when the store holds fewer of the node's own operations than its record", async () => {
  const dir = await tempDir();
  try {
    await storeWithItems(dir);
    await Deno.copyFile(join(dir, "ops.db"), join(dir, "backup.db"));
    const node = await HuskiesNode.open({ dataDir: dir, startupGraceMs: 0 });
    node.pipeline.put("S-3", { name: "after the backup" });
    await node.close();
    await Deno.copyFile(join(dir, "backup.db"), join(dir, "ops.db")); // restore the older store
    const result = await huskies(["verify", "--data-dir", dir]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /WARNING: the store holds \d+ of this node's own operations but/);
    const json = JSON.parse((await huskies(["verify", "--json", "--data-dir", dir])).stdout);
    assert.ok(json.lostOwnHistory.recorded > json.lostOwnHistory.held, JSON.stringify(json));
  } finally {
    await removeDir(dir);
  }
});
