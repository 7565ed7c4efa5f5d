import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import {
  CHECKPOINT_BURST_BYTES,
  CHECKPOINT_INTERVAL_MS,
  checkpointStep,
  LOG_FILE_LIMIT_BYTES,
  MAX_UNCHECKED_BYTES,
  walRestarts,
} from "../crdt/sqlite_checkpointer.ts";

const idle = {
  pending: false,
  unchecked: 0,
  commitBytes: 4096,
  sinceRequest: 0,
  msSinceRequest: Infinity,
  durableRun: false,
  logFileBytes: 0,
};

Deno.test("checkpoint rule: a live stream of small commits asks the Worker at most every 100 ms", () => {
  assert.equal(checkpointStep(idle), "ask");
  const soon = { ...idle, sinceRequest: 4096, msSinceRequest: CHECKPOINT_INTERVAL_MS - 1 };
  assert.equal(checkpointStep(soon), "none");
  assert.equal(checkpointStep({ ...soon, msSinceRequest: CHECKPOINT_INTERVAL_MS }), "ask");
  // Never a second request while one is pending.
  assert.equal(checkpointStep({ ...idle, pending: true }), "none");
});

Deno.test("checkpoint rule: a burst asks the idle Worker again without waiting the interval", () => {
  const burst = { ...idle, sinceRequest: CHECKPOINT_BURST_BYTES, msSinceRequest: 5 };
  assert.equal(checkpointStep(burst), "ask");
  assert.equal(checkpointStep({ ...burst, sinceRequest: CHECKPOINT_BURST_BYTES - 1 }), "none");
  assert.equal(checkpointStep({ ...burst, pending: true }), "none");
});

Deno.test("checkpoint rule: the writer checkpoints itself at 4 MiB when the Worker is idle, at 8 MiB always", () => {
  const full = { ...idle, unchecked: MAX_UNCHECKED_BYTES, msSinceRequest: 5 };
  assert.equal(checkpointStep(full), "here");
  assert.equal(checkpointStep({ ...full, pending: true }), "none");
  const twice = { ...full, pending: true, unchecked: 2 * MAX_UNCHECKED_BYTES };
  assert.equal(checkpointStep(twice), "here");
});

Deno.test("checkpoint rule: after a commit of 2 MiB or more the idle Worker is asked, up to 8 MiB", () => {
  const big = { ...idle, unchecked: MAX_UNCHECKED_BYTES, commitBytes: MAX_UNCHECKED_BYTES / 2 };
  assert.equal(checkpointStep(big), "ask");
  assert.equal(checkpointStep({ ...big, commitBytes: MAX_UNCHECKED_BYTES / 2 - 1 }), "here");
  assert.equal(checkpointStep({ ...big, unchecked: 2 * MAX_UNCHECKED_BYTES }), "here");
});

Deno.test("checkpoint rule: durable commits in a row that left the log file over 4 MiB have the writer checkpoint", () => {
  const own = {
    ...idle,
    msSinceRequest: 0,
    durableRun: true,
    logFileBytes: LOG_FILE_LIMIT_BYTES + 1,
  };
  assert.equal(checkpointStep(own), "here");
  assert.equal(checkpointStep({ ...own, pending: true }), "here"); // after the Worker's one
  assert.equal(checkpointStep({ ...own, logFileBytes: LOG_FILE_LIMIT_BYTES }), "none");
  // Commits that are not fsynced (received operations, a catch-up), and a durable one between
  // them, leave it to the Worker.
  assert.equal(checkpointStep({ ...own, durableRun: false }), "none");
});

Deno.test("walRestarts reads the count SQLite raises each time the log starts over", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/log.db`;
  const db = new DatabaseSync(path);
  try {
    db.exec("PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0; CREATE TABLE t (v TEXT)");
    db.exec("INSERT INTO t VALUES ('a')");
    const log = Deno.openSync(`${path}-wal`, { read: true });
    try {
      const before = walRestarts(log);
      assert.equal(typeof before, "number");
      db.exec("INSERT INTO t VALUES ('b')"); // appended: the log goes on
      assert.equal(walRestarts(log), before);
      // A checkpoint that copies the whole log: the next write starts it over.
      const done = db.prepare("PRAGMA wal_checkpoint(PASSIVE)").get();
      assert.equal(done?.log, done?.checkpointed);
      db.exec("INSERT INTO t VALUES ('c')");
      assert.equal(walRestarts(log), before! + 1);
    } finally {
      log.close();
    }
  } finally {
    db.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("walRestarts is undefined for a log too short to hold a header", async () => {
  const path = await Deno.makeTempFile();
  const file = Deno.openSync(path, { read: true });
  try {
    assert.equal(walRestarts(file), undefined);
  } finally {
    file.close();
    await Deno.remove(path);
  }
});
