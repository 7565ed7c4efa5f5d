import assert from "node:assert/strict";
import { dirname, join, relative } from "node:path";
import { removeDir, tempDir } from "./cli_helpers.ts";

const ROOT = new URL("..", import.meta.url).pathname;

/** Copies the working tree (without .git) to `target`. */
async function copyTree(from: string, target: string): Promise<void> {
  for await (const entry of Deno.readDir(from)) {
    if (entry.name === ".git") continue;
    const source = join(from, entry.name);
    const dest = join(target, entry.name);
    if (entry.isDirectory) {
      await Deno.mkdir(dest, { recursive: true });
      await copyTree(source, dest);
    } else if (entry.isFile) {
      await Deno.copyFile(source, dest);
    }
  }
}

async function plant(root: string, path: string): Promise<void> {
  await Deno.mkdir(dirname(join(root, path)), { recursive: true });
  await Deno.writeTextFile(join(root, path), "secret\n");
}

/** The files `deno publish --dry-run` would upload, relative to `root`. */
async function dryRunFiles(root: string): Promise<string[]> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["publish", "--dry-run", "--allow-dirty", "--no-check"],
    cwd: root,
    env: { NO_COLOR: "1" },
    stdin: "null",
  }).output();
  const text = new TextDecoder().decode(output.stdout) + new TextDecoder().decode(output.stderr);
  assert.equal(output.code, 0, text);
  return [...text.matchAll(/file:\/\/(\S+) \(/g)].map((m) => relative(root, m[1])).sort();
}

Deno.test("deno publish lists only the library, the CLI and the docs, even beside data folders", async () => {
  const root = await tempDir("huskies-publish-");
  try {
    await copyTree(ROOT, root);
    // What the walkthrough (old and new) and a careless operator leave in the checkout.
    for (const folder of ["hub", "a", "b", "c", "scratch/hub", ".huskies", "cli/data"]) {
      for (const file of ["node.key", "admin.token", "ops.db", "ops.db-wal", "trust.json"]) {
        await plant(root, `${folder}/${file}`);
      }
    }
    await plant(root, "hub/serve.json");
    await plant(root, "hub/tokens.json");
    await plant(root, "hub/project.toml");
    const files = await dryRunFiles(root);
    assert.ok(files.includes("mod.ts") && files.includes("main.ts"), files.join("\n"));
    assert.ok(files.includes("cli/USAGE.md") && files.includes("README.md"));
    assert.ok(files.includes("PROTOCOL.md") && files.includes("deno.json"));
    const allowed =
      /^(mod\.ts|main\.ts|testing\.ts|deno\.json|data_dir\.ts|README\.md|PROTOCOL\.md|(protocol|crdt|auth|sync|cli|testing|conformance)\/([\w-]+\/)*[\w-]+\.(ts|md))$/;
    const unexpected = files.filter((file) => !allowed.test(file) || file.endsWith("_test.ts"));
    assert.deepEqual(unexpected, [], "nothing but source and docs is published");
  } finally {
    await removeDir(root);
  }
});
