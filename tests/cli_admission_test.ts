import assert from "node:assert/strict";
import { huskies, removeDir, ServeProcess, tempDir } from "./cli_helpers.ts";

/** Opens a WebSocket to `url` and resolves with whether the upgrade succeeded. */
function dial(url: string): Promise<{ opened: boolean; socket: WebSocket }> {
  const socket = new WebSocket(url);
  return new Promise((resolve) => {
    socket.onopen = () => resolve({ opened: true, socket });
    socket.onerror = () => resolve({ opened: false, socket });
  });
}

async function closeAll(sockets: WebSocket[]): Promise<void> {
  await Promise.all(
    sockets.map((socket) =>
      socket.readyState === WebSocket.CLOSED ? undefined : new Promise<void>((resolve) => {
        socket.onclose = () => resolve();
        socket.close();
      })
    ),
  );
}

Deno.test("serve's admission flags reach the node: attempts per address per minute", async () => {
  const dir = await tempDir();
  let serve: ServeProcess | undefined;
  const sockets: WebSocket[] = [];
  try {
    serve = await ServeProcess.start([
      "--data-dir",
      dir,
      "--listen",
      "127.0.0.1:0",
      "--attempts-per-minute",
      "2",
      // The limits guard unauthenticated (in-band) handshakes; these sockets never authenticate.
      "--allow-in-band-handshake",
    ]);
    const results = [];
    for (let i = 0; i < 3; i++) {
      const result = await dial(serve.syncUrl);
      sockets.push(result.socket);
      results.push(result.opened);
    }
    assert.deepEqual(results, [true, true, false], "the third attempt in a minute is refused");
    await serve.waitForStderr(/connection refused .*too many attempts/);
  } finally {
    await closeAll(sockets);
    await serve?.kill();
    await removeDir(dir);
  }
});

Deno.test("serve's admission limits come from project.toml too, and bad values exit 2 or 7", async () => {
  const dir = await tempDir();
  let serve: ServeProcess | undefined;
  const sockets: WebSocket[] = [];
  try {
    await Deno.writeTextFile(`${dir}/project.toml`, "max_unauthenticated = 1\n");
    serve = await ServeProcess.start([
      "--data-dir",
      dir,
      "--listen",
      "127.0.0.1:0",
      "--allow-in-band-handshake",
    ]);
    // The first socket never authenticates and holds the only slot.
    const first = await dial(serve.syncUrl);
    sockets.push(first.socket);
    const second = await dial(serve.syncUrl);
    sockets.push(second.socket);
    assert.deepEqual([first.opened, second.opened], [true, false]);
    await serve.waitForStderr(/too many unauthenticated connections/);
    await closeAll(sockets);
    assert.equal(await serve.stop(), 0);
    serve = undefined;

    const flag = await huskies(["serve", "--data-dir", dir, "--max-unauthenticated", "0"]);
    assert.equal(flag.code, 2);
    assert.match(flag.stderr, /Cannot use --max-unauthenticated "0": expected a whole number/);
    await Deno.writeTextFile(`${dir}/project.toml`, "attempts_per_minute_per_address = 1.5\n");
    const key = await huskies(["serve", "--data-dir", dir]);
    assert.equal(key.code, 7);
    assert.match(key.stderr, /attempts_per_minute_per_address/);
  } finally {
    await closeAll(sockets);
    await serve?.kill();
    await removeDir(dir);
  }
});
