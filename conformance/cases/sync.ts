/**
 * Sync session cases (PROTOCOL.md §1, §6.1-§6.4): the clock first, catch-up
 * in chunks within the frame limit then ready, resumption after a drop,
 * pings, unknown and malformed frames.
 * @module
 */

import type { Case } from "../case.ts";
import type { Context } from "../context.ts";
import { brief, expect } from "../check.ts";
import { appliedOps, describe, describeOps, FRAME_LIMIT, SyncPeer } from "../peer.ts";
import { KeyPair } from "../wire/ed25519.ts";
import { Author, type Op, operationProblem } from "../wire/operation.ts";
import { expectClose } from "./handshake.ts";

/** A path under which the suite writes, unique to this run. */
export const RUN_PATH = ["conformance", `run-${Date.now().toString(36)}`];

/** An update by `author` under the run's path. */
export function note(author: Author, field: string, value: unknown, deps: Op[] = []): Op {
  return author.write({
    type: "update",
    path: [...RUN_PATH, author.id.slice(0, 8)],
    fields: { [field]: value },
  }, deps);
}

/** Fails unless `ops` are exactly `wanted`, in order, byte for byte in their fields. */
export function expectSameOps(ops: Op[], wanted: Op[], rule: string): void {
  expect(
    ops.length === wanted.length && ops.every((op, i) => op.id === wanted[i].id),
    `${describeOps(wanted)} in that order (${rule})`,
    describeOps(ops),
  );
  for (const op of ops) {
    const problem = operationProblem(op);
    expect(
      problem === undefined,
      "every served operation to verify (§2.3)",
      `${op.id.slice(0, 8)}: ${problem}`,
    );
  }
}

/** A session of a fresh key (on an open peer) or of the suite's key. */
export async function auxSession(ctx: Context, holdReady = false): Promise<SyncPeer> {
  return await ctx.session((await ctx.isOpen()) ? KeyPair.generate() : ctx.key, holdReady);
}

/** Opens a session whose first clock claims 0 for `authors`, so its initial delta carries them. */
async function sessionAsking(ctx: Context, authors: string[]): Promise<SyncPeer> {
  const hs = await ctx.handshake(KeyPair.generate());
  return await SyncPeer.start(hs, { timeoutMs: ctx.timeoutMs, ask: authors });
}

/** The sync session cases. */
export const syncCases: Case[] = [
  {
    id: "sync.clock-first",
    title:
      "§6.2 step 1 the first sync frame is a well-formed clock; our full clock gets just ready",
    async run(ctx) {
      const main = await ctx.main();
      const ops = appliedOps(main.initial);
      expect(
        ops.length === 0,
        "no operations for a clock that covers everything (§6.2 step 2)",
        describeOps(ops),
      );
    },
  },
  {
    id: "sync.catch-up",
    title: "§6.2 a new session's delta is what our clock lacks, in applied order, then ready",
    async run(ctx) {
      await ctx.requireOpen();
      const main = await ctx.main();
      const author = new Author();
      const ops = [note(author, "a", 1), note(author, "b", 2), note(author, "c", 3)];
      main.sendLive(ops);
      await main.heldWhen(
        [author.id],
        (held) => held.length === 3,
        "the three operations to be held",
      );
      const fresh = await sessionAsking(ctx, [author.id]);
      fresh.close();
      expect(
        fresh.peerClock[author.id] === 3,
        `clock[author] = 3 (§6.1)`,
        String(fresh.peerClock[author.id]),
      );
      if (fresh.peerHeads) {
        expect(
          fresh.peerHeads[author.id] === ops[2].id,
          "heads[author] = the id of its last op",
          brief(fresh.peerHeads[author.id]),
        );
      }
      expectSameOps(
        appliedOps(fresh.initial).filter((op) => op.author === author.id),
        ops,
        "§6.2 step 2",
      );
    },
  },
  {
    id: "sync.chunked",
    title: "§6.2 a catch-up over 1 MiB comes in several bulk frames, each within 1 MiB",
    async run(ctx) {
      await ctx.requireOpen();
      const main = await ctx.main();
      const author = new Author();
      const ops = Array.from(
        { length: 20 },
        (_, i) => note(author, `blob${i}`, "x".repeat(60_000)),
      );
      main.sendBulk(ops);
      await main.heldWhen(
        [author.id],
        (held) => held.length === 20,
        "the 20 large operations to be held",
      );
      const result = await main.probe([author.id]);
      const frames = new Set<number>();
      for (const item of result.served) {
        if (item.kind === "op" && item.op.author === author.id) frames.add(item.frame);
      }
      const sizes = [...frames].map((i) => result.frames[i].bytes);
      expect(
        sizes.every((s) => s <= FRAME_LIMIT),
        `every bulk frame <= ${FRAME_LIMIT} bytes (§1)`,
        `frames of ${sizes.join(", ")} bytes`,
      );
      expect(
        sizes.length >= 2,
        "at least two frames for 1.2 MB of operations",
        `${sizes.length} frame`,
      );
      expectSameOps(appliedOps(result).filter((op) => op.author === author.id), ops, "§6.2");
    },
  },
  {
    id: "sync.resume",
    title:
      "§6.2 step 3 a session dropped after one bulk frame leaves that prefix; the next resumes from it",
    async run(ctx) {
      await ctx.requireOpen();
      const author = new Author();
      const ops = Array.from({ length: 20 }, (_, i) => note(author, `n${i}`, i));
      const first = await auxSession(ctx);
      first.sendBulk(ops.slice(0, 10));
      await first.ping();
      first.close();
      await first.conn.waitClose(ctx.timeoutMs);
      const deadline = Date.now() + ctx.timeoutMs;
      let second = await auxSession(ctx);
      // The peer may still be finishing the first frame's transaction: ask again, bounded.
      while ((second.peerClock[author.id] ?? 0) < 10 && Date.now() < deadline) {
        second.close();
        await new Promise((resolve) => setTimeout(resolve, 100));
        second = await auxSession(ctx);
      }
      expect(
        second.peerClock[author.id] === 10,
        "clock[author] = 10 after the drop",
        String(second.peerClock[author.id]),
      );
      if (second.peerHeads) {
        expect(
          second.peerHeads[author.id] === ops[9].id,
          "heads[author] = id of op 10",
          brief(second.peerHeads[author.id]),
        );
      }
      second.sendLive(ops.slice(10));
      const held = await second.heldWhen(
        [author.id],
        (h) => h.length === 20,
        "all 20 operations after resuming",
      );
      second.close();
      expectSameOps(held, ops, "§6.2 step 3");
    },
  },
  {
    id: "sync.ping",
    title: '§6.4 {"type":"ping"} is answered with {"type":"pong"}',
    async run(ctx) {
      await (await ctx.main()).ping();
    },
  },
  {
    id: "sync.unknown-type",
    title: "§6.4 an unknown frame type is ignored (the session stays up)",
    async run(ctx) {
      const main = await ctx.main();
      main.conn.send({ type: "x-conformance-unknown", data: [1, 2, 3] });
      await main.ping();
    },
  },
  {
    id: "sync.not-json",
    title: "§6.4 a sync frame that is not JSON closes 1002",
    async run(ctx) {
      const peer = await auxSession(ctx);
      peer.conn.send("{not json");
      await expectClose(peer.conn, 1002, /^protocol violation: /, ctx.timeoutMs, "§6.4");
    },
  },
  {
    id: "sync.malformed-clock",
    title: "§6.4 a known frame with malformed members (clock not an object) closes 1002",
    async run(ctx) {
      const peer = await auxSession(ctx);
      peer.conn.send({ type: "clock", clock: "everything" });
      await expectClose(peer.conn, 1002, /^protocol violation: /, ctx.timeoutMs, "§6.4");
    },
  },
  {
    id: "sync.frame-limit",
    title: "§1 a sync frame over 1 MiB closes 1009",
    async run(ctx) {
      const peer = await auxSession(ctx);
      const head = '{"type":"x-conformance-pad","pad":"';
      peer.conn.send(head + "x".repeat(FRAME_LIMIT + 1 - head.length - 2) + '"}');
      const event = await peer.conn.waitClose(ctx.timeoutMs * 2);
      expect(event.kind === "close" && event.code === 1009, "close 1009 (§1)", describe(event));
    },
  },
  {
    id: "sync.slow-silence",
    title: "§6.4 (--slow) a quiet client that answers WebSocket pings is kept for 65 s",
    async run(ctx) {
      if (!ctx.slow) ctx.skipSlow();
      const peer = await auxSession(ctx);
      const event = await peer.conn.next(65_000);
      expect(event.kind === "timeout", "the session to stay open and quiet", describe(event));
      await peer.ping();
      peer.close();
    },
  },
];
