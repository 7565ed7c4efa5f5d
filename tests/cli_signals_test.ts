import assert from "node:assert/strict";
import { join } from "node:path";
import { DUPLICATE_SIGNAL_WINDOW_MS, SignalGate } from "../cli/signals.ts";
import { removeDir, tempDir } from "./cli_helpers.ts";

const CONFIG = new URL("../deno.json", import.meta.url).pathname;

Deno.test("the first signal stops, copies within the window are ignored, a later one forces", () => {
  const gate = new SignalGate(1000);
  assert.equal(gate.receive(5_000), "stop");
  assert.equal(gate.receive(5_001), "ignore");
  assert.equal(gate.receive(5_999), "ignore");
  assert.equal(gate.receive(6_000), "force");
  assert.equal(new SignalGate().receive(0), "stop");
  assert.ok(DUPLICATE_SIGNAL_WINDOW_MS >= 500, "the window covers a task runner's forwarding");
});

/** Reads `stream` until `marker` appears; returns the text read and releases the reader. */
async function readUntil(stream: ReadableStream<Uint8Array>, marker: string): Promise<string> {
  const reader = stream.getReader();
  const decoder = new TextDecoder();
  let text = "";
  const deadline = setTimeout(() => reader.cancel().catch(() => {}), 20_000);
  try {
    while (!text.includes(marker)) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`output ended before "${marker}":\n${text}`);
      text += decoder.decode(value, { stream: true });
    }
    return text;
  } finally {
    clearTimeout(deadline);
    reader.releaseLock();
  }
}

Deno.test({
  name: "one SIGINT to the process group of `deno task start` stops cleanly, 10 of 10 times",
  ignore: Deno.build.os === "windows",
  async fn() {
    const dir = await tempDir();
    try {
      for (let attempt = 1; attempt <= 10; attempt++) {
        const data = join(dir, `node-${attempt}`);
        // `detached` puts the task runner in its own process group, as a shell does for a job.
        const child = new Deno.Command(Deno.execPath(), {
          args: [
            "task",
            "--config",
            CONFIG,
            "start",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data,
          ],
          detached: true,
          env: { NO_COLOR: "1" },
          stdin: "null",
          stdout: "piped",
          stderr: "piped",
        }).spawn();
        const stderr = new Response(child.stderr).text();
        try {
          await readUntil(child.stdout, "Stop with Ctrl+C.");
          // What a terminal does on Ctrl+C: SIGINT to every process of the foreground group.
          Deno.kill(-child.pid, "SIGINT");
          const [status, errors] = await Promise.all([
            child.status,
            stderr,
            child.stdout.cancel(),
          ]);
          assert.equal(status.code, 0, `attempt ${attempt}: ${errors}`);
          assert.doesNotMatch(errors, /without a clean stop/, `attempt ${attempt}`);
          const left = [...Deno.readDirSync(data)].map((entry) => entry.name).sort();
          assert.deepEqual(left, ["node.key", "ops.db"], `attempt ${attempt} left ${left}`);
        } finally {
          try {
            Deno.kill(-child.pid, "SIGKILL");
          } catch {
            // Already gone.
          }
          await child.status;
        }
      }
    } finally {
      await removeDir(dir);
    }
  },
});

Deno.test({
  name: "listenForStop resolves on the first real SIGINT and forces on a later one",
  ignore: Deno.build.os === "windows",
  async fn() {
    const module = new URL("../cli/signals.ts", import.meta.url).href;
    // A zero window: every signal after the first forces. The script reports each step.
    const script = `
      import { listenForStop, SignalGate } from ${JSON.stringify(module)};
      const stop = listenForStop({ force: () => { console.log("forced"); Deno.exit(130); } },
        new SignalGate(0));
      console.log("ready");
      console.log("stop " + await stop.signal);
      await new Promise(() => setTimeout(() => {}, 60_000));`;
    const child = new Deno.Command(Deno.execPath(), {
      args: ["eval", script],
      stdin: "null",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    try {
      await readUntil(child.stdout, "ready");
      child.kill("SIGINT");
      await readUntil(child.stdout, "stop SIGINT");
      child.kill("SIGINT");
      await readUntil(child.stdout, "forced");
      assert.equal((await child.status).code, 130);
      await child.stdout.cancel();
    } finally {
      try {
        child.kill("SIGKILL");
      } catch {
        // Already gone.
      }
    }
  },
});
