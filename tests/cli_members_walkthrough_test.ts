/**
 * The mesh membership walkthrough of issue 12 (README "Walkthrough: a mesh
 * with members"), run as subprocesses with no `trust add` anywhere: the hub
 * creates the mesh, a, b and c join with one token each, items flow both
 * ways, c dials a directly without a token, and revoking c on the hub closes
 * c's sessions, keeps c's later writes off every node, and shows on b.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  huskies,
  removeDir,
  type RunResult,
  ServeProcess,
  tempDir,
  waitFor,
} from "./cli_helpers.ts";

const SOON_MS = 20_000;

async function ok(args: string[]): Promise<RunResult> {
  const result = await huskies(args);
  assert.equal(result.code, 0, `huskies ${args.join(" ")}:\n${result.stdout}\n${result.stderr}`);
  return result;
}

interface MemberRow {
  key: string;
  scope: string | null;
  label: string;
  revokedAtSeq: number | null;
}

async function members(dir: string): Promise<MemberRow[]> {
  const result = await ok(["members", "list", "--json", "--data-dir", dir]);
  return (JSON.parse(result.stdout) as { members: MemberRow[] }).members;
}

async function peers(dir: string): Promise<string[]> {
  const result = await ok(["status", "--json", "--data-dir", dir]);
  return (JSON.parse(result.stdout) as { peers: { peer: string; state: string }[] }).peers
    .filter((p) => p.state === "live").map((p) => p.peer);
}

/** Resolves once `huskies item get` on `dir` finds `id`. */
function itemOn(dir: string, id: string, what: string): Promise<true> {
  return waitFor(
    async () => {
      const result = await huskies(["item", "get", id, "--data-dir", dir]);
      return result.code === 0 ? true : undefined;
    },
    what,
    SOON_MS,
  );
}

/** Resolves once `dir`'s member list shows `key` with write scope. */
function writerOn(dir: string, key: string, what: string): Promise<true> {
  return waitFor(
    async () => {
      const row = (await members(dir)).find((m) => m.key === key);
      return row?.scope === "write" ? true : undefined;
    },
    what,
    SOON_MS,
  );
}

Deno.test({
  name: "members walkthrough: one token per node, no trust add, revocation shuts a node out",
  ignore: Deno.build.os === "windows",
  async fn() {
    const root = await tempDir("huskies-members-");
    const dirs = Object.fromEntries(["hub", "a", "b", "c"].map((n) => [n, join(root, n)]));
    const running: ServeProcess[] = [];
    const serve = async (name: string, args: string[]) => {
      const node = await ServeProcess.start([
        "--data-dir",
        dirs[name],
        "--listen",
        "127.0.0.1:0",
        ...args,
      ]);
      running.push(node);
      return node;
    };
    try {
      // 1. hub: keys create, members init, serve.
      await ok(["keys", "create", "--data-dir", dirs.hub]);
      const init = await ok(["members", "init", "--label", "hub", "--data-dir", dirs.hub]);
      assert.match(init.stdout, /^Created mesh [0-9a-f]{64}; this node is its first admin\.$/m);
      const hub = await serve("hub", []);

      // 2. a and b join with a token each.
      const joined: Record<string, ServeProcess> = {};
      for (const name of ["a", "b"]) {
        const token = (await ok(["token", "create", "--label", name, "--data-dir", dirs.hub]))
          .stdout.trim();
        joined[name] = await serve(name, ["--rendezvous", hub.syncUrl, "--join", token]);
        await writerOn(dirs[name], joined[name].nodeId, `${name} sees its own grant`);
      }
      const { a } = joined;
      // Only an admin issues tokens.
      const refused = await huskies(["token", "create", "--data-dir", dirs.a]);
      assert.equal(refused.code, 1);
      assert.match(
        refused.stderr,
        /Cannot create token: this node's key is not an admin of its mesh/,
      );
      const notAdmin = await huskies(["members", "grant", hub.nodeId, "--data-dir", dirs.a]);
      assert.equal(notAdmin.code, 1);
      assert.match(notAdmin.stderr, /Cannot grant: this node's key is not an admin of the mesh/);

      // 3. an item put on a is visible on b, and the other way round.
      await ok(["item", "put", "A-1", "--stage", "coding", "--data-dir", dirs.a]);
      await itemOn(dirs.b, "A-1", "a's item on b");
      await ok(["item", "put", "B-1", "--stage", "coding", "--data-dir", dirs.b]);
      await itemOn(dirs.a, "B-1", "b's item on a");

      // 4. c joins the same way; its items reach a and b, and a's reach c.
      const token = (await ok(["token", "create", "--label", "c", "--data-dir", dirs.hub]))
        .stdout.trim();
      let c = await serve("c", ["--rendezvous", hub.syncUrl, "--join", token]);
      await writerOn(dirs.c, c.nodeId, "c sees its own grant");
      await ok(["item", "put", "C-1", "--stage", "coding", "--data-dir", dirs.c]);
      await itemOn(dirs.a, "C-1", "c's item on a");
      await itemOn(dirs.b, "C-1", "c's item on b");
      await itemOn(dirs.c, "A-1", "a's item on c");

      // 5. c dials a directly, without a token, and is accepted.
      assert.equal(await c.stop(), 0);
      running.splice(running.indexOf(c), 1);
      c = await serve("c", ["--rendezvous", hub.syncUrl, "--rendezvous", a.syncUrl]);
      await waitFor(
        async () => (await peers(dirs.a)).includes(c.nodeId) ? true : undefined,
        "a accepted c without a token",
        SOON_MS,
      );

      // 6. revoking c on the hub closes its sessions on the hub and on a.
      const revoked = await ok(["members", "revoke", c.nodeId, "--data-dir", dirs.hub]);
      assert.match(
        revoked.stdout,
        /^Revoked [0-9a-f]{64}: its operations after seq \d+ are refused\.$/m,
      );
      for (const name of ["hub", "a"]) {
        await waitFor(
          async () => (await peers(dirs[name])).includes(c.nodeId) ? undefined : true,
          `c's session on ${name} closed`,
          SOON_MS,
        );
      }
      await waitFor(
        async () => (await peers(dirs.c)).length === 0 ? true : undefined,
        "c has no session left",
        SOON_MS,
      );
      // An item c writes now (if c still may: it may not have heard) reaches nobody.
      const late = await huskies(["item", "put", "C-2", "--stage", "coding", "--data-dir", dirs.c]);
      assert.ok(
        late.code === 0 || /Cannot write: this node's key is not a member/.test(late.stderr),
        late.stderr,
      );
      const row = await waitFor(
        async () => {
          const found = (await members(dirs.b)).find((m) => m.key === c.nodeId);
          return found?.scope === null ? found : undefined;
        },
        "b lists c as revoked",
        SOON_MS,
      );
      assert.equal(typeof row.revokedAtSeq, "number");
      const list = await ok(["members", "list", "--data-dir", dirs.b]);
      assert.match(list.stdout, new RegExp(`^c\\s+${c.nodeId}\\s+revoked`, "m"));
      assert.deepEqual(await peers(dirs.c), [], "c was not let back in");
      for (const name of ["hub", "a", "b"]) {
        const result = await huskies(["item", "get", "C-2", "--data-dir", dirs[name]]);
        assert.equal(result.code, 3, `C-2 is not on ${name}`);
      }
      for (const node of [...running].reverse()) assert.equal(await node.stop(), 0);
      running.length = 0;
    } finally {
      for (const node of running) await node.kill();
      await removeDir(root);
    }
  },
});
