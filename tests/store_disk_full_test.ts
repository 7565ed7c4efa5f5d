import assert from "node:assert/strict";
import { canRunUnshared } from "./helpers.ts";

const STORE_MODULE = new URL("../crdt/sqlite_store.ts", import.meta.url).href;
const CONFORMANCE_MODULE = new URL("../testing/store_conformance.ts", import.meta.url).href;

/** A script that fills an 8 MiB tmpfs mounted at `$DIR` while it writes, then makes room. */
const CHILD = `
  import { SqliteStore } from ${JSON.stringify(STORE_MODULE)};
  import { makeChain, testIdentity } from ${JSON.stringify(CONFORMANCE_MODULE)};
  const dir = Deno.env.get("DIR");
  const path = dir + "/ops.db";
  Deno.writeFileSync(dir + "/filler", new Uint8Array(4 * 2 ** 20));
  const ops = makeChain(testIdentity(1), 20000);
  const store = SqliteStore.open(path);
  let stored = 0;
  let refusal = "";
  for (; stored < ops.length; stored += 100) {
    try {
      store.append(ops.slice(stored, stored + 100), { durable: stored % 200 === 0 });
    } catch (error) {
      refusal = error.message;
      break;
    }
  }
  Deno.removeSync(dir + "/filler");
  for (let i = 0; i < 10; i++, stored += 100) store.append(ops.slice(stored, stored + 100));
  store.close();
  const reopened = SqliteStore.open(path);
  console.log(JSON.stringify({ stored, refusal, count: reopened.count() }));
  reopened.close();
`;

/** True when this machine can mount a tmpfs in a user namespace (Linux). */
const CAN_MOUNT_TMPFS = await canRunUnshared(
  'd=$(mktemp -d) && mount -t tmpfs -o size=1m tmpfs "$d"',
);

Deno.test({
  name:
    "SqliteStore on a full disk refuses the batch that does not fit, loses nothing, and goes on once there is room",
  ignore: !CAN_MOUNT_TMPFS,
  fn: async () => {
    const script = 'd=$(mktemp -d) && mount -t tmpfs -o size=8m tmpfs "$d" && DIR="$d" exec "$@"';
    const output = await new Deno.Command("unshare", {
      args: ["-rm", "sh", "-c", script, "sh", Deno.execPath(), "eval", CHILD],
      cwd: new URL("..", import.meta.url),
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(120_000),
    }).output();
    const text = new TextDecoder();
    assert.equal(output.code, 0, text.decode(output.stderr));
    const { stored, refusal, count } = JSON.parse(text.decode(output.stdout));
    assert.match(
      refusal,
      /^Cannot append to store at .*: database or disk is full; nothing from this batch was stored$/,
    );
    assert.ok(stored >= 1000 && stored < 20000, `${stored}`);
    assert.equal(count, stored); // every batch it accepted, before and after the disk filled
  },
});
