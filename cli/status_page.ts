/**
 * The status page served at `/` by `huskies serve`: one self-contained HTML
 * document (no external assets) that shows the node id, its peers and the
 * pipeline board, and updates itself live from Server-Sent Events on
 * `api/events` (falling back to polling `api/status` every second).
 *
 * The page builds every element with `textContent`, so values from the
 * replicated document are never parsed as HTML.
 * @module
 */
import { createHash } from "node:crypto";
import { ROUTES } from "./http/routes.ts";

/** A route's path relative to the page, so the page also works behind a path prefix. */
function relative(name: "apiStatus" | "apiEvents"): string {
  return ROUTES[name].path.slice(1);
}

/** The page's stylesheet. */
export const STATUS_PAGE_STYLE = `
:root { color-scheme: light dark; --bg: #f6f7f9; --card: #fff; --fg: #1d2330; --muted: #667085;
  --line: #d9dde5; --ok: #1a7f37; --warn: #b54708; --bad: #b42318; --accent: #3056d3; }
@media (prefers-color-scheme: dark) { :root { --bg: #12151c; --card: #1b2029; --fg: #e6e8ee;
  --muted: #98a2b3; --line: #2c3340; --accent: #7b9cff; } }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, sans-serif; background: var(--bg); color: var(--fg); }
header { display: flex; flex-wrap: wrap; gap: .5rem 1.5rem; align-items: baseline; padding: 1rem 1.5rem;
  border-bottom: 1px solid var(--line); background: var(--card); }
header h1 { font-size: 1.25rem; margin: 0; }
code { font: 12px ui-monospace, monospace; word-break: break-all; }
main { padding: 1rem 1.5rem 2rem; display: grid; gap: 1.25rem; min-width: 0; }
main > section { min-width: 0; }
@media (max-width: 600px) { header, main, footer { padding-left: .75rem; padding-right: .75rem; } }
h2 { font-size: 1rem; margin: 0 0 .5rem; }
.badge { display: inline-block; padding: 0 .5rem; border-radius: 999px; font-size: 12px;
  border: 1px solid var(--line); }
.live { color: var(--ok); border-color: var(--ok); }
.syncing, .waiting, .connecting { color: var(--warn); border-color: var(--warn); }
.down, .stopped, .blocked, .gone { color: var(--bad); border-color: var(--bad); }
.frozen { color: var(--accent); border-color: var(--accent); }
.alert { margin: 0; padding: .5rem .75rem; border: 1px solid var(--bad); border-radius: 6px;
  color: var(--bad); background: var(--card); }
.stats { display: flex; flex-wrap: wrap; gap: .75rem; }
.stat { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: .5rem .75rem;
  min-width: 8rem; }
.stat b { display: block; font-size: 1.2rem; }
.stat span { color: var(--muted); font-size: 12px; }
.scroll { overflow-x: auto; max-width: 100%; }
table { border-collapse: collapse; width: 100%; background: var(--card); border: 1px solid var(--line); }
.muted { color: var(--muted); font-size: 12px; }
th, td { text-align: left; padding: .35rem .6rem; border-bottom: 1px solid var(--line); white-space: nowrap; }
th { color: var(--muted); font-weight: 600; font-size: 12px; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.empty { color: var(--muted); margin: .25rem 0; }
#board { display: grid; grid-template-columns: repeat(auto-fit, minmax(11rem, 1fr)); gap: .75rem; }
.column { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: .5rem;
  min-height: 6rem; }
.column h3 { margin: 0 0 .5rem; font-size: 13px; text-transform: uppercase; letter-spacing: .04em;
  color: var(--muted); display: flex; justify-content: space-between; }
.item { border: 1px solid var(--line); border-radius: 6px; padding: .4rem .5rem; margin-bottom: .4rem; }
.item .id { font-weight: 600; word-break: break-all; }
.item .name, .item .meta { color: var(--muted); font-size: 12px; word-break: break-word; }
footer { color: var(--muted); font-size: 12px; padding: 0 1.5rem 1rem; }
`;

/** The page's script (classic script, no modules, no external requests but its own API). */
export const STATUS_PAGE_SCRIPT = `
"use strict";
const $ = (id) => document.getElementById(id);
function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = String(text);
  return node;
}
function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n : n.toFixed(1)) + " " + units[i];
}
function duration(s) {
  s = Math.floor(s);
  if (s < 60) return s + " s";
  if (s < 3600) return Math.floor(s / 60) + " min";
  if (s < 86400) return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
  return Math.floor(s / 86400) + " d " + Math.floor((s % 86400) / 3600) + " h";
}
function stat(value, label) {
  const box = el("div", "stat");
  box.append(el("b", "", value), el("span", "", label));
  return box;
}
function ago(iso) {
  return duration((Date.now() - Date.parse(iso)) / 1000) + " ago";
}
function peerCell(id, label) {
  const cell = el("td");
  cell.append(el("span", "", label || id.slice(0, 12) + "\u2026"));
  if (label) cell.append(el("div", "muted", id.slice(0, 12) + "\u2026"));
  cell.title = id;
  return cell;
}
function badgeCell(state, text) {
  const cell = el("td");
  cell.append(el("span", "badge " + state, text || state));
  return cell;
}
function numCell(text) {
  return el("td", "num", text);
}
function renderPeers(peers, departed) {
  const rows = peers.map((p) => {
    const tr = el("tr");
    tr.dataset.peer = p.peer;
    tr.append(
      peerCell(p.peer, p.label), el("td", "", p.direction), badgeCell(p.state),
      numCell(p.clockLag), numCell(p.behind == null ? "?" : p.behind), numCell(p.opsIn),
      numCell(p.opsOut), numCell(bytes(p.bytesIn)),
      numCell(bytes(p.bytesOut)),
      numCell(p.catchupMs === null ? "\u2013" : (p.catchupMs / 1000).toFixed(1) + " s"),
      el("td", "", "connected " + ago(p.since)),
    );
    return tr;
  });
  for (const p of departed) {
    const tr = el("tr");
    tr.dataset.peer = p.peer;
    tr.append(peerCell(p.peer, p.label), el("td", "", p.direction), badgeCell("gone"));
    for (let i = 0; i < 7; i++) tr.append(numCell("\u2013"));
    tr.append(el("td", "", "last seen " + ago(p.lastSeenAt)));
    rows.push(tr);
  }
  $("peers-body").replaceChildren(...rows);
  $("peers-table").hidden = rows.length === 0;
  $("peers-empty").hidden = rows.length !== 0;
}
function renderMembers(members) {
  const rows = (members || []).map((m) => {
    const tr = el("tr");
    tr.append(peerCell(m.key, m.label), badgeCell(m.scope ? "live" : "gone", m.scope || "revoked"),
      peerCell(m.grantedBy, ""), el("td", "", m.revokedAtSeq === null ? "" : "after seq " + m.revokedAtSeq));
    return tr;
  });
  $("members-body").replaceChildren(...rows);
  $("members").hidden = rows.length === 0;
}
function renderRendezvous(clients) {
  $("rendezvous").hidden = clients.length === 0;
  $("rendezvous-body").replaceChildren(...clients.map((c) => {
    const tr = el("tr");
    const next = c.nextRetryAt
      ? "next try in " + duration(Math.max(0, Date.parse(c.nextRetryAt) - Date.now()) / 1000)
      : c.state === "waiting" ? "retrying with backoff" : "";
    tr.append(el("td", "", c.url), badgeCell(c.state), numCell(c.failures),
      el("td", "", c.lastError || ""), el("td", "", next));
    return tr;
  }));
}
/**
 * One word for the whole mesh, from the same data as the tables (so the
 * header never contradicts them): live when a session is live, else the
 * most hopeful state of a session or rendezvous client.
 */
function meshState(s) {
  const states = s.peers.map((p) => p.state).concat(s.rendezvous.map((r) => r.state));
  for (const state of ["live", "syncing", "connected", "connecting", "waiting", "stopped"]) {
    if (states.includes(state)) return state === "connected" ? "syncing" : state;
  }
  return s.departedPeers.length > 0 ? "gone" : "alone";
}
function renderBoard(stages, items) {
  $("board").replaceChildren(...stages.map((stage) => {
    const column = el("section", "column");
    column.dataset.stage = stage;
    const inStage = items.filter((item) => item.stage === stage);
    const title = el("h3");
    title.append(el("span", "", stage), el("span", "", inStage.length));
    column.append(title);
    for (const item of inStage) {
      const card = el("article", "item");
      card.dataset.story = item.storyId;
      card.append(el("div", "id", item.storyId));
      if (item.name && item.name !== item.storyId) card.append(el("div", "name", item.name));
      const meta = [];
      if (item.agent) meta.push("agent " + item.agent);
      if (item.retryCount) meta.push(item.retryCount + " retries");
      if (item.dependsOn.length) meta.push("after " + item.dependsOn.join(", "));
      if (meta.length) card.append(el("div", "meta", meta.join(" \\u00b7 ")));
      if (item.blocked) card.append(el("span", "badge blocked", "blocked"));
      if (item.frozen) card.append(el("span", "badge frozen", "frozen"));
      column.append(card);
    }
    return column;
  }));
}
function render(s) {
  $("node-id").textContent = s.nodeId;
  $("version").textContent = "huskies " + s.version;
  $("mesh").textContent = s.open ? "open mesh" : "closed mesh";
  $("state-hash").textContent = s.stateHash;
  const gate = s.writeGate || { state: "open", reason: null };
  $("write-gate").textContent = "writes: " + gate.state;
  $("write-gate").className = "badge " + (gate.state === "open" ? "live"
    : gate.state === "own-key-forked" || gate.state === "lost-history" ? "down" : "waiting");
  $("write-gate").title = gate.reason || "writes are signed";
  $("write-gate-reason").textContent = gate.reason || "";
  $("write-gate-reason").hidden = !gate.reason;
  $("stats").replaceChildren(
    stat(s.operations, "operations held"),
    stat(s.counters.applied, "applied since start"),
    stat(s.counters.invalid + s.counters.unauthorized, "rejected"),
    stat(s.pending.count, "pending (" + bytes(s.pending.bytes) + ")"),
    stat(s.forks.length, "forks detected"),
    stat(duration(s.uptimeMs / 1000), "uptime"),
  );
  renderPeers(s.peers, s.departedPeers);
  renderRendezvous(s.rendezvous);
  renderMembers(s.members);
  const mesh = meshState(s);
  $("mesh-state").className = "badge " + mesh;
  $("mesh-state").textContent = mesh === "alone" ? "no peers" : "peers: " + mesh;
  renderBoard(s.stages, s.items || []);
  $("updated").textContent = "updated " + new Date().toLocaleTimeString();
}
function setConnection(state) {
  const badge = $("connection");
  badge.className = "badge " + state;
  // The page's own feed, in words that are not peer states.
  badge.textContent = state === "live"
    ? "updating live"
    : state === "down"
    ? "no updates: node unreachable"
    : "reconnecting to the node";
}
async function refresh() {
  const response = await fetch(${JSON.stringify(relative("apiStatus"))}, { cache: "no-store" });
  if (!response.ok) throw new Error("HTTP " + response.status);
  render(await response.json());
}
function poll() {
  refresh().then(() => setConnection("live"), () => setConnection("down"))
    .finally(() => setTimeout(poll, 1000));
}
function start() {
  if (!("EventSource" in window)) return poll();
  const source = new EventSource(${JSON.stringify(relative("apiEvents"))});
  source.addEventListener("status", (event) => {
    setConnection("live");
    render(JSON.parse(event.data));
  });
  source.onerror = () => setConnection(source.readyState === EventSource.CLOSED ? "down" : "syncing");
}
refresh().catch(() => {});
start();
`;

/** Hash of {@link STATUS_PAGE_SCRIPT} for the Content-Security-Policy header. */
const SCRIPT_HASH = createHash("sha256").update(STATUS_PAGE_SCRIPT).digest("base64");
/** Hash of {@link STATUS_PAGE_STYLE} for the Content-Security-Policy header. */
const STYLE_HASH = createHash("sha256").update(STATUS_PAGE_STYLE).digest("base64");

/** Content-Security-Policy of the page: only its own script, style and API. */
export const STATUS_PAGE_CSP: string = [
  "default-src 'none'",
  `script-src 'sha256-${SCRIPT_HASH}'`,
  `style-src 'sha256-${STYLE_HASH}'`,
  "connect-src 'self'",
  "img-src 'self' data:",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

/** The whole page. */
export const STATUS_PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>huskies status</title>
<link rel="icon" href="data:,">
<style>${STATUS_PAGE_STYLE}</style>
</head>
<body>
<header>
  <h1>huskies</h1>
  <div>node <code id="node-id">loading\u2026</code></div>
  <div title="hash of the visible state: equal on nodes that have converged">state
    <code id="state-hash"></code></div>
  <span id="mesh" class="badge"></span>
  <span id="write-gate" class="badge"></span>
  <span id="mesh-state" class="badge" title="the best state among the peers and rendezvous clients below"></span>
  <span id="connection" class="badge connecting" title="this page's live feed">reconnecting to the node</span>
  <span id="version" class="empty"></span>
</header>
<main>
  <p id="write-gate-reason" class="alert" hidden></p>
  <section><div id="stats" class="stats"></div></section>
  <section>
    <h2>Peers</h2>
    <p id="peers-empty" class="empty">No peers connected.</p>
    <div class="scroll"><table id="peers-table" hidden>
      <thead><tr><th>Peer</th><th>Direction</th><th>State</th><th class="num" title="operations we hold that the peer's clock lacks">Lag (ops)</th>
        <th class="num" title="operations the peer's clock counts that we lack">Behind</th>
        <th class="num">Ops in</th><th class="num">Ops out</th><th class="num">Bytes in</th>
        <th class="num">Bytes out</th><th class="num">Catch-up</th><th>Seen</th></tr></thead>
      <tbody id="peers-body"></tbody>
    </table></div>
  </section>
  <section id="members" hidden>
    <h2>Members</h2>
    <div class="scroll"><table>
      <thead><tr><th>Member</th><th>Scope</th><th>Granted by</th><th>Revoked</th></tr></thead>
      <tbody id="members-body"></tbody>
    </table></div>
  </section>
  <section id="rendezvous" hidden>
    <h2>Rendezvous</h2>
    <div class="scroll"><table>
      <thead><tr><th>URL</th><th>State</th><th class="num">Failures</th><th>Last error</th>
        <th>Next</th></tr></thead>
      <tbody id="rendezvous-body"></tbody>
    </table></div>
  </section>
  <section>
    <h2>Pipeline</h2>
    <div id="board"></div>
  </section>
</main>
<footer id="updated"></footer>
<script>${STATUS_PAGE_SCRIPT}</script>
</body>
</html>
`;
