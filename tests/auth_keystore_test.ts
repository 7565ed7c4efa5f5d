import assert from "node:assert/strict";
import {
  createIdentityFile,
  importIdentity,
  KeyFileCorruptError,
  KeyFileExistsError,
  KeyFileMissingError,
  keyFilePath,
  KeyFilePermissionError,
  loadOrCreateIdentity,
  readIdentity,
} from "../auth/mod.ts";

async function tempDir(): Promise<string> {
  return await Deno.makeTempDir({ prefix: "huskies-keystore-" });
}

function mode(path: string): number {
  return Deno.statSync(path).mode! & 0o777;
}

const SEED_HEX = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
const SEED_NODE_ID = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";

Deno.test("keystore creates the key file on first use with mode 0600 in a 0700 data dir", async () => {
  const root = await tempDir();
  const dataDir = `${root}/data`;
  try {
    const first = await loadOrCreateIdentity(dataDir);
    assert.equal(first.created, true);
    assert.equal(mode(keyFilePath(dataDir)), 0o600);
    assert.equal(mode(dataDir), 0o700);
    const text = await Deno.readTextFile(keyFilePath(dataDir));
    assert.match(text, /^\{"version":1,"seed":"[0-9a-f]{64}"\}\n$/);
    const second = await loadOrCreateIdentity(dataDir);
    assert.equal(second.created, false);
    assert.equal(second.identity.nodeId, first.identity.nodeId);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("keystore refuses a group-readable key file and says to chmod 600", async () => {
  const dir = await tempDir();
  try {
    await createIdentityFile(dir);
    const path = keyFilePath(dir);
    await Deno.chmod(path, 0o644);
    for (const load of [() => loadOrCreateIdentity(dir), () => readIdentity(dir)]) {
      await assert.rejects(load, (error: Error) => {
        assert.ok(error instanceof KeyFilePermissionError);
        assert.ok(error.message.includes(path), error.message);
        assert.ok(error.message.includes(`chmod 600 ${path}`), error.message);
        assert.ok(error.message.includes("0644"), error.message);
        return true;
      });
    }
    await Deno.chmod(path, 0o600);
    await readIdentity(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("keystore refuses a corrupt key file, names it, and leaves it intact", async () => {
  const dir = await tempDir();
  try {
    const path = keyFilePath(dir);
    const corrupt = [
      "not json",
      '{"version":2,"seed":"' + SEED_HEX + '"}\n',
      '{"version":1,"seed":"abc"}\n',
      '{"version":1}\n',
    ];
    for (const text of corrupt) {
      await Deno.writeTextFile(path, text, { mode: 0o600 });
      await assert.rejects(() => loadOrCreateIdentity(dir), (error: Error) => {
        assert.ok(error instanceof KeyFileCorruptError, String(error));
        assert.ok(error.message.includes(path), error.message);
        assert.ok(!error.message.includes(SEED_HEX), "the seed must not appear in errors");
        return true;
      });
      assert.equal(await Deno.readTextFile(path), text);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("keystore create refuses to overwrite an existing key without force", async () => {
  const dir = await tempDir();
  try {
    const original = await createIdentityFile(dir);
    const before = await Deno.readTextFile(keyFilePath(dir));
    await assert.rejects(() => createIdentityFile(dir), KeyFileExistsError);
    await assert.rejects(() => importIdentity(dir, SEED_HEX), KeyFileExistsError);
    assert.equal(await Deno.readTextFile(keyFilePath(dir)), before);
    assert.equal((await readIdentity(dir)).nodeId, original.nodeId);
    const replaced = await createIdentityFile(dir, { force: true });
    assert.notEqual(replaced.nodeId, original.nodeId);
    assert.equal((await readIdentity(dir)).nodeId, replaced.nodeId);
    assert.equal(mode(keyFilePath(dir)), 0o600);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("keystore imports a seed and reads back the same identity", async () => {
  const dir = await tempDir();
  try {
    // RFC 8032 test 1: the seed's public key is known.
    const imported = await importIdentity(dir, SEED_HEX.toUpperCase() + "\n");
    assert.equal(imported.nodeId, SEED_NODE_ID);
    assert.equal((await readIdentity(dir)).nodeId, SEED_NODE_ID);
    assert.equal(
      await Deno.readTextFile(keyFilePath(dir)),
      `{"version":1,"seed":"${SEED_HEX}"}\n`,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("keystore import refuses a bad seed without echoing it", async () => {
  const dir = await tempDir();
  try {
    const bad = SEED_HEX.slice(0, 60) + "zzzz";
    await assert.rejects(() => importIdentity(dir, bad), (error: Error) => {
      assert.ok(error instanceof TypeError);
      assert.ok(!error.message.includes(bad));
      return true;
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("keystore read reports a missing key file", async () => {
  const dir = await tempDir();
  try {
    await assert.rejects(() => readIdentity(dir), (error: Error) => {
      assert.ok(error instanceof KeyFileMissingError);
      assert.ok(error.message.startsWith("Cannot read key file"));
      return true;
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("keystore leaves no temp files behind after writing", async () => {
  const dir = await tempDir();
  try {
    await createIdentityFile(dir);
    await createIdentityFile(dir, { force: true });
    const names = [...Deno.readDirSync(dir)].map((e) => e.name);
    assert.deepEqual(names, ["node.key"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
