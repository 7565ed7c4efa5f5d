/**
 * Live operation cases (PROTOCOL.md §6.2 step 4, §6.5, §6.6): nothing live
 * before our ready, the binary envelope, unknown versions refused, no echo.
 * @module
 */

import type { Case } from "../case.ts";
import { expect } from "../check.ts";
import { describe, framedOps, type SyncPeer } from "../peer.ts";
import { utf8 } from "../wire/bytes.ts";
import { canonicalJson } from "../wire/canonical.ts";
import { Author, type Op } from "../wire/operation.ts";
import type { BinaryFrame, TextFrame } from "../wire/socket.ts";
import { expectClose } from "./handshake.ts";
import { auxSession, note } from "./sync.ts";

/** The ids of operations carried by `frames`. */
function carried(frames: (TextFrame | BinaryFrame)[]): Op[] {
  return frames.flatMap((frame) => framedOps(frame)?.ops ?? []);
}

/** Waits for a frame carrying `op` on `peer`; returns that frame. */
async function receiveOp(peer: SyncPeer, op: Op, rule: string): Promise<TextFrame | BinaryFrame> {
  const deadline = Date.now() + peer.timeoutMs;
  for (;;) {
    const event = await peer.conn.next(Math.max(0, deadline - Date.now()));
    if (event.kind === "close" || event.kind === "timeout") {
      expect(false, `operation ${op.id.slice(0, 8)} delivered live (${rule})`, describe(event));
      throw new Error("unreachable");
    }
    if (carried([event]).some((o) => o.id === op.id)) return event;
  }
}

/** The live operation cases. */
export const liveCases: Case[] = [
  {
    id: "live.not-before-ready",
    title: "§6.2 step 4 no live operation reaches a peer before its ready; buffered ones follow it",
    async run(ctx) {
      await ctx.requireOpen();
      const main = await ctx.main();
      const waiting = (await ctx.secondHeld())!;
      const author = new Author();
      const op = note(author, "early", true);
      main.sendLive([op]);
      await main.heldWhen([author.id], (held) => held.length === 1, "the operation to be applied");
      const before = await waiting.ping();
      expect(
        carried(before).length === 0,
        "no operation before our ready (§6.2 step 4)",
        `${carried(before).length} operations`,
      );
      waiting.sendReady();
      await receiveOp(waiting, op, "flushed after our ready");
    },
  },
  {
    id: "live.envelope",
    title: '§6.5 a live operation arrives as a binary {"v":1,"op":…} (or in a bulk), unchanged',
    async run(ctx) {
      await ctx.requireOpen();
      const main = await ctx.main();
      const second = await ctx.second();
      const author = new Author();
      const op = note(author, "live", "value ✓");
      main.sendLive([op]);
      const frame = await receiveOp(second, op, "§6.6 forwarding");
      const got = carried([frame]).find((o) => o.id === op.id)!;
      expect(
        canonicalJson(got) === canonicalJson(op),
        "the operation unchanged",
        JSON.stringify(got),
      );
    },
  },
  {
    id: "live.no-echo",
    title: "§6.6 an operation is forwarded to others but never back to its sender",
    async run(ctx) {
      await ctx.requireOpen();
      const main = await ctx.main();
      const second = await ctx.second();
      const author = new Author();
      const op = note(author, "from-second", 1);
      second.sendLive([op]);
      await receiveOp(main, op, "§6.6 forwarding to the other peer");
      const before = await second.ping();
      const echoed = carried(before).filter((o) => o.author === author.id);
      expect(echoed.length === 0, "no echo to the sender (§6.6)", `${echoed.length} echoed`);
    },
  },
  {
    id: "live.unknown-version",
    title: '§6.5 a binary frame with "v" other than 1 closes 1002',
    async run(ctx) {
      const peer = await auxSession(ctx);
      const op = note(new Author(), "v2", 1);
      peer.conn.send(utf8(JSON.stringify({ v: 2, op })));
      await expectClose(
        peer.conn,
        1002,
        /^protocol violation: /,
        ctx.timeoutMs,
        "§6.5, with a fixed reason",
      );
    },
  },
];
