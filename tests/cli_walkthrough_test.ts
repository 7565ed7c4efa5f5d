import assert from "node:assert/strict";
import { join } from "node:path";
import { MAIN, removeDir, tempDir } from "./cli_helpers.ts";

const README = new URL("../README.md", import.meta.url);

/** The walkthrough script: the first sh block under "## Walkthrough". */
async function walkthroughScript(): Promise<string> {
  const text = await Deno.readTextFile(README);
  const section = text.slice(text.indexOf("## Walkthrough"));
  const match = /```sh\n([\s\S]*?)```/.exec(section);
  assert.ok(match, "the README has a walkthrough script");
  return match[1];
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

Deno.test({
  name: "the README walkthrough runs as one script and stops its nodes at the end",
  ignore: Deno.build.os === "windows",
  async fn() {
    const dir = await tempDir("huskies-walkthrough-");
    try {
      let script = await walkthroughScript();
      // The same script, with free ports, this checkout's main.ts and a temp scratch folder.
      for (const port of [3001, 3002, 3003, 3004]) {
        script = script.replaceAll(`127.0.0.1:${port}`, `127.0.0.1:${freePort()}`);
      }
      script = script.replace(
        "deno run -A main.ts",
        `${JSON.stringify(Deno.execPath())} run -A ${MAIN}`,
      )
        .replace("W=scratch", `W=${join(dir, "scratch")}`);
      const output = await new Deno.Command("bash", {
        args: ["-e", "-c", `set -o pipefail\n${script}`],
        cwd: dir,
        env: { NO_COLOR: "1" },
        stdin: "null",
      }).output();
      const stdout = new TextDecoder().decode(output.stdout);
      const stderr = new TextDecoder().decode(output.stderr);
      assert.equal(output.code, 0, `${stdout}\n${stderr}`);
      assert.match(stdout, /Moved S-1 to qa\./);
      assert.match(stdout, /S-1\s+coding\s+qa/, "events on a show b's move");
      assert.match(stdout, /Peers \(2\):/, "the hub has both spokes");
      for (const node of ["hub", "a", "b", "c"]) {
        const files = [...Deno.readDirSync(join(dir, "scratch", node))].map((e) => e.name);
        assert.ok(!files.includes("serve.json"), `${node} was stopped cleanly`);
      }
    } finally {
      await removeDir(dir);
    }
  },
});
