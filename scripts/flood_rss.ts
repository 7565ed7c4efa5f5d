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
 * - `--target node`: a child process running a real `HuskiesNode` (open mesh,
 *   default options: pre-authentication on, in-band refused), holding `--ops`
 *   operations of its own; `--allow-in-band` runs it with in-band handshakes
 *   allowed (at most 2 at once).
 * - `--url ws://… --pid N`: any running server, e.g. `huskies serve`.
 *
 * Floods (`--flood`):
 * - `frames` (finding 3): `--sockets` unauthenticated sockets each send one
 *   `--mib` MiB frame right after the upgrade.
 * - `clocks` (finding 4): one pre-authenticated peer sends `--count` clock
 *   frames of 27 bytes, each asking for everything.
 * - `pending` (finding 6): one pre-authenticated peer sends `--count`
 *   operations whose predecessor never arrives.
 *
 * Usage:
 *   deno run -A scripts/flood_rss.ts --target bare --sockets 1 --mib 48
 *   deno run -A scripts/flood_rss.ts --target node --sockets 20 --mib 48
 *   deno run -A scripts/flood_rss.ts --target node --ops 10000 --flood clocks --count 300
 *   deno run -A scripts/flood_rss.ts --target node --flood pending --count 10050
 *
 * Prints one JSON line: baseline, peak and after-close RSS in MiB.
 * @module
 */
import { parseArgs } from "node:util";
import { Identity } from "../crdt/identity.ts";
import { PreauthClient, PreauthServer } from "../auth/preauth.ts";
import {
  challengeResponse,
  checkUpgradeRequest,
  isChallengeRequest,
  preauthenticate,
  refusalResponse,
} from "../auth/preauth_http.ts";
import { MAX_HANDSHAKE_FRAME_BYTES } from "../auth/handshake.ts";
import { signOperation } from "../crdt/operation.ts";
import { HuskiesNode } from "../sync/node.ts";

const SYNC_PATH = "/crdt-sync";
const MIB = 1024 * 1024;

/**
 * Child mode, `node`: a real node holding `ops` operations (in-band handshakes
 * allowed with `inBand`), served until killed.
 */
async function serveNode(ops: number, inBand: boolean): Promise<void> {
  const node = await HuskiesNode.open({ open: true, inBandHandshake: inBand ? "allow" : "refuse" });
  for (let i = 0; i < ops; i++) node.pipeline.put(`S-${i}`, { stage: "coding" });
  Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    onListen: ({ port }) => console.log(JSON.stringify({ port })),
  }, (request, info) => node.handleRequest(request, info) ?? new Response(null, { status: 404 }));
}

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

/** A pre-authenticated socket to `url` as a fresh identity, open and past the welcome. */
async function authenticatedSocket(url: string, identity: Identity): Promise<WebSocket> {
  const client = new PreauthClient({ identity });
  const upgrade = await preauthenticate(url, client);
  if (!("url" in upgrade)) throw new Error(`Cannot pre-authenticate: ${JSON.stringify(upgrade)}`);
  const socket = new WebSocket(upgrade.url, { headers: upgrade.headers });
  await new Promise<void>((resolve, reject) => {
    socket.onmessage = () => resolve(); // the welcome
    socket.onclose = (event) => reject(new Error(`closed: ${event.code} ${event.reason}`));
  });
  return socket;
}

/** Sends `frames` on one authenticated socket, then waits `settleMs` and closes it. */
async function floodSession(url: string, frames: string[], settleMs: number): Promise<string[]> {
  const socket = await authenticatedSocket(url, Identity.generate());
  const closed = new Promise<string>((resolve) => {
    socket.onclose = (event) => resolve(`close ${event.code} ${event.reason}`.trim());
  });
  socket.onmessage = () => {};
  for (const frame of frames) socket.send(frame);
  const outcome = await Promise.race([
    closed,
    new Promise<string>((resolve) => setTimeout(() => resolve("open"), settleMs)),
  ]);
  socket.close();
  return [outcome];
}

/** `count` operations by a fresh author, seq 2 onwards (their seq 1 never arrives), in bulk frames. */
function orphanOperations(count: number): string[] {
  const author = Identity.generate();
  const ops = [];
  for (let seq = 2; seq < count + 2; seq++) {
    ops.push(signOperation(
      {
        author: author.nodeId,
        seq,
        prev: "0".repeat(64),
        deps: [],
        time: seq,
        mutation: { type: "update", path: ["items", `P-${seq}`], fields: { stage: "x" } },
      },
      author,
    ));
  }
  const frames: string[] = [];
  for (let i = 0; i < ops.length; i += 2_000) {
    frames.push(JSON.stringify({ type: "bulk", ops: ops.slice(i, i + 2_000) }));
  }
  return frames;
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
      flood: { type: "string", default: "frames" },
      count: { type: "string", default: "300" },
      ops: { type: "string", default: "0" },
      "allow-in-band": { type: "boolean", default: false },
    },
  });
  if (values.serve === "node") {
    return await serveNode(Number(values.ops), values["allow-in-band"]!);
  }
  if (values.serve) return serve(values.serve);
  const sockets = Number(values.sockets);
  const mib = Number(values.mib);
  let child: Deno.ChildProcess | undefined;
  let url = values.url;
  let pid = Number(values.pid);
  if (!url) {
    child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        new URL(import.meta.url).pathname,
        "--serve",
        values.target!,
        "--ops",
        values.ops!,
        ...(values["allow-in-band"] ? ["--allow-in-band"] : []),
      ],
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
    const count = Number(values.count);
    // Prepared before the baseline, so that only the flood itself is measured.
    const frames = values.flood === "clocks"
      ? Array.from({ length: count }, () => '{"type":"clock","clock":{}}')
      : values.flood === "pending"
      ? orphanOperations(count)
      : [];
    // Reset the peak (VmHWM) so the node's start-up does not count.
    await Deno.writeTextFile(`/proc/${pid}/clear_refs`, "5").catch(() => {});
    const before = await memoryOf(pid);
    const outcomes = values.flood === "frames"
      ? await flood(url, sockets, mib, values.binary!)
      : await floodSession(url, frames, 3_000);
    const peak = await memoryOf(pid);
    await new Promise((resolve) => setTimeout(resolve, 2_000)); // let the server release memory
    const after = await memoryOf(pid);
    const counts: Record<string, number> = {};
    for (const outcome of outcomes) counts[outcome] = (counts[outcome] ?? 0) + 1;
    console.log(JSON.stringify({
      target: values.url ?? values.target,
      flood: values.flood,
      ...(values.flood === "frames"
        ? { sockets, frameMiB: mib, binary: values.binary }
        : { count, nodeOps: Number(values.ops) }),
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
