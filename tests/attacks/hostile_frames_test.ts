/**
 * Findings 10 and 12: a peer's bad input is answered with a fixed close
 * reason (never its own data) or dropped and counted, never with 1011; and a
 * peer-chosen close reason cannot forge lines in a text log.
 */
import assert from "node:assert/strict";
import { operationId } from "../../crdt/operation.ts";
import { CloseCode } from "../../protocol/close_codes.ts";
import { consoleLogger } from "../../sync/logger.ts";
import { identity } from "../helpers.ts";
import { eventually, RawPeer, serveNode, within } from "./helpers.ts";

/** A validly signed seq-1 operation by `author` whose canonical encoding is over 64 KiB. */
function oversizedOperation(author: ReturnType<typeof identity>) {
  const unsigned = {
    author: author.nodeId,
    seq: 1,
    prev: null,
    deps: [],
    time: 1,
    mutation: { type: "append" as const, path: ["log"], value: "x".repeat(180_000) },
  };
  const id = operationId(unsigned);
  return { ...unsigned, id, sig: author.sign(Uint8Array.fromHex(id)).toHex() };
}

Deno.test("attack: a 180 KB signed operation is dropped and counted, the session stays up", async () => {
  const hub = await serveNode();
  const me = identity(411);
  const peer = await RawPeer.connect(hub.url, me);
  try {
    await peer.nextJson(); // the hub's clock
    peer.send({ type: "clock", clock: {}, heads: {} });
    peer.send({ type: "bulk", ops: [oversizedOperation(me)] });
    await eventually(
      () => hub.node.status().counters.invalid === 1,
      "the operation counted invalid",
    );
    assert.equal(hub.node.replica.size, 0, "nothing was stored");
    assert.equal(hub.node.sessions().length, 1, "not closed (no 1002, no 1011)");
    // The session still answers.
    peer.send({ type: "ping" });
    await eventually(() => peer.buffered > 0, "the hub to keep talking");
  } finally {
    await peer.close();
    await hub.stop();
  }
});

Deno.test("attack: sync-phase close reasons are fixed, never the peer's data", async () => {
  const hub = await serveNode();
  try {
    const cases: { frame: unknown; code: number }[] = [
      { frame: { type: "clock", clock: { ["a".repeat(64)]: 9007199254740992 } }, code: 1002 },
      { frame: new TextEncoder().encode('{"v":9007199254740993,"op":{}}'), code: 1002 },
      {
        frame: { type: "bulk", ops: [{ mutation: { type: "set" } }], filler: "y".repeat(2e6) },
        code: CloseCode.TOO_BIG,
      },
    ];
    for (const [i, { frame, code }] of cases.entries()) {
      const peer = await RawPeer.connect(hub.url, identity(420 + i));
      const closed = hub.node.once("session-closed", { timeoutMs: 10_000 });
      peer.send(frame);
      const event = await closed;
      assert.equal(event.code, code);
      assert.doesNotMatch(
        event.reason,
        /9007199254740|set|\d{4,}/,
        `a fixed reason: ${event.reason}`,
      );
      await within(peer.closed, "the socket to close");
    }
  } finally {
    await hub.stop();
  }
});

Deno.test("attack: a peer-chosen close reason cannot forge a text log line", async () => {
  const lines: string[] = [];
  const original = console.error;
  console.error = (...args: unknown[]) => lines.push(args.join(" "));
  const hub = await serveNode({ logger: consoleLogger({ level: "info" }) });
  try {
    const peer = await RawPeer.connect(hub.url, identity(430));
    const closed = hub.node.once("session-closed", { timeoutMs: 10_000 });
    peer.socket.close(4000, 'bye\nERROR forged "line"\u202e');
    await closed;
    const line = lines.find((l) => l.includes("session closed"));
    assert.ok(line, "the close was logged");
    assert.ok(!line.includes("\n"), "no raw newline");
    assert.ok(!line.includes('"line"'), "quotes escaped");
    assert.ok(!line.includes("\u202e"), "bidi override escaped");
    assert.match(line, /bye\\u000aERROR forged \\u0022line\\u0022\\u202e/);
  } finally {
    console.error = original;
    await hub.stop();
  }
});
