/**
 * Measures what unauthenticated clients can make a WebSocket server hold
 * (issue 10, finding 3): N sockets each send one big frame right after the
 * upgrade, before any handshake, and the server's peak RSS (Linux VmHWM) is
 * compared with its baseline.
 *
 * Targets:
 * - `--target bare`: a child process running a bare Deno WebSocket server that
 *   upgrades every request and drops frames over 4096 bytes, as the in-band
 *   handshake does. What one unauthenticated WebSocket costs.
 * - `--target preauth`: a child process that checks a pre-upgrade credential
 *   (`auth/preauth_http.ts`) and upgrades only authenticated requests.
 * - `--url ws://… --pid N`: any running server, e.g. `huskies serve`.
 *
 * Usage:
 *   deno run -A scripts/flood_rss.ts --target bare --sockets 1 --mib 48
 *   deno run -A scripts/flood_rss.ts --target preauth --sockets 20 --mib 48
 *
 * Prints one JSON line: baseline, peak and after-close RSS in MiB.
 * @module
 */
import { parseArgs } from "node:util";
import { Identity } from "../crdt/identity.ts";
import { PreauthServer } from "../auth/preauth.ts";
import {
  challengeResponse,
  checkUpgradeRequest,
  isChallengeRequest,
  refusalResponse,
} from "../auth/preauth_http.ts";
import { MAX_HANDSHAKE_FRAME_BYTES } from "../auth/handshake.ts";

const SYNC_PATH = "/crdt-sync";
const MIB = 1024 * 1024;

/** Child mode: serve until killed; print the port once listening. */
function serve(target: string): void {
  const preauth = new PreauthServer({
    identity: Identity.generate(),
    authorize: () => ({ ok: false, code: 4403, reason: "key not trusted" }),
  });
  Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    onListen: ({ port }) => console.log(JSON.stringify({ port })),
  }, (request) => {
    if (target === "preauth") {
      if (isChallengeRequest(request, SYNC_PATH)) return challengeResponse(preauth);
      const check = checkUpgradeRequest(request, preauth);
      if (check.kind === "refused") return refusalResponse(check.refusal);
    }
    const { socket, response } = Deno.upgradeWebSocket(request);
    socket.onmessage = (event) => {
      const size = typeof event.data === "string" ? event.data.length : event.data.byteLength;
      if (size > MAX_HANDSHAKE_FRAME_BYTES) socket.close(1009, "handshake frame too big");
    };
    socket.onerror = () => {};
    return response;
  });
}

/** RSS figures of process `pid` in MiB: current and peak (high-water mark). */
async function memoryOf(pid: number): Promise<{ rss: number; peak: number }> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const field = (name: string) => Number(status.match(new RegExp(`${name}:\\s+(\\d+) kB`))![1]);
  return { rss: field("VmRSS") / 1024, peak: field("VmHWM") / 1024 };
}

/** Opens `sockets` connections that each send one `mib` MiB frame; resolves once all closed. */
async function flood(
  url: string,
  sockets: number,
  mib: number,
  binary: boolean,
): Promise<string[]> {
  const payload = binary ? new Uint8Array(mib * MIB) : "x".repeat(mib * MIB);
  const outcomes = Array.from({ length: sockets }, () =>
    new Promise<string>((resolve) => {
      const socket = new WebSocket(url);
      socket.onopen = () => socket.send(payload);
      socket.onclose = (event) => resolve(`close ${event.code}`);
      socket.onerror = (event) => resolve(`error ${(event as ErrorEvent).message ?? ""}`.trim());
    }));
  return await Promise.all(outcomes);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      serve: { type: "string" },
      target: { type: "string", default: "bare" },
      url: { type: "string" },
      pid: { type: "string" },
      sockets: { type: "string", default: "1" },
      mib: { type: "string", default: "48" },
      binary: { type: "boolean", default: false },
    },
  });
  if (values.serve) return serve(values.serve);
  const sockets = Number(values.sockets);
  const mib = Number(values.mib);
  let child: Deno.ChildProcess | undefined;
  let url = values.url;
  let pid = Number(values.pid);
  if (!url) {
    child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", new URL(import.meta.url).pathname, "--serve", values.target!],
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    while (!text.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) throw new Error("Cannot measure: the server exited before listening");
      text += value;
    }
    reader.releaseLock();
    url = `ws://127.0.0.1:${JSON.parse(text).port}${SYNC_PATH}`;
    pid = child.pid;
  }
  if (!Number.isSafeInteger(pid)) throw new Error("Cannot measure: --pid is required with --url");
  try {
    const before = await memoryOf(pid);
    const outcomes = await flood(url, sockets, mib, values.binary!);
    const peak = await memoryOf(pid);
    await new Promise((resolve) => setTimeout(resolve, 2_000)); // let the server release memory
    const after = await memoryOf(pid);
    const counts: Record<string, number> = {};
    for (const outcome of outcomes) counts[outcome] = (counts[outcome] ?? 0) + 1;
    console.log(JSON.stringify({
      target: values.url ?? values.target,
      sockets,
      frameMiB: mib,
      binary: values.binary,
      baselineMiB: Math.round(before.rss),
      peakAboveBaselineMiB: Math.round(peak.peak - before.rss),
      heldAfter2sMiB: Math.round(after.rss - before.rss),
      outcomes: counts,
    }));
  } finally {
    if (child) {
      child.kill("SIGTERM");
      await child.status;
    }
  }
}

if (import.meta.main) await main();
