/**
 * `huskies status`: what the running node of a data folder is doing: its
 * id, peers, rendezvous clients, forks, pending buffer and operations.
 * {@link formatStatus} is pure.
 * @module
 */
import { type Command, DATA_DIR_OPTION, flagOption, JSON_OPTION } from "./args.ts";
import { locate } from "./config.ts";
import { ExitCode } from "./errors.ts";
import { formatBytes, formatDuration, formatTime, shortId, table } from "./format.ts";
import type { StatusSnapshot } from "./http/app.ts";
import { AdminClient } from "./runtime.ts";
import { toJsonText } from "./json.ts";

/** The write gate as one line: its state, and why writes are refused (pure). */
export function formatWriteGate(gate: StatusSnapshot["writeGate"], now: number): string {
  if (gate.state === "open") return "open (writes are signed)";
  const until = gate.until === null
    ? ""
    : `, at most ${formatDuration(Math.max(0, Date.parse(gate.until) - now))} more`;
  const kind = gate.retryable ? `refused for now${until}` : "refused until an operator acts";
  return `${gate.state.toUpperCase()}: ${kind}. ${gate.reason ?? ""}`.trimEnd();
}

/** Formats a status snapshot as readable text (pure). */
export function formatStatus(s: StatusSnapshot, now: number = Date.now()): string {
  const lines = [
    `node id      ${s.nodeId}`,
    `version      ${s.version}, up ${formatDuration(s.uptimeMs)}`,
    `sync         ${s.urls.sync}`,
    `status page  ${s.urls.status}`,
    `mesh         ${s.open ? "open" : "closed"}`,
    `operations   ${s.operations} held; ${s.counters.applied} applied since start; rejected ` +
    `${s.counters.invalid} invalid, ${s.counters.unauthorized} unauthorized`,
    `state hash   ${s.stateHash} (equal on nodes that have converged)`,
    `pending      ${s.pending.count} operations (${
      formatBytes(s.pending.bytes)
    }) waiting for dependencies`,
    `forks        ${
      s.forks.length === 0 ? "none detected" : `${s.forks.length} detected: ${s.forks.join(", ")}`
    }`,
    `writes       ${formatWriteGate(s.writeGate, now)}`,
    "",
  ];
  if (s.peers.length === 0) lines.push("Peers: none connected.");
  else {
    lines.push(
      `Peers (${s.peers.length}):`,
      table(
        [
          "PEER",
          "DIRECTION",
          "STATE",
          "LAG",
          "BEHIND",
          "OPS IN",
          "OPS OUT",
          "BYTES IN",
          "BYTES OUT",
          "QUEUED",
          "SINCE",
        ],
        s.peers.map((p) => [
          p.label ? `${p.label} (${shortId(p.peer)})` : shortId(p.peer),
          p.direction,
          p.state + (p.legacy ? " (v1)" : ""),
          p.clockLag,
          p.behind ?? "?",
          p.opsIn,
          p.opsOut,
          formatBytes(p.bytesIn),
          formatBytes(p.bytesOut),
          p.queuedOps,
          formatDuration(now - Date.parse(p.since)),
        ]),
      ),
    );
  }
  if (s.departedPeers.length > 0) {
    lines.push(
      "",
      `Gone (${s.departedPeers.length}):`,
      table(
        ["PEER", "DIRECTION", "LAST SEEN"],
        s.departedPeers.map((p) => [
          p.label ? `${p.label} (${shortId(p.peer)})` : shortId(p.peer),
          p.direction,
          `${formatTime(Date.parse(p.lastSeenAt))} (${
            formatDuration(now - Date.parse(p.lastSeenAt))
          } ago)`,
        ]),
      ),
    );
  }
  lines.push("");
  if (s.rendezvous.length === 0) lines.push("Rendezvous: none configured.");
  else {
    lines.push(
      `Rendezvous (${s.rendezvous.length}):`,
      table(
        ["URL", "STATE", "FAILURES", "NEXT TRY", "LAST ERROR"],
        s.rendezvous.map((r) => [
          r.url,
          r.state,
          r.failures,
          r.nextRetryAt === null
            ? "-"
            : `in ${formatDuration(Math.max(0, Date.parse(r.nextRetryAt) - now))}`,
          r.lastError ?? "-",
        ]),
      ),
    );
  }
  return lines.join("\n");
}

/** The `status` command. */
export const statusCommand: Command = {
  path: ["status"],
  summary: "show the running node's id, peers, rendezvous clients and counters",
  description: "Asks the node running for the data folder (exit code 4 when none is).",
  options: { ...JSON_OPTION, ...DATA_DIR_OPTION },
  async run(args, ctx) {
    const { dataDir } = await locate(args);
    const admin = await AdminClient.open(dataDir, "status");
    const snapshot = await admin.call<StatusSnapshot>("adminStatus");
    ctx.out(flagOption(args, "json") ? toJsonText(snapshot) : formatStatus(snapshot));
    return ExitCode.OK;
  },
};
