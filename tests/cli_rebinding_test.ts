import assert from "node:assert/strict";
import { join } from "node:path";
import { hostAllowed, hostName, originAllowed } from "../cli/http/guard.ts";
import { adminUrlProblem } from "../cli/runtime.ts";
import { huskies, removeDir, ServeProcess, tempDir } from "./cli_helpers.ts";

Deno.test("hostAllowed accepts loopback names, IP literals and public hosts only", () => {
  for (
    const host of ["127.0.0.1:3001", "localhost:3001", "[::1]:3001", "a.localhost", "10.0.0.5"]
  ) {
    assert.ok(hostAllowed(host, []), host);
  }
  assert.ok(hostAllowed(null, []), "HTTP/1.0 without Host");
  for (
    const host of [
      "evil.example",
      "evil.example:3001",
      "localhost.evil.example",
      "127.0.0.1.nip.io",
    ]
  ) {
    assert.ok(!hostAllowed(host, []), host);
  }
  assert.ok(hostAllowed("Hub.Example.org:3001", ["hub.example.org"]));
  assert.equal(hostName("[::1]:80"), "::1");
  assert.ok(originAllowed(null, "127.0.0.1:3001", []));
  assert.ok(originAllowed("http://127.0.0.1:3001", "127.0.0.1:3001", []));
  assert.ok(!originAllowed("http://evil.example:3001", "127.0.0.1:3001", []));
  assert.ok(!originAllowed("http://127.0.0.1:9999", "127.0.0.1:3001", []), "another port");
  assert.ok(!originAllowed("null", "127.0.0.1:3001", []));
  assert.ok(!originAllowed("http://evil.example:3001", "evil.example:3001", []));
});

/** Sends a raw HTTP/1.1 GET (so the Host header is exactly what a browser would send). */
async function rawGet(
  port: number,
  path: string,
  headers: Record<string, string>,
): Promise<{ status: number; text: string }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    const lines = [
      `GET ${path} HTTP/1.1`,
      ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
    ];
    await conn.write(
      new TextEncoder().encode(`${lines.join("\r\n")}\r\nConnection: close\r\n\r\n`),
    );
    let text = "";
    const decoder = new TextDecoder();
    const buffer = new Uint8Array(64 * 1024);
    const deadline = setTimeout(() => conn.close(), 5_000);
    try {
      for (;;) {
        const n = await conn.read(buffer);
        if (n === null) break;
        text += decoder.decode(buffer.subarray(0, n), { stream: true });
        // An event stream never ends by itself: its first event is enough.
        if (/\r\n\r\n[\s\S]*event: status/.test(text)) break;
      }
    } catch {
      // Closed by the deadline.
    } finally {
      clearTimeout(deadline);
    }
    return { status: Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0), text };
  } finally {
    try {
      conn.close();
    } catch {
      // Already closed.
    }
  }
}

Deno.test("a forged Host or Origin gets 403 and no board data from a running node", async () => {
  const dir = await tempDir();
  const data = join(dir, "node");
  let serve: ServeProcess | undefined;
  try {
    serve = await ServeProcess.start(["--data-dir", data, "--listen", "127.0.0.1:0"]);
    const put = await huskies([
      "item",
      "put",
      "SECRET-1",
      "--name",
      "board data",
      "--data-dir",
      data,
    ]);
    assert.equal(put.code, 0, put.stderr);
    const port = Number(new URL(serve.statusUrl).port);
    const token = (await Deno.readTextFile(join(data, "admin.token"))).trim();
    const local = `127.0.0.1:${port}`;

    // The real names work.
    for (const path of ["/", "/api/status", "/api/events"]) {
      const ok = await rawGet(port, path, { Host: local });
      assert.equal(ok.status, 200, `${path}: ${ok.text.slice(0, 200)}`);
    }
    assert.match(
      (await rawGet(port, "/api/status", { Host: `localhost:${port}` })).text,
      /SECRET-1/,
    );

    // A rebinding page: the browser sends the attacker's name, from loopback.
    const forged = `rebind.evil.example:${port}`;
    for (const path of ["/", "/api/status", "/api/events", "/admin/items"]) {
      const headers: Record<string, string> = { Host: forged };
      if (path.startsWith("/admin")) headers.Authorization = `Bearer ${token}`;
      const refused = await rawGet(port, path, headers);
      assert.equal(refused.status, 403, `${path}: ${refused.text.slice(0, 200)}`);
      assert.doesNotMatch(refused.text, /SECRET-1|board data/, path);
      assert.match(refused.text, /not a name of this node/);
    }
    // The event stream from another origin, even with the right Host.
    const crossOrigin = await rawGet(port, "/api/events", {
      Host: local,
      Origin: "http://rebind.evil.example:8080",
    });
    assert.equal(crossOrigin.status, 403);
    assert.doesNotMatch(crossOrigin.text, /SECRET-1/);
    assert.equal(await serve.stop(), 0);
  } finally {
    await serve?.kill();
    await removeDir(dir);
  }
});

Deno.test("--public-host adds a name the status page answers to", async () => {
  const dir = await tempDir();
  let serve: ServeProcess | undefined;
  try {
    serve = await ServeProcess.start([
      "--data-dir",
      dir,
      "--listen",
      "127.0.0.1:0",
      "--public-host",
      "hub.example.org",
    ]);
    const port = Number(new URL(serve.statusUrl).port);
    assert.equal(
      (await rawGet(port, "/api/status", { Host: `hub.example.org:${port}` })).status,
      200,
    );
    assert.equal(
      (await rawGet(port, "/api/status", { Host: `other.example.org:${port}` })).status,
      403,
    );
    assert.equal(await serve.stop(), 0);
    const bad = await huskies(["serve", "--data-dir", dir, "--public-host", "http://x:1"]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /Cannot use host name "http:\/\/x:1"/);
  } finally {
    await serve?.kill();
    await removeDir(dir);
  }
});

Deno.test("the CLI sends the admin token only to a loopback adminUrl", async () => {
  assert.equal(adminUrlProblem("http://127.0.0.1:3001/"), undefined);
  assert.equal(adminUrlProblem("http://[::1]:3001/"), undefined);
  assert.match(adminUrlProblem("http://attacker.example:80/")!, /not a loopback address/);
  assert.match(adminUrlProblem("http://localhost:3001/")!, /not a loopback address/);
  assert.match(adminUrlProblem("https://127.0.0.1/")!, /instead of http/);
  const dir = await tempDir();
  // A listener standing in for the attacker: it must never be contacted.
  const trap = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  let contacted = false;
  const accepting = (async () => {
    for await (const conn of trap) (contacted = true, conn.close());
  })().catch(() => {});
  try {
    const port = (trap.addr as Deno.NetAddr).port;
    await Deno.writeTextFile(
      join(dir, "serve.json"),
      JSON.stringify({
        version: 1,
        pid: 1,
        nodeId: "x",
        listen: "x",
        url: "http://127.0.0.1:1/",
        syncUrl: "ws://127.0.0.1:1/crdt-sync",
        adminUrl: `http://localhost.:${port}/`,
        startedAt: new Date().toISOString(),
      }),
    );
    await Deno.writeTextFile(join(dir, "admin.token"), "a".repeat(64));
    const result = await huskies(["item", "list", "--data-dir", dir]);
    assert.equal(result.code, 6, result.stderr);
    assert.match(result.stderr, /Cannot use the admin API: \S+serve\.json gives adminUrl/);
    assert.match(result.stderr, /not a loopback address/);
    assert.ok(!contacted, "the token was not sent");
  } finally {
    trap.close();
    await accepting;
    await removeDir(dir);
  }
});

Deno.test("/metrics and /healthz show ids only to loopback clients unless made public", async () => {
  const dir = await tempDir();
  let serve: ServeProcess | undefined;
  try {
    serve = await ServeProcess.start(["--data-dir", dir, "--listen", "127.0.0.1:0"]);
    const port = Number(new URL(serve.statusUrl).port);
    const local = await rawGet(port, "/metrics", { Host: `127.0.0.1:${port}` });
    assert.match(local.text, new RegExp(`node_id="${serve.nodeId}"`));
    assert.match((await rawGet(port, "/healthz", { Host: `127.0.0.1:${port}` })).text, /nodeId/);
    // Under a foreign name (a rebinding page) the ids are left out; the counts stay.
    const foreign = await rawGet(port, "/metrics", { Host: `evil.example:${port}` });
    assert.equal(foreign.status, 200);
    assert.doesNotMatch(foreign.text, new RegExp(serve.nodeId));
    assert.match(foreign.text, /^huskies_operations 0$/m);
    const health = await rawGet(port, "/healthz", { Host: `evil.example:${port}` });
    assert.match(health.text, /\{"status":"ok"\}/);
    assert.doesNotMatch(health.text, new RegExp(serve.nodeId));
    assert.equal(await serve.stop(), 0);
  } finally {
    await serve?.kill();
    await removeDir(dir);
  }
});
