/** The node's default dialer (npm ws, TCP_NODELAY): frames both ways, clear failures, abort. */
import assert from "node:assert/strict";
import { noDelayDialer } from "../sync/ws_dialer.ts";

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
