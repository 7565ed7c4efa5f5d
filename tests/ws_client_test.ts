import assert from "node:assert/strict";
import { describeDialFailure, WsClientConnection } from "../sync/ws_client.ts";

/** What the test server saw of one connection. */
interface Seen {
  testHeader: string | null;
  messages: (string | Uint8Array)[];
  closed: Promise<{ code: number; reason: string }>;
  socket: WebSocket;
}

/** A native Deno.serve WebSocket server that echoes small messages; 403 on /forbidden. */
function startServer() {
  const connections: Seen[] = [];
  const arrived = Promise.withResolvers<Seen>();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (request) => {
    if (new URL(request.url).pathname === "/forbidden") {
      return new Response("no\n", { status: 403 });
    }
    const testHeader = request.headers.get("x-huskies-test"); // unreadable once upgraded
    const { socket, response } = Deno.upgradeWebSocket(request);
    socket.binaryType = "arraybuffer";
    const closed = Promise.withResolvers<{ code: number; reason: string }>();
    const seen: Seen = {
      testHeader,
      messages: [],
      closed: closed.promise,
      socket,
    };
    socket.onmessage = (event) => {
      const data = typeof event.data === "string" ? event.data : new Uint8Array(event.data);
      seen.messages.push(data);
      // Large messages are acknowledged by their size instead of echoed.
      const size = typeof data === "string" ? data.length : data.byteLength;
      socket.send(size > 65536 ? String(size) : data);
    };
    socket.onclose = (event) => closed.resolve({ code: event.code, reason: event.reason });
    connections.push(seen);
    arrived.resolve(seen);
    return response;
  });
  return { server, url: `ws://127.0.0.1:${server.addr.port}`, arrived: arrived.promise };
}

/** Resolves with `promise`, or rejects after `ms` naming `what`. */
async function within<T>(promise: Promise<T>, what: string, ms = 5000): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Opens a connection and collects its events. */
async function dial(url: string, headers?: Record<string, string>) {
  const connection = await WsClientConnection.open(url, { headers });
  const opened = Promise.withResolvers<void>();
  const closed = Promise.withResolvers<{ code: number; reason: string }>();
  const messages: (string | Uint8Array)[] = [];
  let onMessage = () => {};
  connection.onopen = () => opened.resolve();
  connection.onmessage = (data) => {
    messages.push(data);
    onMessage();
  };
  connection.onclose = (code, reason) => closed.resolve({ code, reason });
  const received = (count: number) =>
    new Promise<void>((resolve) => {
      onMessage = () => messages.length >= count && resolve();
      onMessage();
    });
  return { connection, opened: opened.promise, closed: closed.promise, messages, received };
}

Deno.test("ws client: text stays text, binary stays bytes, and upgrade headers reach the server", async () => {
  const { server, url, arrived } = startServer();
  try {
    const client = await dial(`${url}/crdt-sync`, { "x-huskies-test": "dial-1" });
    await within(client.opened, "open");
    const seen = await arrived;
    assert.equal(seen.testHeader, "dial-1");
    client.connection.send('{"type":"ready"}');
    client.connection.send(new Uint8Array([0, 1, 2, 255]));
    await within(client.received(2), "two echoes");
    assert.deepEqual(seen.messages, ['{"type":"ready"}', new Uint8Array([0, 1, 2, 255])]);
    assert.deepEqual(client.messages, ['{"type":"ready"}', new Uint8Array([0, 1, 2, 255])]);
    client.connection.close(4001, "done here");
    assert.deepEqual(await within(seen.closed, "server close"), {
      code: 4001,
      reason: "done here",
    });
    assert.deepEqual(await within(client.closed, "client close"), {
      code: 4001,
      reason: "done here",
    });
    assert.equal(client.connection.failure, undefined);
  } finally {
    await server.shutdown();
  }
});

Deno.test("ws client: a close from the server arrives with its code and reason", async () => {
  const { server, url, arrived } = startServer();
  try {
    const client = await dial(`${url}/crdt-sync`);
    await within(client.opened, "open");
    (await arrived).socket.close(4508, "too slow");
    assert.deepEqual(await within(client.closed, "close"), { code: 4508, reason: "too slow" });
    assert.throws(
      () => client.connection.send("late"),
      /Cannot send to .*: the connection is not open/,
    );
  } finally {
    await server.shutdown();
  }
});

Deno.test("ws client: bufferedAmount counts a large send until it drains", async () => {
  const { server, url } = startServer();
  try {
    const client = await dial(`${url}/crdt-sync`);
    await within(client.opened, "open");
    client.connection.send(new Uint8Array(8 * 1024 * 1024));
    assert.ok(client.connection.bufferedAmount > 0);
    await within(client.received(1), "the server's receipt");
    assert.deepEqual(client.messages, [String(8 * 1024 * 1024)]);
    assert.equal(client.connection.bufferedAmount, 0);
    client.connection.close();
    await within(client.closed, "close");
  } finally {
    await server.shutdown();
  }
});

Deno.test("ws client: a message over the size limit closes with 1009", async () => {
  const { server, url, arrived } = startServer();
  try {
    const connection = await WsClientConnection.open(`${url}/crdt-sync`, { maxPayloadBytes: 1024 });
    const opened = Promise.withResolvers<void>();
    const closed = Promise.withResolvers<{ code: number; reason: string }>();
    connection.onopen = () => opened.resolve();
    connection.onclose = (code, reason) => closed.resolve({ code, reason });
    await within(opened.promise, "open");
    (await arrived).socket.send("x".repeat(2048));
    assert.deepEqual(await within(closed.promise, "close"), {
      code: 1009,
      reason: "message over the size limit",
    });
  } finally {
    await server.shutdown();
  }
});

Deno.test("ws client: dial failures close with 1006 and say why", async (t) => {
  const { server, url } = startServer();
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const deadPort = listener.addr.port;
  listener.close();
  try {
    const cases = [
      {
        url: `ws://127.0.0.1:${deadPort}/crdt-sync`,
        kind: "refused",
        reason: /connection refused/,
      },
      { url: `${url}/forbidden`, kind: "http-status", reason: /answered .* with HTTP 403/ },
      { url: `${url.replace("ws:", "wss:")}/crdt-sync`, kind: "tls", reason: /^TLS with / },
    ];
    for (const expected of cases) {
      await t.step(expected.kind, async () => {
        const client = await dial(expected.url);
        const { code, reason } = await within(client.closed, `${expected.kind} close`);
        assert.equal(code, 1006);
        assert.match(reason, expected.reason);
        assert.equal(client.connection.failure?.kind, expected.kind);
        if (expected.kind === "http-status") assert.equal(client.connection.failure?.status, 403);
      });
    }
  } finally {
    await server.shutdown();
  }
});

Deno.test("ws client: closing before the connection opens abandons the dial", async () => {
  const { server, url } = startServer();
  try {
    const client = await dial(`${url}/crdt-sync`);
    client.connection.close();
    const { code, reason } = await within(client.closed, "close");
    assert.equal(code, 1006);
    assert.match(reason, /dial abandoned/);
  } finally {
    await server.shutdown();
  }
});

Deno.test("ws client: refuses URLs that are not ws:// or wss://, and close codes a client may not send", async () => {
  await assert.rejects(WsClientConnection.open("http://127.0.0.1:1/"), /must start with ws:\/\//);
  const { server, url } = startServer();
  try {
    const client = await dial(`${url}/crdt-sync`);
    await within(client.opened, "open");
    assert.throws(() => client.connection.close(1011, "x"), /may not send close code 1011/);
    assert.ok(client.connection.isOpen);
    client.connection.close();
    assert.equal((await within(client.closed, "close")).code, 1000);
  } finally {
    await server.shutdown();
  }
});

Deno.test("ws client: unresolvable host names and timeouts are named as such", () => {
  const url = "ws://hub.example:3001/crdt-sync";
  assert.deepEqual(
    describeDialFailure(url, { code: "ENOTFOUND", message: "getaddrinfo ENOTFOUND" }),
    {
      kind: "name-not-resolved",
      reason: "host name hub.example not resolved",
    },
  );
  assert.equal(describeDialFailure(url, { code: "EAI_AGAIN" }).kind, "name-not-resolved");
  assert.equal(
    describeDialFailure(url, { message: "Opening handshake has timed out" }).kind,
    "timeout",
  );
  assert.equal(
    describeDialFailure(url, { code: "CERT_HAS_EXPIRED", message: "certificate has expired" }).kind,
    "tls",
  );
  assert.deepEqual(describeDialFailure(url, new Error("socket hang up")), {
    kind: "other",
    reason: "connection to hub.example:3001 failed: socket hang up",
  });
});
