/**
 * Finding 3: an unauthenticated client could make the node buffer a whole
 * 64 MiB WebSocket message before the handshake looked at it. Now no
 * unauthenticated WebSocket exists unless the node allows in-band handshakes,
 * and then at most a few at once.
 */
import { TrustStore } from "../../auth/trust.ts";
import assert from "node:assert/strict";
import { Identity } from "../../crdt/identity.ts";
import { credentialFor, opens, serveNode, within } from "./helpers.ts";

Deno.test("attack: an unauthenticated client cannot open a WebSocket to a closed node (the default)", async () => {
  const honest = Identity.generate();
  const hub = await serveNode({ open: false, trust: TrustStore.memory([honest.nodeId]) });
  try {
    const sockets = await Promise.all(
      Array.from({ length: 20 }, () => within(opens(hub.url), "the upgrade to be answered")),
    );
    for (const { opened, error } of sockets) {
      assert.equal(opened, false, "no unauthenticated WebSocket may open");
      assert.match(error ?? "", /401/);
    }
    // An honest peer that pre-authenticates still gets in, and its first frame is the welcome.
    const { url, headers, client } = await credentialFor(hub.url, honest);
    const socket = new WebSocket(url, { headers });
    const first = await within(
      new Promise<string>((resolve) => (socket.onmessage = (event) => resolve(event.data))),
      "the welcome",
    );
    assert.ok(client.receive(first).done, "the welcome verifies");
    const closed = new Promise((resolve) => (socket.onclose = resolve));
    socket.close();
    await closed;
  } finally {
    await hub.stop();
  }
});

Deno.test("attack: with in-band handshakes allowed, unauthenticated sockets are capped", async () => {
  const hub = await serveNode({ inBandHandshake: "allow" });
  const open: WebSocket[] = [];
  try {
    const results = await Promise.all(
      Array.from({ length: 6 }, () => within(opens(hub.url), "the upgrade to be answered")),
    );
    for (const result of results) if (result.opened) open.push(result.socket);
    assert.equal(open.length, 2, "at most 2 in-band handshakes at once");
    for (const result of results.filter((r) => !r.opened)) assert.match(result.error ?? "", /429/);
    // A pre-authenticating peer is not held up by the in-band cap.
    const { url, headers } = await credentialFor(hub.url, Identity.generate());
    const honest = await within(opens(url, headers), "the honest upgrade");
    assert.equal(honest.opened, true);
    open.push(honest.socket);
  } finally {
    await Promise.all(open.map((socket) => {
      const closed = new Promise((resolve) => (socket.onclose = resolve));
      socket.close();
      return closed;
    }));
    await hub.stop();
  }
});
