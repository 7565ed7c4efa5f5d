/**
 * Operations on disk: a replica over a SqliteStore holds light references
 * (bodies stay in the file), restores its saved document at open and applies
 * only what was stored after it, and the node checks every row's id in the
 * background instead of before it starts.
 */
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { grantMember, initMesh, revokeMember } from "../crdt/members_api.ts";
import { encodeOperation, type Operation } from "../crdt/operation.ts";
import { Replica } from "../crdt/replica.ts";
import { SqliteStore, StoreCorruptError } from "../crdt/sqlite_store.ts";
import { MemoryStore } from "../crdt/store.ts";
import { StoredOperation } from "../crdt/stored_operation.ts";
import { CloseCode } from "../protocol/close_codes.ts";
import { HuskiesNode } from "../sync/node.ts";
import { SyncSession } from "../sync/session.ts";
import { compactBulkFrames } from "../sync/compact_bulk.ts";
import { utf8Length } from "../protocol/bytes.ts";
import { identity, OpFactory, setField } from "./helpers.ts";

async function withDir(body: (path: string, dir: string) => Promise<void> | void): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "huskies-disk-" });
  try {
    await body(`${dir}/ops.db`, dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Operations by three authors over shared items: updates, removes and appends, with deps. */
function mixedOps(count: number): Operation[] {
  const factory = new OpFactory();
  const authors = [identity(1), identity(2), identity(3)];
  const ops: Operation[] = [];
  for (let i = 0; i < count; i++) {
    const author = authors[i % 3];
    const deps = i >= 3 && i % 5 === 0 ? [ops[i - 2].id] : [];
    const mutation = i % 7 === 6
      ? { type: "remove" as const, path: ["items", `s${i % 4}`] }
      : i % 3 === 2
      ? { type: "append" as const, path: ["log"], value: { n: i } }
      : setField(`s${i % 4}`, "stage", `stage-${i}`);
    ops.push(factory.next(author, mutation, deps));
  }
  return ops;
}

/** What a replica that re-applied every operation (in memory) shows for `ops`. */
function referenceHash(ops: readonly Operation[]): string {
  const replica = Replica.open({ identity: identity(9), store: new MemoryStore() });
  replica.receive(ops);
  const hash = replica.stateHash();
  replica.close();
  return hash;
}

function openReplica(path: string): Replica {
  return Replica.open({ identity: identity(9), store: SqliteStore.open(path) });
}

/** A store at `path` holding `ops`, closed cleanly (so its document is saved). */
function writeStore(path: string, ops: readonly Operation[]): void {
  const replica = openReplica(path);
  replica.receive(ops);
  replica.close();
}

Deno.test("a replica over SQLite holds stored operations by reference and reads bodies on demand", async () => {
  await withDir((path) => {
    const ops = mixedOps(60);
    writeStore(path, ops);

    const replica = openReplica(path);
    try {
      assert.equal(replica.size, ops.length);
      assert.equal(replica.stateHash(), referenceHash(ops));
      for (const [i, held] of replica.operations().entries()) {
        assert.ok(held instanceof StoredOperation, `operation ${i} is a reference`);
        // Catch-up sends the stored text; every field reads back as signed.
        assert.equal(encodeOperation(held), encodeOperation(ops[i]));
        assert.deepEqual(held.deps, ops[i].deps);
        assert.deepEqual(held.mutation, ops[i].mutation);
        assert.equal(held.sig, ops[i].sig);
      }
      assert.deepEqual(
        replica.opsSince({}).map((op) => encodeOperation(op)),
        ops.map((op) => encodeOperation(op)),
      );
    } finally {
      replica.close();
    }
  });
});

Deno.test("the saved document is restored at open and what was stored after it is applied", async () => {
  await withDir((path) => {
    const ops = mixedOps(90);
    writeStore(path, ops.slice(0, 50));

    // A crash: operations stored after the save, then the store closed without the replica.
    const store = SqliteStore.open(path);
    const second = Replica.open({ identity: identity(9), store });
    second.receive(ops.slice(50));
    assert.equal(store.loadState()?.upTo, 50);
    store.close();

    const reopened = openReplica(path);
    try {
      assert.equal(reopened.size, ops.length);
      assert.equal(reopened.stateHash(), referenceHash(ops));
    } finally {
      reopened.close();
    }
    const check = SqliteStore.open(path);
    assert.equal(check.loadState()?.upTo, 90, "closing saved the document again");
    check.close();
  });
});

Deno.test("a saved state that no longer describes the store is not used", async (t) => {
  const ops = mixedOps(40);
  // Every case also marks the saved document's values ("stage-N" -> "zz-N", which wins a tie
  // of stamps), so a state that is used shows; the control case proves the mark is visible.
  const mark = "UPDATE state SET body = replace(body, 'stage-', 'zz-');";
  const cases: [string, string, boolean][] = [
    ["intact (control)", "", true],
    ["garbled", "UPDATE state SET body = substr(body, 2)", false],
    ["a document from other rows", "UPDATE state SET up_to = 10", false],
    [
      "forks that differ",
      `UPDATE state SET body = replace(body, '"forks":[]', '"forks":["x:1"]')`,
      false,
    ],
    ["rows it covered gone", "DELETE FROM ops WHERE seq_no > 30", false],
  ];
  for (const [name, damage, used] of cases) {
    await t.step(name, async () => {
      await withDir((path) => {
        writeStore(path, ops);
        const db = new DatabaseSync(path);
        db.exec(mark + damage);
        db.close();
        const replica = openReplica(path);
        try {
          const held = replica.operations().map((op) => (op as StoredOperation).read());
          const stage = replica.document.get(["items", "s1", "stage"]);
          if (used) assert.match(String(stage), /^zz-/);
          else assert.equal(replica.stateHash(), referenceHash(held));
        } finally {
          replica.close();
        }
      });
    });
  }
});

Deno.test("a version 1 store is upgraded in place and opens with every operation", async () => {
  await withDir((path) => {
    const ops = mixedOps(30);
    const db = new DatabaseSync(path);
    db.exec(`
      CREATE TABLE ops (seq_no INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL,
        author TEXT NOT NULL, seq INTEGER NOT NULL, body TEXT NOT NULL);
      CREATE TABLE forks (author TEXT PRIMARY KEY, proof TEXT NOT NULL);
      PRAGMA application_id = 1215656811;
      PRAGMA user_version = 1;
    `);
    const insert = db.prepare("INSERT INTO ops (id, author, seq, body) VALUES (?, ?, ?, ?)");
    for (const op of ops) insert.run(op.id, op.author, op.seq, encodeOperation(op));
    db.close();

    const replica = openReplica(path);
    try {
      assert.equal(replica.size, ops.length);
      assert.equal(replica.stateHash(), referenceHash(ops));
      assert.deepEqual(replica.operations().map((op) => op.deps), ops.map((op) => op.deps));
    } finally {
      replica.close();
    }
    const check = new DatabaseSync(path);
    const version = check.prepare("PRAGMA user_version").get() as { user_version: number };
    check.close();
    assert.equal(version.user_version, 2);
  });
});

Deno.test("a tampered row stops the node once the background check reaches it", async () => {
  await withDir(async (_path, dir) => {
    {
      await using node = await HuskiesNode.open({ dataDir: dir, open: true });
      for (let i = 0; i < 20; i++) node.pipeline.put(`S-${i}`, { stage: "coding" });
    }
    const db = new DatabaseSync(`${dir}/ops.db`);
    db.exec(`UPDATE ops SET body = replace(body, '"coding"', '"done"') WHERE seq_no = 7`);
    db.close();

    const node = await HuskiesNode.open({ dataDir: dir, open: true });
    const corrupt = await node.once("store-corrupt", { timeoutMs: 10_000 });
    assert.match(corrupt.message, /row seq_no 7 .*does not match its id/);
    await node.close(); // already stopping; safe to call again
    assert.throws(() => node.pipeline.put("S-x", { stage: "qa" }), /closed/);
  });
});

Deno.test("a compact catch-up of stored operations is byte for byte the one of the same operations in memory", async () => {
  await withDir((path) => {
    const factory = new OpFactory();
    const ops = [
      ...mixedOps(40),
      // Non-ASCII text (two-, three- and four-byte UTF-8, U+2028) counts at its UTF-8 size.
      factory.next(identity(4), setField("s9", "note", "é\u2028中😀".repeat(20))),
      factory.next(identity(4), setField("s9", "stage", "qa")),
    ];
    writeStore(path, ops);
    // A row laid out otherwise than the encoder writes it (keys in another order) is parsed.
    const { author, ...rest } = JSON.parse(encodeOperation(ops[7]));
    const db = new DatabaseSync(path);
    db.prepare("UPDATE ops SET body = ? WHERE seq_no = 8").run(JSON.stringify({ ...rest, author }));
    db.close();

    const replica = openReplica(path);
    try {
      const stored = replica.operations();
      assert.ok(stored.every((op) => op instanceof StoredOperation));
      assert.equal(stored[7].storedParts(), undefined);
      assert.notEqual(stored[8].storedParts(), undefined);
      for (const limit of [700, 2_000, 1 << 20]) {
        const fromDisk: string[] = [...compactBulkFrames(stored, limit)];
        assert.deepEqual(fromDisk, [...compactBulkFrames(ops, limit)], `limit ${limit}`);
        for (const frame of fromDisk) assert.ok(utf8Length(frame) <= limit);
      }
    } finally {
      replica.close();
    }
  });
});

Deno.test("a row that disagrees with its index is refused when its body is read", async () => {
  await withDir((path) => {
    const ops = mixedOps(10);
    writeStore(path, ops);
    const db = new DatabaseSync(path);
    db.prepare("UPDATE ops SET body = ? WHERE seq_no = 4").run(encodeOperation(ops[0]));
    db.close();
    const replica = openReplica(path);
    try {
      const held = replica.operations()[3];
      assert.throws(() => held.mutation, StoreCorruptError);
      // Its stored text is not sent for it either (a JSON catch-up sends the text as stored).
      assert.throws(() => encodeOperation(held), /holds another operation/);
    } finally {
      replica.close();
    }
  });
});

Deno.test("operations received or signed are held by reference once stored", async () => {
  await withDir((path) => {
    const ops = mixedOps(30);
    const replica = openReplica(path);
    try {
      replica.receive(ops.slice(0, 20));
      // Reading in sequence reads ahead; rows written after that must still read.
      for (const op of replica.operations()) encodeOperation(op);
      const [own] = replica.commit([setField("s9", "stage", "qa")]);
      replica.receive(ops.slice(20));
      const held = replica.operations();
      assert.equal(held.length, 31);
      assert.ok(
        held.every((op) => op instanceof StoredOperation),
        "every applied one is a reference",
      );
      assert.equal(encodeOperation(replica.getOperation(own.id)!), encodeOperation(own));
      assert.deepEqual(
        replica.opsSince({}).map((op) => encodeOperation(op)),
        [...ops.slice(0, 20), own, ...ops.slice(20)].map((op) => encodeOperation(op)),
      );
    } finally {
      replica.close();
    }
  });
});

Deno.test("a catch-up that cannot read a stored operation closes that session with 1011", async (t) => {
  const damages: [string, (body: string) => string][] = [
    ["a row that is not an operation", () => '{"not":"an operation"}'],
    // Its length and end are intact (the compact form slices rows in place); its mutation is not
    // JSON.
    ["a row whose mutation is not JSON", (body) => body.replace('"mutation":{', '"mutation":[')],
    ["a row whose signature is not hex", (body) => body.replace(/"sig":"../, '"sig":"zz')],
  ];
  for (const [name, damage] of damages) {
    await t.step(name, async () => {
      await withDir((path) => {
        const ops = mixedOps(10);
        writeStore(path, ops);
        const db = new DatabaseSync(path);
        db.prepare("UPDATE ops SET body = ? WHERE seq_no = 5").run(damage(encodeOperation(ops[4])));
        db.close();
        const replica = openReplica(path);
        try {
          const errors: unknown[] = [];
          const session = new SyncSession({
            replica,
            peer: identity(99).nodeId,
            direction: "inbound",
            now: 1000,
            logger: { log: (_level, _message, fields) => errors.push(fields?.error) },
          });
          session.start(1000);
          // The peer offers the compact form, whose entries need each operation's fields.
          session.receive(JSON.stringify({ type: "clock", clock: {}, accept: ["cbulk"] }), 1001);
          const out = session.tick(1001, 0);
          assert.equal(out.close?.code, CloseCode.INTERNAL_ERROR);
          // The operator is told which row of which store is damaged.
          assert.ok(
            errors.some((e) => /Cannot read store at .* row seq_no 5 /.test(String(e))),
            String(errors),
          );
          assert.equal(replica.size, 10, "the replica is untouched and still open");
        } finally {
          replica.close();
        }
      });
    });
  }
});

Deno.test("a stored operation serialises like the operation it stands for", async () => {
  await withDir((path) => {
    const ops = mixedOps(5);
    writeStore(path, ops);
    const replica = openReplica(path);
    try {
      assert.deepEqual(
        replica.operations().map((op) => JSON.parse(JSON.stringify(op))),
        ops.map((op) => JSON.parse(JSON.stringify(op))),
      );
    } finally {
      replica.close();
    }
  });
});

Deno.test("after a restart a new operation depends on the same frontier as before it", async () => {
  await withDir((path) => {
    // Author 2's last operation is named as a dependency by author 1's: not in the frontier.
    const factory = new OpFactory();
    const ops = [...factory.chain(identity(1), 3), ...factory.chain(identity(2), 3)];
    ops.push(factory.next(identity(1), setField("s1", "stage", "qa"), [ops[5].id]));
    ops.push(...factory.chain(identity(3), 2));
    const live = Replica.open({ identity: identity(9), store: new MemoryStore() });
    live.receive(ops);
    const [expected] = live.commit([setField("s0", "stage", "done")]);
    live.close();
    assert.ok(expected.deps.length > 1, "the test needs a frontier of several operations");

    writeStore(path, ops);
    const reopened = openReplica(path);
    try {
      const [op] = reopened.commit([setField("s0", "stage", "done")]);
      assert.deepEqual(op.deps, expected.deps);
    } finally {
      reopened.close();
    }
  });
});

Deno.test("in a mesh, a membership change stored after the saved document makes the open rebuild it", async () => {
  await withDir((path) => {
    const admin = identity(1);
    const member = identity(2);
    const hub = Replica.open({ identity: admin });
    const mesh = initMesh(hub, "hub");
    grantMember(hub, member.nodeId, "write", "m");
    const node = Replica.open({ identity: member, mesh });
    node.receive(hub.opsSince({}));
    node.commit([setField("S-1", "stage", "coding")]);
    hub.receive(node.opsSince(hub.clock(), hub.heads()));
    const cut = hub.clock()[member.nodeId];
    node.commit([setField("S-2", "stage", "coding")]); // past the cut to come

    // A witness on disk saves its document with S-2 in it, then stores the revocation and
    // stops before saving again (as a crash would).
    const first = Replica.open({ identity: identity(3), mesh, store: SqliteStore.open(path) });
    first.receive([...hub.opsSince({}), ...node.opsSince(hub.clock())]);
    first.close();
    assert.equal(cut, 1);
    revokeMember(hub, member.nodeId);
    const store = SqliteStore.open(path);
    const second = Replica.open({ identity: identity(3), mesh, store });
    assert.equal(second.document.get(["items", "S-2", "stage"]), "coding");
    second.receive(hub.opsSince(second.clock(), second.heads()));
    assert.equal(second.document.get(["items", "S-2", "stage"]), undefined, "past the cut");
    store.close();

    const reopened = Replica.open({ identity: identity(3), mesh, store: SqliteStore.open(path) });
    try {
      assert.equal(reopened.document.get(["items", "S-2", "stage"]), undefined);
      assert.equal(reopened.document.get(["items", "S-1", "stage"]), "coding");
      assert.equal(reopened.stateHash(), second.stateHash());
    } finally {
      reopened.close();
      hub.close();
      node.close();
    }
  });
});
