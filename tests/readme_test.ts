/**
 * The README's library snippet runs as written: it is taken from README.md,
 * run with `jsr:@huskies/sync` mapped to this checkout's mod.ts, and must
 * exit 0 printing what it says it prints.
 */
import assert from "node:assert/strict";
import { join } from "node:path";

const root = new URL("../", import.meta.url);

/** The first `ts` code block after the `## Library` heading of README.md. */
function librarySnippet(readme: string): string {
  const section = readme.indexOf("\n## Library\n");
  assert.ok(section >= 0, "README.md has no '## Library' section");
  const match = /```ts\n([\s\S]*?)\n```/.exec(readme.slice(section));
  assert.ok(match, "the '## Library' section has no ts code block");
  return match[1] + "\n";
}

/** An import map: the project's own imports plus `jsr:@huskies/sync` → this checkout. */
function importMap(): string {
  const config = JSON.parse(Deno.readTextFileSync(new URL("deno.json", root)));
  const imports = { ...config.imports, "jsr:@huskies/sync": new URL("mod.ts", root).href };
  return JSON.stringify({ imports });
}

Deno.test("the README library snippet runs as written and prints the synced item", async () => {
  const snippet = librarySnippet(Deno.readTextFileSync(new URL("README.md", root)));
  assert.match(snippet, /from "jsr:@huskies\/sync"/);
  assert.match(snippet, /hostname: "127\.0\.0\.1"/, "the snippet must listen on loopback only");

  const dir = Deno.makeTempDirSync({ prefix: "huskies-readme-" });
  try {
    Deno.writeTextFileSync(join(dir, "example.ts"), snippet);
    Deno.writeTextFileSync(join(dir, "import_map.json"), importMap());
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--no-lock", "--import-map", "import_map.json", "--allow-net", "example.ts"],
      cwd: dir,
      env: { NO_COLOR: "1" },
      stdin: "null",
      signal: AbortSignal.timeout(60_000),
    }).output();
    const stdout = new TextDecoder().decode(output.stdout);
    const stderr = new TextDecoder().decode(output.stderr);
    assert.equal(output.code, 0, `the snippet failed:\n${stdout}\n${stderr}`);
    assert.equal(stdout, "coding\n");
    // It exited on its own (an open server or node would keep it running) and wrote nothing.
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name).sort(), [
      "example.ts",
      "import_map.json",
    ]);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
