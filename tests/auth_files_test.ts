import assert from "node:assert/strict";
import {
  createIdentityFile,
  DataFileError,
  keyFilePath,
  KeyFilePermissionError,
  loadOrCreateIdentity,
  readIdentity,
  TokenStore,
  TrustStore,
} from "../auth/mod.ts";
import { ownerProblem, readSecretFileSync } from "../auth/files.ts";
import { TOKEN_FILE_NAME, TRUST_FILE_NAME } from "../data_dir.ts";
import { Identity } from "../crdt/identity.ts";

const KEY = Identity.generate().nodeId;
/** Changing a file's owner needs root; the owner tests run only then. */
const isRoot = Deno.build.os !== "windows" && Deno.uid() === 0;
const OTHER_UID = 4242;

async function withDir(fn: (dir: string) => Promise<void> | void): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "huskies-files-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Moves `path` aside and puts a symbolic link to it in its place. */
function replaceWithLink(path: string): string {
  const target = `${path}.real`;
  Deno.renameSync(path, target);
  Deno.symlinkSync(target, path);
  return target;
}

Deno.test("a key file that is a symbolic link is refused, not followed", async () => {
  await withDir(async (dir) => {
    await createIdentityFile(dir);
    const path = keyFilePath(dir);
    replaceWithLink(path);
    for (const load of [() => readIdentity(dir), () => loadOrCreateIdentity(dir)]) {
      await assert.rejects(load, (error: Error) => {
        assert.ok(error instanceof KeyFilePermissionError, String(error));
        assert.match(error.message, /^Cannot use key file .*: it is a symbolic link/);
        return true;
      });
    }
    // The link was left alone: no new identity was written over it.
    assert.ok(Deno.lstatSync(path).isSymlink);
  });
});

Deno.test("a token file that is a symbolic link is refused with a clear message", async () => {
  await withDir((dir) => {
    const tokens = TokenStore.open(dir);
    tokens.create({ ttlMs: null }, KEY);
    replaceWithLink(`${dir}/${TOKEN_FILE_NAME}`);
    assert.throws(() => TokenStore.open(dir).list(), (error: Error) => {
      assert.ok(error instanceof DataFileError, String(error));
      assert.match(error.message, /^Cannot read token file .*: it is a symbolic link/);
      return true;
    });
  });
});

Deno.test("secret files are read only when private, regular and not a link", async () => {
  await withDir((dir) => {
    const path = `${dir}/admin.token`;
    assert.equal(readSecretFileSync(path), null);
    Deno.writeTextFileSync(path, "secret\n", { mode: 0o600 });
    Deno.chmodSync(path, 0o600);
    assert.equal(readSecretFileSync(path), "secret\n");
    Deno.chmodSync(path, 0o640);
    assert.throws(() => readSecretFileSync(path), /accessible by group or others \(mode 0640\)/);
    Deno.chmodSync(path, 0o600);
    replaceWithLink(path);
    assert.throws(() => readSecretFileSync(path), /symbolic link/);
  });
});

Deno.test("the owner rule: only this process's user may own a data file", () => {
  assert.equal(ownerProblem(1000, 1000), undefined);
  assert.equal(ownerProblem(null, 1000), undefined); // the platform has no owners
  assert.match(
    ownerProblem(0, 1000)!,
    /owned by another user \(uid 0; this process runs as uid 1000\)/,
  );
});

Deno.test({
  name: "data files owned by another user are refused: key, trust and token files",
  ignore: !isRoot,
  fn: async () => {
    await withDir(async (dir) => {
      await createIdentityFile(dir);
      Deno.chownSync(keyFilePath(dir), OTHER_UID, OTHER_UID);
      await assert.rejects(() => readIdentity(dir), (error: Error) => {
        assert.ok(error instanceof KeyFilePermissionError, String(error));
        assert.match(error.message, /owned by another user \(uid 4242; .*chown/);
        return true;
      });

      TrustStore.open(dir).add(KEY, "write");
      Deno.chownSync(`${dir}/${TRUST_FILE_NAME}`, OTHER_UID, OTHER_UID);
      assert.throws(() => TrustStore.open(dir).list(), (error: Error) => {
        assert.ok(error instanceof DataFileError, String(error));
        assert.match(error.message, /^Cannot read trust file .*: it is owned by another user/);
        return true;
      });

      TokenStore.open(dir).create({ ttlMs: null }, KEY);
      Deno.chownSync(`${dir}/${TOKEN_FILE_NAME}`, OTHER_UID, OTHER_UID);
      assert.throws(() => TokenStore.open(dir).list(), /owned by another user/);
    });
  },
});
