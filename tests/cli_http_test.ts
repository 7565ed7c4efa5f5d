import assert from "node:assert/strict";
import { MAX_ADMIN_BODY_BYTES } from "../cli/http/admin.ts";
import { HttpApp } from "../cli/http/app.ts";
import { bearerMatches, isLoopback, redactUrl } from "../cli/http/guard.ts";
import { matchRoute, type RouteName, routePath, ROUTES } from "../cli/http/routes.ts";
import { escapeLabel, Histogram, renderMetrics, SessionTracker } from "../cli/metrics.ts";
import { STATUS_PAGE_CSP, STATUS_PAGE_HTML } from "../cli/status_page.ts";
import { silentLogger } from "../sync/logger.ts";
import { HuskiesNode } from "../sync/node.ts";
import type { SessionStats } from "../sync/session.ts";

const TOKEN = "f".repeat(64);

function info(hostname: string): Deno.ServeHandlerInfo {
  return {
    remoteAddr: { transport: "tcp", hostname, port: 50000 },
    completed: Promise.resolve(),
  } as unknown as Deno.ServeHandlerInfo;
}

async function withApp(
  fn: (app: HttpApp, node: HuskiesNode) => Promise<void>,
  publicStatus = false,
) {
  const node = await HuskiesNode.open({});
  const app = new HttpApp({
    node,
    version: "0.0.0-test",
    adminToken: TOKEN,
    urls: { sync: "ws://127.0.0.1:1/crdt-sync", status: "http://127.0.0.1:1/" },
    publicStatus,
    open: false,
    logger: silentLogger,
  });
  try {
    await fn(app, node);
  } finally {
    app.close();
    await node.close();
  }
}

const admin = (path: string, init: RequestInit = {}) =>
  new Request(`http://127.0.0.1:1${path}`, {
    ...init,
    headers: { authorization: `Bearer ${TOKEN}`, ...init.headers },
  });

Deno.test("isLoopback and bearerMatches", () => {
  for (const host of ["127.0.0.1", "127.8.9.10", "::1", "[::1]", "::ffff:127.0.0.1"]) {
    assert.ok(isLoopback(host), host);
  }
  for (
    const host of [
      "10.0.0.1",
      "192.0.2.1",
      "::",
      "0.0.0.0",
      "::ffff:10.0.0.1",
      "",
      "localhost.evil",
    ]
  ) {
    assert.ok(!isLoopback(host), host);
  }
  assert.ok(bearerMatches(`Bearer ${TOKEN}`, TOKEN));
  assert.ok(bearerMatches(`bearer ${TOKEN}`, TOKEN));
  assert.ok(!bearerMatches(`Bearer ${TOKEN.slice(1)}`, TOKEN));
  assert.ok(!bearerMatches(null, TOKEN));
  assert.ok(!bearerMatches("Bearer ", ""), "an empty secret never matches");
  assert.equal(redactUrl("ws://user:pw@hub/crdt-sync"), "ws://hub/crdt-sync");
});

Deno.test("the admin API answers only loopback clients with the bearer token", async () => {
  await withApp(async (app) => {
    const remote = await app.handle(admin("/admin/items"), info("192.0.2.7"));
    assert.equal(remote.status, 403);
    assert.match((await remote.json()).error, /only answers requests from loopback/);
    const ok = await app.handle(admin("/admin/items"), info("127.0.0.1"));
    assert.equal(ok.status, 200);
    await ok.body?.cancel();
  });
});

Deno.test("the admin API maps pipeline errors: 400 for bad input, 404 for missing items", async () => {
  await withApp(async (app, node) => {
    const local = info("127.0.0.1");
    const put = await app.handle(
      admin("/admin/item?id=S-1", { method: "PUT", body: JSON.stringify({ stage: "qa" }) }),
      local,
    );
    assert.equal(put.status, 200);
    assert.equal((await put.json()).stage, "qa");
    const cases: [Request, number, RegExp][] = [
      [
        admin("/admin/item?id=S-1", { method: "PUT", body: '{"stage":"later"}' }),
        400,
        /stage must be one of/,
      ],
      [
        admin("/admin/item?id=S-1", { method: "PUT", body: '{"owner":"x"}' }),
        400,
        /unknown field "owner"/,
      ],
      [admin("/admin/item?id=S-1", { method: "PUT", body: "{" }), 400, /not valid JSON/],
      [admin("/admin/item", { method: "GET" }), 400, /id query parameter is missing/],
      [admin("/admin/item?id=S-2"), 404, /no item S-2/],
      [
        admin("/admin/item/move?id=S-2", { method: "POST", body: '{"stage":"qa"}' }),
        404,
        /no item S-2/,
      ],
      [admin("/admin/item/move?id=S-1", { method: "POST", body: "{}" }), 400, /"stage"/],
      [admin("/admin/item?id=S-1", { method: "POST" }), 405, /use GET, PUT or DELETE/],
      [admin("/admin/nope"), 404, /Cannot find GET \/admin\/nope/],
      [
        admin("/admin/item?id=S-1", {
          method: "PUT",
          body: JSON.stringify({ name: "x".repeat(MAX_ADMIN_BODY_BYTES) }),
        }),
        400,
        /body over/,
      ],
    ];
    for (const [request, status, pattern] of cases) {
      const response = await app.handle(request, local);
      assert.equal(response.status, status, `${request.method} ${request.url}`);
      assert.match((await response.json()).error, pattern);
    }
    assert.equal(node.pipeline.get("S-1")?.stage, "qa", "refused requests changed nothing");
    assert.equal(node.pipeline.events().length, 1);
  });
});

Deno.test("the status page is served to loopback only unless public, with a strict CSP", async () => {
  await withApp(async (app) => {
    const remote = await app.handle(new Request("http://h/"), info("192.0.2.7"));
    assert.equal(remote.status, 403);
    await remote.body?.cancel();
    const remoteApi = await app.handle(new Request("http://h/api/status"), info("192.0.2.7"));
    assert.equal(remoteApi.status, 403);
    await remoteApi.body?.cancel();
    const health = await app.handle(new Request("http://h/healthz"), info("192.0.2.7"));
    assert.equal(health.status, 200, "health checks work from anywhere");
    assert.deepEqual(await health.json(), { status: "ok" }, "without the node id");
    const metrics = await app.handle(new Request("http://h/metrics"), info("192.0.2.7"));
    const text = await metrics.text();
    assert.match(text, /^huskies_info\{version="[^"]*"\} 1$/m, "no node_id label remotely");

    const page = await app.handle(new Request("http://h/"), info("127.0.0.1"));
    assert.equal(page.status, 200);
    assert.equal(page.headers.get("content-security-policy"), STATUS_PAGE_CSP);
    const html = await page.text();
    assert.equal(html, STATUS_PAGE_HTML);
    assert.ok(
      !/<(script|link|img)[^>]+(src|href)="(https?:)?\/\//.test(html),
      "no external assets",
    );
    assert.match(STATUS_PAGE_CSP, /default-src 'none'/);
    assert.match(STATUS_PAGE_CSP, /script-src 'sha256-[A-Za-z0-9+/=]+'/);

    const status = await app.handle(new Request("http://h/api/status"), info("::1"));
    const snapshot = await status.json();
    assert.equal(snapshot.version, "0.0.0-test");
    assert.deepEqual(snapshot.stages, ["backlog", "coding", "qa", "merge", "done", "archived"]);
    assert.deepEqual(snapshot.items, []);
  });
  await withApp(async (app) => {
    const page = await app.handle(new Request("http://h/api/status"), info("192.0.2.7"));
    assert.equal(page.status, 200, "public_status serves everyone");
    await page.body?.cancel();
  }, true);
});

Deno.test("the event stream sends a snapshot at once and ends when the app closes", async () => {
  await withApp(async (app, node) => {
    const response = await app.handle(new Request("http://h/api/events"), info("127.0.0.1"));
    assert.equal(response.headers.get("content-type"), "text/event-stream; charset=utf-8");
    const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    while (!text.includes("\n\n")) text += (await reader.read()).value ?? "";
    assert.match(text, /^event: status\ndata: \{.*"nodeId":"[0-9a-f]{64}"/);
    node.pipeline.put("S-9", {});
    while (!text.includes('"S-9"')) text += (await reader.read()).value ?? "";
    app.close();
    for (;;) if ((await reader.read()).done) break;
  });
});

function stats(overrides: Partial<SessionStats>): SessionStats {
  return {
    peer: "a".repeat(64),
    direction: "inbound",
    state: "live",
    legacy: false,
    clockLag: 0,
    opsIn: 0,
    opsOut: 0,
    bytesIn: 0,
    bytesOut: 0,
    invalidOps: 0,
    queuedOps: 0,
    since: 1000,
    lastHeardAt: 1000,
    ...overrides,
  };
}

Deno.test("SessionTracker keeps totals of closed sessions and measures catch-up", () => {
  const tracker = new SessionTracker();
  let current = stats({ state: "syncing", bytesIn: 10, opsIn: 1 });
  const session = { stats: () => current };
  tracker.sample([session], 1100);
  assert.equal(tracker.catchup.snapshot().count, 0);
  current = stats({ state: "live", bytesIn: 50, bytesOut: 7, opsIn: 3 });
  tracker.sample([session], 1400);
  assert.equal(tracker.peers()[0].catchupMs, 400);
  current = stats({ state: "closed", bytesIn: 80, bytesOut: 9, opsIn: 4 });
  tracker.sample([], 2000);
  assert.deepEqual(tracker.peers(), []);
  assert.deepEqual(tracker.totals(), {
    bytesIn: 80,
    bytesOut: 9,
    opsIn: 4,
    opsOut: 0,
    sessions: 1,
  });
  const histogram = tracker.catchup.snapshot();
  assert.equal(histogram.count, 1);
  assert.equal(histogram.buckets.find((b) => b.le === 0.5)?.count, 1);
  assert.equal(histogram.buckets.find((b) => b.le === 0.25)?.count, 0);
});

Deno.test("renderMetrics writes valid text format with escaped labels", () => {
  const histogram = new Histogram([1, 5]);
  histogram.observe(0.5);
  histogram.observe(3);
  const text = renderMetrics({
    status: {
      nodeId: 'n"1',
      operations: 12,
      stateHash: "ab12",
      pending: { count: 2, bytes: 300 },
      forks: ["x"],
      counters: { applied: 10, invalid: 1, unauthorized: 2 },
      rendezvous: [{ url: "ws://h/x", state: "waiting", failures: 3 }],
      writeGate: { state: "lost-history", reason: "Cannot commit: ...", retryable: true },
    },
    peers: [stats({ direction: "outbound", clockLag: 4, queuedOps: 5 })],
    totals: { bytesIn: 100, bytesOut: 200, opsIn: 3, opsOut: 4, sessions: 2 },
    catchup: histogram,
    version: "1.0.0",
    startedAt: 5000,
  });
  assert.equal(escapeLabel('a\\b"c\nd'), 'a\\\\b\\"c\\nd');
  assert.match(text, /^huskies_info\{node_id="n\\"1",version="1\.0\.0"\} 1$/m);
  assert.match(text, /^huskies_peers\{direction="outbound",state="live"\} 1$/m);
  assert.match(text, /^huskies_state_info\{state_hash="ab12"\} 1$/m);
  assert.match(text, /^huskies_operations_rejected_total\{reason="invalid"\} 1$/m);
  assert.match(text, /^huskies_outbound_queue_operations 5$/m);
  assert.match(text, /^huskies_pending_bytes 300$/m);
  assert.match(text, /^huskies_forks_detected 1$/m);
  assert.match(text, /^huskies_write_gate\{state="lost-history"\} 1$/m);
  assert.match(text, /^huskies_write_gate\{state="open"\} 0$/m);
  assert.match(text, /^huskies_rendezvous_clients\{state="waiting"\} 1$/m);
  assert.match(text, /^huskies_catchup_duration_seconds_bucket\{le="1"\} 1$/m);
  assert.match(text, /^huskies_catchup_duration_seconds_bucket\{le="\+Inf"\} 2$/m);
  assert.match(text, /^huskies_catchup_duration_seconds_sum 3\.5$/m);
  assert.ok(text.endsWith("\n"));
  // Every sample belongs to a family declared with HELP and TYPE before it.
  const declared = new Set<string>();
  for (const line of text.trimEnd().split("\n")) {
    const type = /^# TYPE (\S+) (gauge|counter|histogram)$/.exec(line);
    if (type) declared.add(type[1]);
    else if (!line.startsWith("# HELP ")) {
      const name = /^([a-z_]+?)(_bucket|_sum|_count)?(\{| )/.exec(line)?.[1] ?? "";
      assert.ok(declared.has(name) || declared.has(line.split(/[{ ]/)[0]), line);
      assert.match(line, /^[a-z_]+(\{[^}]*\})? [0-9.e+-]+$/);
    }
  }
});

Deno.test("every route of the table is served; unknown paths and methods are 404 and 405", async () => {
  await withApp(async (app) => {
    for (const [name, route] of Object.entries(ROUTES)) {
      if (name === "sync" || name === "adminStop" || name === "apiEvents") continue;
      const path = routePath(name as RouteName, { id: "S-1" });
      const body = route.method === "PUT" || route.method === "POST" ? '{"stage":"qa"}' : undefined;
      const response = await app.handle(
        admin(path, { method: route.method, body }),
        info("127.0.0.1"),
      );
      assert.ok(![404, 405, 500].includes(response.status) || name.startsWith("adminItem"), name);
      if (response.status === 404) assert.match((await response.json()).error, /no item S-1/, name);
      else await response.body?.cancel();
    }
    const unknown = await app.handle(admin("/admin/nope"), info("127.0.0.1"));
    assert.equal(unknown.status, 404);
    await unknown.body?.cancel();
    const wrong = await app.handle(admin("/admin/item/move"), info("127.0.0.1"));
    assert.equal(wrong.status, 405);
    assert.equal(wrong.headers.get("allow"), "POST");
    await wrong.body?.cancel();
  });
  assert.deepEqual(matchRoute("HEAD", "/healthz"), { kind: "route", name: "health" });
  assert.deepEqual(matchRoute("GET", "/admin/x"), { kind: "none", access: "admin" });
  assert.equal(routePath("adminItems", { stage: undefined }), "/admin/items");
  assert.equal(routePath("adminItemGet", { id: "a b" }), "/admin/item?id=a+b");
});
