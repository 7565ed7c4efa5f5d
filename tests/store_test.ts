import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { encodeOperation, type Operation } from "../crdt/operation.ts";
import { Replica } from "../crdt/replica.ts";
import {
  SQLITE_STORE_APPLICATION_ID,
  SQLITE_STORE_SCHEMA_VERSION,
  SqliteStore,
  StoreCorruptError,
  StoreLockedError,
} from "../crdt/sqlite_store.ts";
import {
  INSERT_COLUMNS,
  PAGE_SIZE_BYTES,
  ROW_PLACEHOLDERS,
  rowValues,
} from "../crdt/sqlite_schema.ts";
import { LOG_FILE_LIMIT_BYTES } from "../crdt/sqlite_checkpointer.ts";
import { MemoryStore } from "../crdt/store.ts";
import { HuskiesNode } from "../sync/node.ts";
import { makeChain, storeConformance, testIdentity } from "../testing/store_conformance.ts";
import { handSigned } from "./helpers.ts";

// MemoryStore cannot fail part-way through a batch, so that case does not apply.
storeConformance("MemoryStore", () => ({ store: new MemoryStore(), cleanup: () => {} }), {
  atomic: false,
});

storeConformance("SqliteStore", async () => {
  const dir = await Deno.makeTempDir({ prefix: "huskies-store-" });
  const path = `${dir}/ops.db`;
  return {
    store: SqliteStore.open(path),
    reopen: () => SqliteStore.open(path),
    cleanup: () => Deno.remove(dir, { recursive: true }),
  };
}, { atomic: true, durable: true, onDisk: true });

storeConformance("SqliteStore with group commit", async () => {
  const dir = await Deno.makeTempDir({ prefix: "huskies-store-" });
  const path = `${dir}/ops.db`;
  return {
    store: SqliteStore.open(path, { groupCommitMs: 5 }),
    reopen: () => SqliteStore.open(path, { groupCommitMs: 5 }),
    cleanup: () => Deno.remove(dir, { recursive: true }),
  };
}, { atomic: true, durable: true, onDisk: true });

const REPO_ROOT = new URL("..", import.meta.url);
const STORE_MODULE = new URL("../crdt/sqlite_store.ts", import.meta.url).href;
const CONFORMANCE_MODULE = new URL("../testing/store_conformance.ts", import.meta.url).href;

/** Runs `body` with a fresh temp folder and the path of a store file in it, then removes it. */
async function withDir(body: (dir: string, path: string) => void | Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "huskies-store-" });
  try {
    await body(dir, `${dir}/ops.db`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function listDir(dir: string): string[] {
  return [...Deno.readDirSync(dir)].map((entry) => entry.name).sort();
}

/** Runs a script in a separate Deno process (from the repository root, so imports resolve). */
async function runChild(code: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["eval", code],
    cwd: REPO_ROOT,
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

/** A child script that opens the store at `path` and reports how that went. */
function openInChild(path: string, readOnly = false): string {
  return `
    import { SqliteStore, StoreLockedError } from ${JSON.stringify(STORE_MODULE)};
    try {
      SqliteStore.open(${JSON.stringify(path)}, { readOnly: ${readOnly} }).close();
      console.log("opened");
    } catch (error) {
      console.log(error.name);
      console.error(error.message);
      Deno.exit(error instanceof StoreLockedError ? 3 : 1);
    }
  `;
}

function withRawDb(path: string, body: (db: DatabaseSync) => void): void {
  const db = new DatabaseSync(path);
  try {
    body(db);
  } finally {
    db.close();
  }
}

Deno.test("SqliteStore marks a new file with its application id and schema version", () =>
  withDir((_dir, path) => {
    SqliteStore.open(path).close();
    withRawDb(path, (db) => {
      assert.deepEqual(
        { ...db.prepare("PRAGMA application_id").get() },
        { application_id: SQLITE_STORE_APPLICATION_ID },
      );
      assert.deepEqual(
        { ...db.prepare("PRAGMA user_version").get() },
        { user_version: SQLITE_STORE_SCHEMA_VERSION },
      );
      assert.deepEqual({ ...db.prepare("PRAGMA journal_mode").get() }, { journal_mode: "wal" });
    });
  }));

Deno.test("SqliteStore writes a new file in 8 KiB pages; an older store keeps its 4 KiB pages and its data", () =>
  withDir((dir, path) => {
    SqliteStore.open(path).close();
    withRawDb(path, (db) => {
      assert.deepEqual({ ...db.prepare("PRAGMA page_size").get() }, { page_size: PAGE_SIZE_BYTES });
    });
    // A store begun by an earlier version: its first page written with SQLite's default size.
    const older = `${dir}/older.db`;
    const raw = new DatabaseSync(older);
    raw.exec("PRAGMA page_size=4096");
    raw.exec("PRAGMA journal_mode=WAL");
    raw.close();
    const ops = makeChain(testIdentity(1), 50);
    const store = SqliteStore.open(older);
    store.append(ops);
    store.close();
    const again = SqliteStore.open(older);
    assert.deepEqual([...again.load()], ops);
    again.close();
    withRawDb(older, (db) => {
      assert.deepEqual({ ...db.prepare("PRAGMA page_size").get() }, { page_size: 4096 });
    });
  }));

Deno.test("SqliteStore initialises an existing empty file", () =>
  withDir((_dir, path) => {
    Deno.writeFileSync(path, new Uint8Array());
    const store = SqliteStore.open(path);
    const ops = makeChain(testIdentity(1), 2);
    store.append(ops);
    store.close();
    const again = SqliteStore.open(path);
    assert.deepEqual([...again.load()], ops);
    again.close();
  }));

Deno.test("SqliteStore keeps data across close and reopen", () =>
  withDir((_dir, path) => {
    const ops = makeChain(testIdentity(1), 10);
    const first = SqliteStore.open(path);
    first.append(ops.slice(0, 4));
    first.append(ops.slice(4));
    first.close();
    const second = SqliteStore.open(path);
    assert.equal(second.count(), 10);
    assert.deepEqual([...second.load()], ops);
    second.close();
  }));

Deno.test("SqliteStore refuses a second open in the same process with StoreLockedError", () =>
  withDir((_dir, path) => {
    const first = SqliteStore.open(path);
    const ops = makeChain(testIdentity(1), 2);
    first.append([ops[0]]);
    assert.throws(
      () => SqliteStore.open(path),
      (error: unknown) =>
        error instanceof StoreLockedError && error.path === path &&
        error.message.startsWith(
          `Cannot open store at ${path}: it is already open in this process`,
        ),
    );
    // The first store is unaffected and keeps working.
    first.append([ops[1]]);
    assert.deepEqual([...first.load()], ops);
    first.close();
    // Once closed, the store opens again.
    const second = SqliteStore.open(path);
    assert.equal(second.count(), 2);
    second.close();
  }));

Deno.test("a second open refused in this process leaves the store locked against other processes", () =>
  withDir(async (_dir, path) => {
    const store = SqliteStore.open(path);
    try {
      store.append(makeChain(testIdentity(1), 1));
      // Refused without opening the file: closing a descriptor of it would drop SQLite's locks.
      assert.throws(() => SqliteStore.open(path, { readOnly: true }), StoreLockedError);
      assert.throws(() => SqliteStore.open(path), StoreLockedError);
      for (const readOnly of [true, false]) {
        const child = await runChild(openInChild(path, readOnly));
        assert.equal(child.code, 3, `read-only ${readOnly}: ${child.stdout} ${child.stderr}`);
      }
    } finally {
      store.close();
    }
  }));

Deno.test("SqliteStore refuses an open from another process with StoreLockedError", () =>
  withDir(async (_dir, path) => {
    const store = SqliteStore.open(path);
    try {
      const started = performance.now();
      const locked = await runChild(openInChild(path));
      assert.equal(locked.code, 3, locked.stderr);
      assert.equal(locked.stdout.trim(), "StoreLockedError");
      assert.match(locked.stderr, /another process has it open/);
      assert.ok(performance.now() - started < 10_000, "the child failed fast");
      store.append(makeChain(testIdentity(1), 1));
    } finally {
      store.close();
    }
    const free = await runChild(openInChild(path));
    assert.equal(free.code, 0, free.stderr);
    assert.equal(free.stdout.trim(), "opened");
  }));

Deno.test("SqliteStore keeps every appended operation when its process is killed", () =>
  withDir(async (_dir, path) => {
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "eval",
        `
        import { SqliteStore } from ${JSON.stringify(STORE_MODULE)};
        import { makeChain, testIdentity } from ${JSON.stringify(CONFORMANCE_MODULE)};
        const store = SqliteStore.open(${JSON.stringify(path)});
        const ops = makeChain(testIdentity(7), 300);
        for (let i = 0; i < ops.length; i += 30) store.append(ops.slice(i, i + 30));
        console.log("appended");
        setInterval(() => {}, 1000);
        `,
      ],
      cwd: REPO_ROOT,
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    let said = "";
    for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
      said += chunk;
      if (said.includes("appended")) break;
    }
    assert.match(said, /appended/);
    child.kill("SIGKILL");
    const status = await child.status;
    assert.equal(status.success, false);
    const store = SqliteStore.open(path);
    try {
      assert.equal(store.count(), 300);
      assert.deepEqual([...store.load()], makeChain(testIdentity(7), 300));
    } finally {
      store.close();
    }
  }));

Deno.test("SqliteStore refuses a file of random bytes with StoreCorruptError and leaves it alone", () =>
  withDir((dir, path) => {
    // SQLite itself would take a one-byte file for an empty database.
    for (const size of [16384, 100, 1]) {
      const bytes = crypto.getRandomValues(new Uint8Array(size));
      Deno.writeFileSync(path, bytes);
      assert.throws(
        () => SqliteStore.open(path),
        (error: unknown) =>
          error instanceof StoreCorruptError &&
          error.message.startsWith(`Cannot open store at ${path}: `),
      );
      assert.deepEqual(Deno.readFileSync(path), bytes);
      assert.deepEqual(listDir(dir), ["ops.db"]);
    }
    // A file with the SQLite header but random bytes after it.
    const bytes = crypto.getRandomValues(new Uint8Array(16384));
    bytes.set(new TextEncoder().encode("SQLite format 3\0"));
    Deno.writeFileSync(path, bytes);
    assert.throws(() => SqliteStore.open(path), StoreCorruptError);
    assert.deepEqual(Deno.readFileSync(path), bytes);
    assert.deepEqual(listDir(dir), ["ops.db"]);
  }));

Deno.test("SqliteStore refuses another application's SQLite file and leaves it unchanged", () =>
  withDir((dir, path) => {
    withRawDb(path, (db) => {
      db.exec("CREATE TABLE notes (text TEXT); INSERT INTO notes VALUES ('keep me')");
    });
    const before = Deno.readFileSync(path);
    assert.throws(
      () => SqliteStore.open(path),
      (error: unknown) =>
        error instanceof StoreCorruptError && /another application/.test(error.message),
    );
    assert.deepEqual(Deno.readFileSync(path), before);
    assert.deepEqual(listDir(dir), ["ops.db"]);
  }));

Deno.test("SqliteStore refuses a store written by a newer schema version", () =>
  withDir((_dir, path) => {
    const store = SqliteStore.open(path);
    store.append(makeChain(testIdentity(1), 1));
    store.close();
    withRawDb(path, (db) => db.exec(`PRAGMA user_version = ${SQLITE_STORE_SCHEMA_VERSION + 1}`));
    const before = Deno.readFileSync(path);
    assert.throws(
      () => SqliteStore.open(path),
      (error: unknown) =>
        error instanceof StoreCorruptError && /written by a newer version/.test(error.message),
    );
    assert.deepEqual(Deno.readFileSync(path), before);
  }));

/**
 * Writes a store of 200 operations at `path` and returns two damaged copies of its file: a page in
 * the middle of the ops table with its cells zeroed (the integrity check reports it), and the same
 * page overwritten (SQLite fails to read it).
 */
function damagedStores(path: string): { zeroed: Uint8Array; garbage: Uint8Array } {
  const store = SqliteStore.open(path);
  store.append(makeChain(testIdentity(1), 200));
  store.close(); // checkpoints the WAL into the main file
  const intact = Deno.readFileSync(path);
  const pageSize = new DataView(intact.buffer).getUint16(16);
  const pages = intact.length / pageSize;
  assert.ok(pages > 10);
  const start = Math.floor(pages / 2) * pageSize;
  const zeroed = intact.slice();
  zeroed.fill(0, start + 100, start + pageSize);
  const garbage = intact.slice();
  garbage.fill(0xa5, start, start + pageSize);
  return { zeroed, garbage };
}

Deno.test("SqliteStore refuses a store whose pages are damaged and leaves it alone", () =>
  withDir((_dir, path) => {
    const { zeroed, garbage } = damagedStores(path);
    for (const [damaged, reason] of [[zeroed, /integrity check failed/], [garbage, /corrupt/]]) {
      Deno.writeFileSync(path, damaged as Uint8Array);
      assert.throws(
        () => SqliteStore.open(path),
        (error: unknown) =>
          error instanceof StoreCorruptError &&
          error.message.startsWith(`Cannot open store at ${path}: `) &&
          (reason as RegExp).test(error.message),
      );
      assert.deepEqual(Deno.readFileSync(path), damaged);
    }
  }));

Deno.test("a node checks its store's pages while it loads, and refuses a damaged one as before", () =>
  withDir(async (dir, path) => {
    const { zeroed, garbage } = damagedStores(path);
    // The check runs on the store's Worker; its verdict is the open's.
    Deno.writeFileSync(path, zeroed);
    const store = SqliteStore.open(path, { quickCheck: "background" });
    await assert.rejects(store.integrity(), /integrity check failed/);
    store.close();
    for (const [damaged, reason] of [[zeroed, /integrity check failed/], [garbage, /corrupt/]]) {
      Deno.writeFileSync(path, damaged as Uint8Array);
      await assert.rejects(
        HuskiesNode.open({ dataDir: dir }),
        (error: unknown) =>
          error instanceof StoreCorruptError && (reason as RegExp).test(error.message),
      );
      assert.deepEqual(Deno.readFileSync(path), damaged); // nothing written to it
    }
    // An intact store checks out, and the refused opens left nothing open.
    Deno.removeSync(path);
    const fresh = await HuskiesNode.open({ dataDir: dir });
    fresh.pipeline.put("S-1", { stage: "qa" });
    await fresh.close();
    const node = await HuskiesNode.open({ dataDir: dir });
    assert.equal(node.replica.size, 2);
    await node.close();
  }));

Deno.test("SqliteStore load throws StoreCorruptError naming a tampered row", () =>
  withDir((_dir, path) => {
    const ops = makeChain(testIdentity(1), 4);
    const store = SqliteStore.open(path);
    store.append(ops);
    store.close();
    withRawDb(
      path,
      (db) => db.exec(`UPDATE ops SET body = '{"not":"an operation"}' WHERE seq_no = 2`),
    );
    const undecodable = SqliteStore.open(path);
    try {
      const seen: Operation[] = [];
      assert.throws(
        () => {
          for (const op of undecodable.load()) seen.push(op);
        },
        (error: unknown) =>
          error instanceof StoreCorruptError &&
          /row seq_no 2 .*does not decode/.test(error.message),
      );
      assert.deepEqual(seen, [ops[0]]);
    } finally {
      undecodable.close();
    }
    // A well-formed body of another operation under this row's id.
    withRawDb(path, (db) => {
      db.prepare("UPDATE ops SET body = ? WHERE seq_no = 2").run(JSON.stringify(ops[1]));
      db.prepare("UPDATE ops SET body = ? WHERE seq_no = 3").run(JSON.stringify(ops[0]));
    });
    const mismatched = SqliteStore.open(path);
    try {
      assert.throws(
        () => [...mismatched.load()],
        (error: unknown) =>
          error instanceof StoreCorruptError &&
          error.message.includes(`row seq_no 3 has id ${ops[2].id} but its body is operation`),
      );
    } finally {
      mismatched.close();
    }
  }));

Deno.test("SqliteStore reports a missing folder as a plain error naming the path", () =>
  withDir((dir) => {
    const path = `${dir}/missing/ops.db`;
    assert.throws(
      () => SqliteStore.open(path),
      (error: unknown) =>
        error instanceof Error && !(error instanceof StoreCorruptError) &&
        !(error instanceof StoreLockedError) &&
        error.message.startsWith(`Cannot open store at ${path}: `),
    );
    assert.deepEqual(listDir(dir), []);
  }));

// 20k rather than 100k operations keeps the test quick: signing is the slow
// part (about 20 us per operation). The store itself handles 100k in one
// batch in well under a second.
Deno.test("SqliteStore appends 20k operations in one batch and loads them back", () =>
  withDir((_dir, path) => {
    const n = 20_000;
    const ops = [
      ...makeChain(testIdentity(1), n / 2),
      ...makeChain(testIdentity(2), n / 2),
    ];
    const store = SqliteStore.open(path);
    store.append(ops);
    assert.equal(store.count(), n);
    store.close();
    const again = SqliteStore.open(path);
    try {
      assert.equal(again.count(), n);
      let i = 0;
      for (const op of again.load()) {
        if (i === 0 || i === n / 2 || i === n - 1 || i % 997 === 0) {
          assert.deepEqual(op, ops[i]);
        } else {
          assert.equal(op.id, ops[i].id);
        }
        i++;
      }
      assert.equal(i, n);
    } finally {
      again.close();
    }
  }));

Deno.test("SqliteStore opened read-only reads everything, refuses writes and creates no file", async () => {
  await withDir((dir, path) => {
    const ops = makeChain(testIdentity(1), 3);
    const writer = SqliteStore.open(path);
    writer.append(ops);
    writer.close();
    const before = listDir(dir);
    const reader = SqliteStore.open(path, { readOnly: true });
    try {
      assert.deepEqual([...reader.load()], ops);
      assert.equal(reader.count(), 3);
      assert.throws(() => reader.append(makeChain(testIdentity(2), 1)), /Cannot append/);
      assert.deepEqual(listDir(dir), before);
    } finally {
      reader.close();
    }
    assert.deepEqual(listDir(dir), before);
    // An empty file is not a store yet: read-only, nothing is created in it.
    Deno.writeFileSync(`${dir}/empty.db`, new Uint8Array());
    assert.throws(() => SqliteStore.open(`${dir}/empty.db`, { readOnly: true }), StoreCorruptError);
    assert.equal(Deno.statSync(`${dir}/empty.db`).size, 0);
  });
});

Deno.test({
  name: "SqliteStore creates ops.db and its -wal file owner-only (0600) and tightens a 0644 store",
  ignore: Deno.build.os === "windows",
  fn: () =>
    withDir((dir, path) => {
      const store = SqliteStore.open(path);
      store.append(makeChain(testIdentity(1), 2));
      const modes = () =>
        listDir(dir).map((name) => [name, Deno.statSync(`${dir}/${name}`).mode! & 0o777]);
      assert.ok(listDir(dir).includes("ops.db-wal"), listDir(dir).join(", "));
      for (const [name, mode] of modes()) assert.equal(mode, 0o600, `${name}`);
      store.close();
      Deno.chmodSync(path, 0o644);
      SqliteStore.open(path).close();
      assert.equal(Deno.statSync(path).mode! & 0o777, 0o600);
    }),
});

Deno.test("SqliteStore keeps the own-head record beside ops.db, so it outlives a restored older ops.db", async () => {
  await withDir(async (dir, path) => {
    const me = testIdentity(3);
    const ops = makeChain(me, 5);
    const headOf = (i: number) => ({ author: me.nodeId, seq: i + 1, id: ops[i].id });
    let store = SqliteStore.open(path);
    store.append(ops.slice(0, 2), { ownHead: headOf(1) });
    store.close();
    await Deno.copyFile(path, `${dir}/backup.db`);
    store = SqliteStore.open(path);
    store.append(ops.slice(2), { ownHead: headOf(4) });
    store.close();
    if (Deno.build.os !== "windows") {
      assert.equal(Deno.statSync(`${path}-head`).mode! & 0o777, 0o600);
    }
    await Deno.copyFile(`${dir}/backup.db`, path);
    store = SqliteStore.open(path);
    try {
      assert.equal(store.count(), 2);
      assert.deepEqual(store.loadOwnHead(), headOf(4));
    } finally {
      store.close();
    }
    // A damaged record is reported, not silently ignored.
    Deno.writeTextFileSync(`${path}-head`, "{ not json");
    assert.throws(() => SqliteStore.open(path), StoreCorruptError);
  });
});

Deno.test("a store written under the older size measure still opens; its oversized fork proof is ignored", async () => {
  await withDir((_dir, path) => {
    SqliteStore.open(path).close();
    // 40,000 two-byte characters: under the old limit (64 Ki UTF-16 units), over 64 KiB of UTF-8.
    const author = testIdentity(7);
    const big = handSigned(author, "é".repeat(40_000));
    const rival = handSigned(author, "other");
    const db = new DatabaseSync(path);
    db.prepare(`INSERT INTO ops ${INSERT_COLUMNS} VALUES ${ROW_PLACEHOLDERS}`)
      .run(...rowValues(big, encodeOperation(big)));
    const [a, b] = big.id < rival.id ? [big, rival] : [rival, big];
    db.prepare("INSERT INTO forks (author, proof) VALUES (?, ?)")
      .run(author.nodeId, JSON.stringify({ author: author.nodeId, seq: 1, a, b }));
    db.close();
    const store = SqliteStore.open(path);
    assert.deepEqual([...store.load()].map((op) => op.id), [big.id]);
    assert.equal(store.loadForks().length, 1);
    const replica = Replica.open({ identity: testIdentity(8), store });
    try {
      assert.equal(replica.isForked(author.nodeId), false);
      assert.equal(replica.size, 1);
    } finally {
      replica.close();
    }
  });
});

Deno.test("group commit: received operations share a transaction that our own durable write commits first", async () => {
  await withDir(async (_dir, path) => {
    const received = makeChain(testIdentity(7), 3);
    const own = makeChain(testIdentity(8), 1);
    // The child exits without closing, as a killed process would: only committed rows remain.
    const child = await runChild(`
      import { SqliteStore } from ${JSON.stringify(STORE_MODULE)};
      const store = SqliteStore.open(${JSON.stringify(path)}, { groupCommitMs: 60_000 });
      for (const op of ${JSON.stringify(received)}) store.append([op], { durable: false });
      if (store.count() !== 3) Deno.exit(2);
      store.append(${JSON.stringify(own)});
      console.log("appended");
      Deno.exit(0);
    `);
    assert.equal(child.code, 0, child.stderr);
    const store = SqliteStore.open(path);
    try {
      assert.deepEqual(
        [...store.load()].map((op) => op.id),
        [...received, ...own].map((op) => op.id),
      );
    } finally {
      store.close();
    }
  });
});

Deno.test("group commit: a batch that fails is undone alone; the group's other batches are kept", async () => {
  await withDir((_dir, path) => {
    const [a, b, c] = makeChain(testIdentity(9), 3);
    const store = SqliteStore.open(path, { groupCommitMs: 60_000 });
    store.append([a], { durable: false });
    const broken = { ...b, seq: Number.NaN } as Operation;
    assert.throws(() => store.append([b, broken], { durable: false }), /nothing from this batch/);
    store.append([c], { durable: false });
    store.close();
    const reopened = SqliteStore.open(path);
    try {
      assert.deepEqual([...reopened.load()].map((op) => op.id), [a.id, c.id]);
    } finally {
      reopened.close();
    }
  });
});

Deno.test("SqliteStore: a stream of durable commits keeps the -wal file near 4 MiB, written over", () =>
  withDir((dir, path) => {
    // One operation per fsynced commit, as a node's own writes: each adds two pages (16 KiB) to
    // the log, about 12 MB for these 750 if it grew, and growing it costs more per fsync.
    const ops = makeChain(testIdentity(2), 750);
    const store = SqliteStore.open(path);
    let largestLog = 0;
    for (const op of ops) {
      store.append([op]);
      largestLog = Math.max(largestLog, Deno.statSync(`${path}-wal`).size);
    }
    assert.ok(
      largestLog < LOG_FILE_LIMIT_BYTES + 2 ** 20,
      `the -wal file reached ${largestLog} bytes`,
    );
    store.close();
    assert.deepEqual(listDir(dir), ["ops.db"]);
    const reopened = SqliteStore.open(path);
    assert.equal(reopened.count(), ops.length);
    reopened.close();
  }));

for (const batchSize of [500, 5000]) {
  Deno.test(`SqliteStore checkpoints its log while it is written: a long run of appends of ${batchSize} keeps the -wal file bounded`, () =>
    withDir((dir, path) => {
      // About 70 MB of rows in batches (of 5000: each about as big as a catch-up frame's, over
      // half the writer's own checkpoint mark), with no turn of the event loop between them
      // (about 130 MB of log if it were never reused): the log is checkpointed and starts over.
      const ops = makeChain(testIdentity(1), 150_000);
      const store = SqliteStore.open(path);
      let written = 0;
      let largestLog = 0;
      for (let i = 0; i < ops.length; i += batchSize) {
        const batch = ops.slice(i, i + batchSize);
        store.append(batch, { durable: false });
        written += batch.reduce((sum, op) => sum + encodeOperation(op).length, 0);
        largestLog = Math.max(largestLog, Deno.statSync(`${path}-wal`).size);
      }
      assert.ok(written > 64 * 2 ** 20, `${written}`);
      assert.ok(
        largestLog < 24 * 2 ** 20, // about twice MAX_UNCHECKED_BYTES (4 MiB) and a batch at most
        `the -wal file reached ${largestLog} bytes for ${written} bytes of operations`,
      );
      store.close();
      assert.deepEqual(listDir(dir), ["ops.db"]); // the last connection folded the log in
      const reopened = SqliteStore.open(path);
      assert.equal(reopened.count(), ops.length);
      reopened.close();
    }));
}
