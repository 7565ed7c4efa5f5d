/**
 * The legacy path (PROTOCOL.md §6.3): a peer that sends a full bulk of
 * string-encoded operations first gets a full bulk back, in strings, never
 * a ready, and live operations without waiting for one.
 * @module
 */

import type { Case } from "../case.ts";
import { expect } from "../check.ts";
import { clockProblem, describe, framedOps } from "../peer.ts";
import { KeyPair } from "../wire/ed25519.ts";
import { Author } from "../wire/operation.ts";
import { note } from "./sync.ts";

/** The legacy path cases. */
export const legacyCases: Case[] = [
  {
    id: "legacy.bulk-first",
    title: "§6.3 a bulk before any clock gets a full bulk of strings back, no ready, then live ops",
    async run(ctx) {
      await ctx.requireOpen();
      const main = await ctx.main();
      const hs = await ctx.handshake(KeyPair.generate());
      const conn = hs.conn;
      const first = await conn.next(ctx.timeoutMs);
      const clock = first.kind === "text" ? (first.json as Record<string, unknown>) : undefined;
      expect(
        clock?.type === "clock" && clockProblem(clock) === undefined,
        "the peer's clock first",
        describe(first),
      );
      const counts = clock!.clock as Record<string, number>;
      const author = new Author();
      const mine = note(author, "legacy", 1);
      conn.send({ type: "bulk", ops: [JSON.stringify(mine)] });
      const got = new Map<string, number>();
      const types: string[] = [];
      let allStrings = true;
      let answered = false;
      const covered = () => Object.entries(counts).every(([a, n]) => (got.get(a) ?? 0) >= n);
      const deadline = Date.now() + ctx.timeoutMs;
      // The answer is at least one bulk frame (empty when the peer holds nothing).
      while (!answered || !covered()) {
        const event = await conn.next(Math.max(0, deadline - Date.now()));
        expect(
          event.kind === "text" || event.kind === "binary",
          "a full bulk of everything the peer holds (§6.3)",
          describe(event),
        );
        if (event.kind === "text") types.push(String((event.json as { type?: unknown })?.type));
        const parsed = event.kind === "text" || event.kind === "binary"
          ? framedOps(event)
          : undefined;
        if (!parsed) continue;
        answered ||= event.kind === "text";
        if (event.kind === "text") allStrings &&= parsed.strings.every(Boolean);
        for (const op of parsed.ops) got.set(op.author, Math.max(got.get(op.author) ?? 0, op.seq));
      }
      expect(
        allStrings,
        "bulk elements as JSON strings, as the legacy peer sent (§6.3)",
        "operation objects",
      );
      await main.heldWhen(
        [author.id],
        (h) => h.length === 1,
        "the legacy peer's operation to apply",
      );
      const live = note(new Author(), "to-legacy", 1);
      main.sendLive([live]);
      for (;;) {
        const event = await conn.next(Math.max(0, deadline + ctx.timeoutMs - Date.now()));
        expect(
          event.kind === "text" || event.kind === "binary",
          "a live operation without our ready (§6.3)",
          describe(event),
        );
        if (event.kind === "text") types.push(String((event.json as { type?: unknown })?.type));
        const parsed = event.kind === "text" || event.kind === "binary"
          ? framedOps(event)
          : undefined;
        if (parsed?.ops.some((op) => op.id === live.id)) break;
      }
      expect(
        !types.includes("ready"),
        "no ready to a legacy peer (§6.3)",
        `frames ${types.join(",")}`,
      );
      conn.close();
    },
  },
];
