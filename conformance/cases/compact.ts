/**
 * Compact bulk cases (PROTOCOL.md §6.9): a peer that does not ask for `cbulk`
 * gets `bulk`; a peer that lists `cbulk` in its clock serves it when asked,
 * applies it when sent, and closes 1002 on a frame off the grammar.
 * @module
 */

import type { Case } from "../case.ts";
import type { Context } from "../context.ts";
import { expect, skip } from "../check.ts";
import { appliedOps, FRAME_LIMIT, type ProbeResult, SyncPeer } from "../peer.ts";
import { KeyPair } from "../wire/ed25519.ts";
import { CBULK } from "../wire/compact.ts";
import { Author, type Op } from "../wire/operation.ts";
import { expectClose } from "./handshake.ts";
import { expectSameOps, note } from "./sync.ts";

/** Skips unless the peer's clock lists `cbulk` (the form is optional). */
async function requireCompact(ctx: Context): Promise<void> {
  await ctx.requireOpen();
  const main = await ctx.main();
  if (!main.peerAccept.includes(CBULK)) {
    skip('the peer\'s clock does not list "cbulk" in accept (§6.9 is optional)');
  }
}

/** Two authors' fresh chains (the second depending on the first), held by the peer. */
async function heldChains(ctx: Context): Promise<{ ops: Op[]; authors: string[] }> {
  const main = await ctx.main();
  const a = new Author();
  const b = new Author();
  const a1 = note(a, "x", 1);
  const ops = [a1, note(a, "y", 2), note(a, "z", 3), note(b, "x", 1, [a1]), note(b, "y", "ü")];
  main.sendLive(ops);
  const authors = [a.id, b.id];
  await main.heldWhen(authors, (held) => held.length === ops.length, "the 5 operations held");
  return { ops, authors };
}

/** A fresh session whose first clock asks for `authors`, with `accept` as given. */
async function asking(ctx: Context, authors: string[], accept?: string[]): Promise<ProbeResult> {
  const hs = await ctx.handshake(KeyPair.generate());
  const peer = await SyncPeer.start(hs, { timeoutMs: ctx.timeoutMs, ask: authors, accept });
  peer.close();
  return peer.initial;
}

/** The served operations of `authors`, in order, in the per-author order they were written. */
function servedOf(result: ProbeResult, authors: string[]): Op[] {
  return appliedOps(result).filter((op) => authors.includes(op.author));
}

/** The compact bulk cases. */
export const compactCases: Case[] = [
  {
    id: "cbulk.json-default",
    title: "§6.9 a clock without accept, or with only unknown names, is answered with bulk frames",
    async run(ctx) {
      await ctx.requireOpen();
      const { ops, authors } = await heldChains(ctx);
      for (const accept of [undefined, ["x-conformance-unknown"]]) {
        const result = await asking(ctx, authors, accept);
        const types = result.frames.map((f) => f.type);
        expect(
          !types.includes(CBULK),
          `no cbulk frame for accept ${JSON.stringify(accept ?? "absent")}`,
          types.join(", "),
        );
        expectSameOps(servedOf(result, authors), ops, "§6.2");
      }
    },
  },
  {
    id: "cbulk.served",
    title: "§6.9 a peer listing cbulk answers a clock that accepts it with cbulk frames " +
      "decoding to the same signed operations",
    async run(ctx) {
      await requireCompact(ctx);
      const { ops, authors } = await heldChains(ctx);
      const result = await asking(ctx, authors, ["x-conformance-unknown", CBULK]);
      const served = result.served.filter((s) => s.kind === "op" && authors.includes(s.op.author));
      expect(
        served.every((s) => s.kind === "op" && s.via === "cbulk"),
        "every operation of the delta in a cbulk frame",
        served.map((s) => s.kind === "op" ? s.via : "fork").join(", "),
      );
      expect(
        result.frames.every((f) => f.bytes <= FRAME_LIMIT),
        `every frame <= ${FRAME_LIMIT} bytes (§1)`,
        result.frames.map((f) => f.bytes).join(", "),
      );
      expectSameOps(servedOf(result, authors), ops, "§6.9 decoding, §2.3 ids and signatures");
    },
  },
  {
    id: "cbulk.decoded",
    title: "§6.9 a peer listing cbulk applies operations sent to it in a cbulk frame",
    async run(ctx) {
      await requireCompact(ctx);
      const main = await ctx.main();
      const a = new Author();
      const b = new Author();
      const a1 = note(a, "x", 1);
      const ops = [a1, note(b, "x", 2, [a1]), note(a, "y", 3), note(a, "z", "ü")];
      main.sendCompact(ops);
      const held = await main.heldWhen(
        [a.id, b.id],
        (h) => h.length === ops.length,
        "the 4 operations sent in one cbulk frame to be held",
      );
      const order = (list: Op[]) => list.map((op) => `${op.author}:${op.seq}`).sort();
      expect(
        JSON.stringify(order(held)) === JSON.stringify(order(ops)),
        "the same operations",
        held.length + " operations",
      );
    },
  },
  {
    id: "cbulk.malformed",
    title:
      "§6.9 a cbulk frame off the grammar (an author that is not 32 bytes of base64) closes 1002",
    async run(ctx) {
      await requireCompact(ctx);
      const peer = await ctx.session(KeyPair.generate());
      peer.conn.send({ type: CBULK, runs: [["AAAA", 1, null, []]] });
      await expectClose(peer.conn, 1002, /^protocol violation: /, ctx.timeoutMs, "§6.9");
    },
  },
];
