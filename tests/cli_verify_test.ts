import assert from "node:assert/strict";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { Identity } from "../crdt/identity.ts";
import type { Operation } from "../crdt/operation.ts";
import { Replica } from "../crdt/replica.ts";
import { HuskiesNode } from "../sync/node.ts";
import { renderProgress, StoreChecker } from "../cli/verify.ts";
import { huskies, removeDir, ServeProcess, tempDir } from "./cli_helpers.ts";

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
    assert.match(result.stdout, /OK: verified \d+ operations from 1 authors .*no problems found/);
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
  assert.equal(skipped.length, 1 + ops[2].deps.filter((d) => d === ops[1].id).length);
  assert.match(skipped[0].problem, /seq 3 does not follow the author's previous stored seq 1/);
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
