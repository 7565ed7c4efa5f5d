/** The node's default dialer (npm ws, TCP_NODELAY): frames both ways, clear failures, abort, pre-authentication, no env access. */
import assert from "node:assert/strict";
import { HuskiesNode } from "../sync/node.ts";
import { defaultDialer, noDelayDialer } from "../sync/ws_dialer.ts";
import { eventually, serveNode } from "./net_helpers.ts";

const CONFIG = new URL("../deno.json", import.meta.url).pathname;

/** `promise`, or a rejection after 5 s. */
async function within<T>(promise: Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error("timed out after 5 s")), 5_000);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

Deno.test("noDelayDialer carries text and binary frames and reports the server's close", async () => {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (request) => {
    const { socket, response } = Deno.upgradeWebSocket(request);
    socket.binaryType = "arraybuffer";
    socket.onmessage = (event) => {
      if (typeof event.data === "string") socket.send(`echo ${event.data}`);
      else socket.close(4001, `got ${new Uint8Array(event.data).length} bytes`);
    };
    return response;
  });
  try {
    const result = await noDelayDialer(
      `ws://127.0.0.1:${server.addr.port}/`,
      new AbortController().signal,
    );
    assert.ok(result.ok);
    const frames: (string | Uint8Array)[] = [];
    const first = Promise.withResolvers<void>();
    const closed = Promise.withResolvers<{ code: number; reason: string }>();
    result.channel.listen({
      frame: (data) => (frames.push(data), first.resolve()),
      closed: (code, reason) => closed.resolve({ code, reason }),
    });
    result.channel.send("hello");
    await within(first.promise);
    assert.deepEqual(frames, ["echo hello"]);
    result.channel.send(new Uint8Array([1, 2, 3]));
    assert.deepEqual(await within(closed.promise), { code: 4001, reason: "got 3 bytes" });
    assert.throws(() => result.channel.send("late"), /not open/);
  } finally {
    await server.shutdown();
  }
});

Deno.test("noDelayDialer reports a refused connection, and an aborted dial, as failed", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const refused = await noDelayDialer(`ws://127.0.0.1:${port}/`, new AbortController().signal);
  assert.equal(refused.ok, false);
  assert.match(!refused.ok ? refused.reason : "", /refused/);
  const abort = new AbortController();
  abort.abort();
  const aborted = await noDelayDialer(`ws://127.0.0.1:${port}/`, abort.signal);
  assert.deepEqual(aborted, { ok: false, code: 1000, reason: "client stopping" });
});

Deno.test("the node's default dialer pre-authenticates: it joins a hub that refuses in-band handshakes", async () => {
  assert.equal(defaultDialer(), noDelayDialer, "with env access, the default is npm ws");
  const hub = await serveNode({ open: false }); // in-band handshakes refused
  const spoke = await HuskiesNode.open({ open: false });
  try {
    hub.node.trust.add(spoke.nodeId, "write");
    spoke.trust.add(hub.node.nodeId, "write");
    spoke.connect(hub.url, { initialMs: 20, maxMs: 200 });
    await within(spoke.connected(hub.node.nodeId));
    spoke.pipeline.put("D-1", {});
    await eventually(
      () => hub.node.pipeline.get("D-1") !== undefined,
      "the spoke's item on the hub",
    );
  } finally {
    await spoke.close();
    await hub.stop();
  }
});

Deno.test("without env access a node loads and dials with Deno's client (npm ws is never loaded)", async () => {
  const hub = await serveNode();
  try {
    const script = `
      import { HuskiesNode } from ${JSON.stringify(new URL("../mod.ts", import.meta.url).href)};
      const node = await HuskiesNode.open({});
      node.connect(${JSON.stringify(hub.url)});
      await node.connected(undefined, { timeoutMs: 5000 });
      console.log("connected");
      await node.close();
    `;
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "--no-prompt", "--allow-net=127.0.0.1", "--config", CONFIG, "-"],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(script));
    await writer.close();
    const output = await within(child.output());
    const stderr = new TextDecoder().decode(output.stderr);
    assert.equal(output.code, 0, stderr);
    assert.equal(new TextDecoder().decode(output.stdout).trim(), "connected");
  } finally {
    await hub.stop();
  }
});
