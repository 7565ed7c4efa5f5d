/**
 * The conformance suite against ourselves: `deno task conformance` against
 * a `huskies serve --open` started here passes every case it runs, and the
 * dial-out cases pass against a `serve` that dials the suite's listener.
 * @module
 */

import assert from "node:assert/strict";
import { ListenServer, runConformance } from "../conformance/mod.ts";
import { removeDir, ServeProcess, tempDir } from "./cli_helpers.ts";

const ROOT = new URL("..", import.meta.url).pathname;

async function withServe(
  extra: string[],
  body: (serve: ServeProcess) => Promise<void>,
): Promise<void> {
  const dir = await tempDir("huskies-conf-");
  // The suite speaks the in-band handshake (and checks §3.10 pre-authentication too); an open
  // node allows it.
  const serve = await ServeProcess.start([
    "--open",
    "--listen",
    "127.0.0.1:0",
    "--data-dir",
    dir,
    ...extra,
  ]);
  try {
    await body(serve);
  } finally {
    await serve.stop();
    await removeDir(dir);
  }
}

Deno.test("deno task conformance passes against huskies serve --open", async () => {
  await withServe([], async (serve) => {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["task", "-q", "conformance", serve.syncUrl],
      cwd: ROOT,
      env: { NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const timer = setTimeout(() => child.kill("SIGKILL"), 90_000);
    const output = await child.output().finally(() => clearTimeout(timer));
    const stdout = new TextDecoder().decode(output.stdout);
    const stderr = new TextDecoder().decode(output.stderr);
    const lines = stdout.trim().split("\n");
    const summary = /^(\d+) passed, (\d+) failed, (\d+) skipped$/.exec(lines[lines.length - 1]);
    assert.ok(summary, `a summary line last:\n${stdout}\n${stderr}`);
    assert.equal(summary[2], "0", `no case may fail:\n${stdout}`);
    assert.ok(Number(summary[1]) >= 25, `at least 25 cases pass:\n${stdout}`);
    const caseLines = lines.slice(0, -1);
    assert.equal(caseLines.filter((l) => l.startsWith("PASS ")).length, Number(summary[1]));
    assert.ok(caseLines.every((l) => /^(PASS|SKIP) \S+/.test(l)), stdout);
    assert.equal(output.code, 0, stderr);
  });
});

Deno.test("the dial-out cases pass against a serve that dials the suite", async () => {
  const listen = await ListenServer.start("127.0.0.1:0");
  try {
    await withServe(["--rendezvous", listen.url], async (serve) => {
      const report = await runConformance({ url: serve.syncUrl, only: ["dial."], listen });
      const byId = Object.fromEntries(report.results.map((r) => [r.id, r]));
      assert.equal(byId["dial.handshake"]?.status, "PASS", JSON.stringify(byId["dial.handshake"]));
      assert.equal(
        byId["dial.bad-welcome"]?.status,
        "PASS",
        JSON.stringify(byId["dial.bad-welcome"]),
      );
    });
  } finally {
    await listen.close();
  }
});

Deno.test("a dialling serve refuses an incompatible protocol with 4426", async () => {
  const listen = await ListenServer.start("127.0.0.1:0");
  try {
    await withServe(["--rendezvous", listen.url], async (serve) => {
      const report = await runConformance({
        url: serve.syncUrl,
        only: ["dial.incompatible-protocol"],
        listen,
      });
      assert.equal(report.results[0]?.status, "PASS", JSON.stringify(report.results[0]));
    });
  } finally {
    await listen.close();
  }
});
