/**
 * Causal delivery cases (PROTOCOL.md §4): operations that arrive before
 * their predecessor or a dependency wait, then apply, and are served in a
 * causal order.
 * @module
 */

import type { Case } from "../case.ts";
import { expect } from "../check.ts";
import { describeOps } from "../peer.ts";
import { Author } from "../wire/operation.ts";
import { expectSameOps, note } from "./sync.ts";

/** The causal delivery cases. */
export const causalCases: Case[] = [
  {
    id: "causal.out-of-order",
    title: "§4 seq 2 before seq 1 waits in the pending buffer, then both apply in order",
    async run(ctx) {
      await ctx.requireOpen();
      const main = await ctx.main();
      const a = new Author();
      const sentinel = new Author();
      const [one, two] = [note(a, "one", 1), note(a, "two", 2)];
      const marker = note(sentinel, "marker", 1);
      main.sendLive([two, marker]);
      const early = await main.heldWhen(
        [a.id, sentinel.id],
        (h) => h.some((op) => op.id === marker.id),
        "the sentinel to apply",
      );
      const waiting = early.filter((op) => op.author === a.id);
      expect(
        waiting.length === 0,
        "seq 2 not applied before seq 1 (§4 rule 3)",
        describeOps(waiting),
      );
      main.sendLive([one]);
      const held = await main.heldWhen(
        [a.id],
        (h) => h.length === 2,
        "seq 1 and the waiting seq 2 to apply",
      );
      expectSameOps(held, [one, two], "§4: causal order");
    },
  },
  {
    id: "causal.dependency",
    title: "§4 rule 4 an operation whose dependency has not arrived waits, then applies after it",
    async run(ctx) {
      await ctx.requireOpen();
      const main = await ctx.main();
      const base = new Author();
      const child = new Author();
      const dep = note(base, "base", 1);
      const built = note(child, "built-on-base", 1, [dep]);
      const sentinel = new Author();
      const marker = note(sentinel, "marker", 1);
      main.sendLive([built, marker]);
      const early = await main.heldWhen(
        [child.id, sentinel.id],
        (h) => h.some((op) => op.id === marker.id),
        "the sentinel to apply",
      );
      const waiting = early.filter((op) => op.author === child.id);
      expect(
        waiting.length === 0,
        "the dependent op not applied before its dependency",
        describeOps(waiting),
      );
      main.sendLive([dep]);
      const held = await main.heldWhen([base.id, child.id], (h) => h.length === 2, "both to apply");
      expectSameOps(held, [dep, built], "§4: a dependency is served before what depends on it");
    },
  },
];
