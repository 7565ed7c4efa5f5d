/**
 * Fork cases (PROTOCOL.md §5): two operations at one author and seq make a
 * fork; the peer serves the proof and quarantined operations with their
 * anchor, and leaves them out of its clock.
 * @module
 */

import type { Case } from "../case.ts";
import { brief, expect } from "../check.ts";
import { appliedOps, describeOps, SyncPeer } from "../peer.ts";
import { KeyPair } from "../wire/ed25519.ts";
import { Author, operationProblem } from "../wire/operation.ts";
import { note, RUN_PATH } from "./sync.ts";

/** The fork cases. */
export const forkCases: Case[] = [
  {
    id: "fork.proof-and-quarantine",
    title:
      "§5 an equivocating author: proof sent after the delta, quarantined ops after their anchor, clock = k-1",
    async run(ctx) {
      await ctx.requireOpen();
      const main = await ctx.main();
      const z = new Author();
      const one = note(z, "one", 1);
      const twoA = note(z, "two", "a");
      const twoB = z.sign({
        ...twoA,
        mutation: { type: "update", path: [...RUN_PATH, "fork"], fields: { two: "b" } },
      });
      main.sendLive([one, twoA, twoB]);
      const sentinel = new Author();
      const marker = note(sentinel, "after-fork", 1);
      main.sendLive([marker]);
      await main.heldWhen(
        [sentinel.id],
        (h) => h.length === 1,
        "the sentinel sent after the fork to apply",
      );
      const hs = await ctx.handshake(KeyPair.generate());
      const fresh = await SyncPeer.start(hs, { timeoutMs: ctx.timeoutMs, ask: [z.id] });
      fresh.close();
      expect(
        fresh.peerClock[z.id] === 1,
        "clock[forked author] = 1, the last agreed seq (§5)",
        String(fresh.peerClock[z.id]),
      );
      const served = fresh.initial.served;
      const applied = appliedOps(fresh.initial).filter((op) => op.author === z.id);
      expect(
        applied.length === 1 && applied[0].id === one.id,
        "the delta to carry op 1 only",
        describeOps(applied),
      );
      const forkAt = served.findIndex((s) => s.kind === "fork" && s.proof.a.author === z.id);
      expect(
        forkAt >= 0,
        'a {"type":"fork","proof":{a,b}} frame after the delta (§5)',
        `frames ${fresh.initial.frames.map((f) => f.type).join(",")}`,
      );
      const proof = served[forkAt] as Extract<typeof served[number], { kind: "fork" }>;
      const ids = [proof.proof.a.id, proof.proof.b.id].sort();
      expect(
        JSON.stringify(ids) === JSON.stringify([twoA.id, twoB.id].sort()) &&
          operationProblem(proof.proof.a) === undefined &&
          operationProblem(proof.proof.b) === undefined,
        "a proof made of the two valid operations at seq 2",
        brief(proof.proof),
      );
      const after = served.slice(forkAt + 1).flatMap((s) =>
        s.kind === "op" && s.op.author === z.id ? [s.op] : []
      );
      const anchor = after.findIndex((op) => op.id === one.id);
      const quarantined = after.filter((op) => op.seq === 2).map((op) => op.id).sort();
      expect(
        JSON.stringify(quarantined) === JSON.stringify(ids),
        "both seq-2 operations sent as quarantined after the proof",
        describeOps(after),
      );
      expect(
        anchor >= 0 && after.every((op, i) => op.seq === 1 || i > anchor),
        "the anchor (op 1) placed before the quarantined ones",
        describeOps(after),
      );
    },
  },
];
