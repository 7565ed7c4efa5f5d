import assert from "node:assert/strict";
import { join } from "node:path";
import {
  huskies,
  removeDir,
  ServeProcess,
  TASK_PERMISSIONS,
  tempDir,
  waitFor,
} from "./cli_helpers.ts";

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

Deno.test("serve starts with defaults, answers healthz and metrics, and stops cleanly on SIGINT", async () => {
  const dir = await tempDir();
  let serve: ServeProcess | undefined;
  try {
    // No --data-dir: ./.huskies in the working directory. The permissions of `deno task start`.
    serve = await ServeProcess.start(["--listen", "127.0.0.1:0"], {
      cwd: dir,
      permissions: TASK_PERMISSIONS,
    });
    const data = join(dir, ".huskies");
    assert.match(serve.nodeId, /^[0-9a-f]{64}$/);
    assert.match(serve.syncUrl, /^ws:\/\/127\.0\.0\.1:\d+\/crdt-sync$/);
    assert.match(serve.stdout, /data folder\s+\.\/\.huskies/);
    assert.match(serve.stdout, /mesh\s+closed/);
    assert.match(serve.stdout, /huskies token create --data-dir \.\/\.huskies/);
    assert.match(
      serve.stdout,
      /on this machine: huskies serve --data-dir <another folder> --listen 127\.0\.0\.1:0 --rendezvous ws:\/\/\S+ --join <token>/,
    );
    assert.ok(await exists(join(data, "node.key")));

    const info = JSON.parse(await Deno.readTextFile(join(data, "serve.json")));
    assert.equal(info.pid, serve.child.pid);
    assert.equal(info.nodeId, serve.nodeId);
    assert.equal(info.syncUrl, serve.syncUrl);
    assert.equal((await Deno.stat(join(data, "admin.token"))).mode! & 0o777, 0o600);

    const health = await fetch(new URL("healthz", serve.statusUrl));
    assert.equal(health.status, 200);
    assert.deepEqual(await health.json(), { status: "ok", nodeId: serve.nodeId });

    const metrics = await fetch(new URL("metrics", serve.statusUrl));
    assert.equal(metrics.status, 200);
    assert.match(metrics.headers.get("content-type")!, /^text\/plain; version=0\.0\.4/);
    const text = await metrics.text();
    for (
      const family of [
        "huskies_peers",
        "huskies_operations",
        "huskies_operations_applied_total",
        "huskies_operations_rejected_total",
        "huskies_sync_received_bytes_total",
        "huskies_sync_sent_bytes_total",
        "huskies_outbound_queue_operations",
        "huskies_pending_operations",
        "huskies_forks_detected",
        "huskies_catchup_duration_seconds",
      ]
    ) {
      assert.match(text, new RegExp(`^# HELP ${family} `, "m"), family);
      assert.match(text, new RegExp(`^# TYPE ${family} (gauge|counter|histogram)$`, "m"), family);
    }
    assert.match(text, /^huskies_operations_rejected_total\{reason="unauthorized"\} 0$/m);
    // Standard process metrics, measured by hand (see cli/process_metrics.ts).
    const value = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, "m").exec(text)?.[1]);
    assert.ok(value("process_cpu_seconds_total") > 0, "CPU seconds");
    assert.ok(value("process_resident_memory_bytes") > 10 * 1024 * 1024, "RSS");
    // Deno lets only --allow-all read /proc/self/fd: under the task's permissions they are left out.
    assert.doesNotMatch(text, /^(process_open_fds|huskies_open_sockets) /m);
    assert.ok(value("huskies_event_loop_lag_max_seconds") >= 0);
    assert.match(text, /^huskies_local_write_duration_seconds_count 0$/m);

    const other = await fetch(new URL("nope", serve.statusUrl));
    assert.equal(other.status, 404);
    await other.body?.cancel();

    const code = await serve.stop("SIGINT");
    assert.equal(code, 0, serve.stderr);
    assert.match(serve.stderr, /stopping signal=SIGINT/);
    assert.ok(!(await exists(join(data, "serve.json"))), "serve.json is removed on a clean stop");
    assert.ok(!(await exists(join(data, "admin.token"))), "admin.token is removed on a clean stop");
  } finally {
    await serve?.kill();
    await removeDir(dir);
  }
});

Deno.test("serve stops cleanly on SIGTERM and logs JSON lines with --log-json", async () => {
  const dir = await tempDir();
  let serve: ServeProcess | undefined;
  try {
    serve = await ServeProcess.start(["--data-dir", dir, "--listen", "127.0.0.1:0", "--log-json"]);
    const listening = await serve.waitForStderr(/^\{.*"message":"listening".*\}$/m);
    assert.equal(JSON.parse(listening[0]).nodeId, serve.nodeId);
    assert.equal(await serve.stop("SIGTERM"), 0, serve.stderr);
  } finally {
    await serve?.kill();
    await removeDir(dir);
  }
});

Deno.test("a second serve on the same data folder fails with the locked message and exit 5", async () => {
  const dir = await tempDir();
  let first: ServeProcess | undefined;
  try {
    first = await ServeProcess.start(["--data-dir", dir, "--listen", "127.0.0.1:0"]);
    const second = await huskies(["serve", "--data-dir", dir, "--listen", "127.0.0.1:0"]);
    assert.equal(second.code, 5, second.stderr);
    assert.match(
      second.stderr,
      /Cannot start the node: data folder .* is locked by another process/,
    );
    // The first node is unharmed and still describes itself.
    const info = JSON.parse(await Deno.readTextFile(join(dir, "serve.json")));
    assert.equal(info.pid, first.child.pid);
    const health = await fetch(new URL("healthz", first.statusUrl));
    assert.equal(health.status, 200);
    await health.body?.cancel();
  } finally {
    await first?.kill();
    await removeDir(dir);
  }
});

Deno.test("serve refuses bad flags with exit 2 and a clear message", async () => {
  const dir = await tempDir();
  try {
    const cases: [string[], RegExp][] = [
      [["--rendezvous", "http://hub:3001/crdt-sync"], /must start with ws:\/\/ or wss:\/\//],
      [["--rendezvous", "not a url"], /rendezvous URL "not a url": it is not a URL/],
      [["--listen", "localhost"], /expected HOST:PORT/],
      [["--listen", "127.0.0.1:70000"], /port must be 0 to 65535/],
      [["--bogus"], /unknown option --bogus/],
      [["--log-level", "loud"], /--log-level "loud"/],
      [["--join", "hjt1.nope"], /Cannot parse join token/],
      [["--join", `hjt1.${"a".repeat(16)}.${"b".repeat(64)}.${"c".repeat(64)}`], /--join/],
      [["extra"], /unexpected argument "extra"/],
    ];
    for (const [flags, pattern] of cases) {
      const result = await huskies(["serve", "--data-dir", dir, ...flags]);
      assert.equal(result.code, 2, `${flags.join(" ")}: ${result.stderr}`);
      assert.match(result.stderr, pattern, flags.join(" "));
      assert.match(result.stderr, /Run `huskies serve --help` for usage\./);
    }
    const token = `hjt1.${"a".repeat(16)}.${"b".repeat(64)}.${"c".repeat(64)}`;
    const noHub = await huskies(["serve", "--data-dir", dir, "--join", token]);
    assert.equal(noHub.code, 2);
    assert.ok(!noHub.stderr.includes("b".repeat(64)), "the token's secret is never echoed");
    assert.ok(!(await exists(join(dir, "ops.db"))), "nothing was started");
  } finally {
    await removeDir(dir);
  }
});

Deno.test("serve refuses a malformed project.toml or an unknown key, naming the file", async () => {
  const dir = await tempDir();
  try {
    const file = join(dir, "project.toml");
    await Deno.writeTextFile(file, 'listen = "127.0.0.1:0"\nrendezvous = [\n');
    const malformed = await huskies(["serve", "--data-dir", dir]);
    assert.equal(malformed.code, 7, malformed.stderr);
    assert.match(
      malformed.stderr,
      new RegExp(`Cannot read config file ${file}: it is not valid TOML`),
    );

    await Deno.writeTextFile(file, 'listen = "127.0.0.1:0"\nlisten_port = 3001\n');
    const unknown = await huskies(["serve", "--data-dir", dir]);
    assert.equal(unknown.code, 7);
    assert.match(unknown.stderr, /project\.toml: unknown key "listen_port"/);

    await Deno.writeTextFile(file, 'rendezvous = "http://hub/crdt-sync"\n');
    const badUrl = await huskies(["serve", "--data-dir", dir]);
    assert.equal(badUrl.code, 7);
    assert.match(badUrl.stderr, /key "rendezvous": .*ws:\/\//);

    await Deno.writeTextFile(file, 'trusted_keys = ["abc"]\n');
    const badKey = await huskies(["serve", "--data-dir", dir]);
    assert.equal(badKey.code, 7);
    assert.match(badKey.stderr, /key "trusted_keys" entry 0/);

    const missing = await huskies(["serve", "--config", join(dir, "nope.toml")]);
    assert.equal(missing.code, 7);
    assert.match(missing.stderr, /nope\.toml: it does not exist/);
  } finally {
    await removeDir(dir);
  }
});

Deno.test("./.huskies/project.toml configures serve: listen, data_dir and open", async () => {
  const dir = await tempDir();
  let serve: ServeProcess | undefined;
  try {
    await Deno.mkdir(join(dir, ".huskies"));
    await Deno.writeTextFile(
      join(dir, ".huskies", "project.toml"),
      'listen = "127.0.0.1:0"\ndata_dir = "store"\nopen = true\n',
    );
    serve = await ServeProcess.start([], { cwd: dir });
    assert.match(serve.stdout, /mesh\s+OPEN/);
    await serve.waitForStderr(/WARN\s+open mesh/);
    // data_dir is relative to the file's folder.
    const info = JSON.parse(await Deno.readTextFile(join(dir, ".huskies", "store", "serve.json")));
    assert.equal(info.nodeId, serve.nodeId);
    // Other commands find the same data folder through the same file.
    const status = await huskies(["status", "--json"], { cwd: dir });
    assert.equal(status.code, 0, status.stderr);
    assert.equal(JSON.parse(status.stdout).nodeId, serve.nodeId);
    assert.equal(await serve.stop(), 0);
  } finally {
    await serve?.kill();
    await removeDir(dir);
  }
});

Deno.test("serve reports a port in use with exit 8 and creates nothing", async () => {
  const dir = await tempDir();
  const blocker = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const port = (blocker.addr as Deno.NetAddr).port;
    const data = join(dir, "data");
    const result = await huskies(["serve", "--data-dir", data, "--listen", `127.0.0.1:${port}`]);
    assert.equal(result.code, 8, result.stderr);
    assert.match(
      result.stderr,
      new RegExp(`Cannot listen on 127\\.0\\.0\\.1:${port}: the address is already in use`),
    );
    assert.match(result.stderr, /127\.0\.0\.1:0 picks a free port/);
    // No identity, no store, not even the folder: a failed start leaves nothing to clean up.
    assert.ok(!(await exists(data)), "the data folder was not created");

    // An existing folder stays as it was.
    await Deno.mkdir(data);
    const again = await huskies(["serve", "--data-dir", data, "--listen", `127.0.0.1:${port}`]);
    assert.equal(again.code, 8, again.stderr);
    assert.deepEqual([...Deno.readDirSync(data)], []);
  } finally {
    blocker.close();
    await removeDir(dir);
  }
});

Deno.test("the banner's join hint, filled in as printed, joins a second node on this machine", async () => {
  const dir = await tempDir();
  let hub: ServeProcess | undefined;
  let spoke: ServeProcess | undefined;
  try {
    const hubDir = join(dir, "hub");
    hub = await ServeProcess.start(["--data-dir", hubDir, "--listen", "127.0.0.1:0"]);
    const token = await huskies(["token", "create", "--data-dir", hubDir]);
    assert.equal(token.code, 0, token.stderr);
    assert.match(token.stderr, /--join <the token from standard output>/);
    const hint = /on this machine: huskies serve (.+)$/m.exec(hub.stdout)![1];
    const args = hint.replace("<another folder>", join(dir, "spoke"))
      .replace("<token>", token.stdout.trim()).split(" ");
    spoke = await ServeProcess.start(args.slice(0));
    const joined = await waitFor(async () => {
      const status = await huskies(["status", "--json", "--data-dir", hubDir]);
      const peers = JSON.parse(status.stdout).peers as { peer: string; state: string }[];
      return peers.find((p) => p.peer === spoke!.nodeId && p.state === "live");
    }, "the spoke to join the hub");
    assert.equal(joined.peer, spoke.nodeId);
    assert.equal(await spoke.stop(), 0);
    assert.equal(await hub.stop(), 0);
  } finally {
    await spoke?.kill();
    await hub?.kill();
    await removeDir(dir);
  }
});

Deno.test("huskies stop stops the running node cleanly; with none running it exits 4", async () => {
  const dir = await tempDir();
  let serve: ServeProcess | undefined;
  try {
    serve = await ServeProcess.start(["--data-dir", dir, "--listen", "127.0.0.1:0"]);
    const stopped = await huskies(["stop", "--data-dir", dir]);
    assert.equal(stopped.code, 0, stopped.stderr);
    assert.equal(stopped.stdout.trim(), `Stopped node ${serve.nodeId} (pid ${serve.child.pid}).`);
    assert.equal((await serve.exited).code, 0, serve.stderr);
    assert.match(serve.stderr, /stopping by="admin request"/);
    assert.ok(!(await exists(join(dir, "serve.json"))));
    const again = await huskies(["stop", "--data-dir", dir]);
    assert.equal(again.code, 4, again.stderr);
  } finally {
    await serve?.kill();
    await removeDir(dir);
  }
});
