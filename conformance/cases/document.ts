/**
 * Document cases (PROTOCOL.md §7): the merge rules and the state hash, from
 * a fixed known answer and from what the peer serves back in catch-up.
 * @module
 */

import type { Case } from "../case.ts";
import { brief, expect } from "../check.ts";
import { appliedOps, describeOps } from "../peer.ts";
import { canonicalJson } from "../wire/canonical.ts";
import { buildDocument, stateHash } from "../wire/document.ts";
import { hex, sha256, unhex, utf8 } from "../wire/bytes.ts";
import { KeyPair } from "../wire/ed25519.ts";
import { Author, type Op } from "../wire/operation.ts";
import { RUN_PATH } from "./sync.ts";

/**
 * Eleven operations by two authors exercising every rule of §7: last writer
 * wins by time, a tie broken by author, remove hiding older writes only, a
 * list beating an older map, nested values and non-ASCII text.
 */
function scenario(a: Author, b: Author, root: string[]): Op[] {
  const at = (...path: string[]) => [...root, ...path];
  const a1 = a.write({
    type: "update",
    path: at("item"),
    fields: { name: "first", stage: "backlog" },
  });
  const b1 = b.write({ type: "update", path: at("item"), fields: { stage: "coding" } }, [a1]);
  const a2 = a.write({ type: "append", path: at("log"), value: "a" }, [b1]);
  const b2 = b.write({ type: "append", path: at("log"), value: "b" });
  const a3 = a.write({ type: "remove", path: at("item") }, [b2]);
  const b3 = b.write({ type: "update", path: at("item"), fields: { stage: "qa" } }, [a3]);
  const a4 = a.write({ type: "update", path: at("gone"), fields: { x: 1 } }, [b3]);
  const b4 = b.write({ type: "remove", path: at("gone") }, [a4]);
  const a5 = a.write({ type: "update", path: at("mix"), fields: { v: 1 } }, [b4]);
  const b5 = b.write({ type: "append", path: at("mix"), value: "listed" }, [a5]);
  const a6 = a.write(
    {
      type: "update",
      path: at("vals"),
      fields: { n: null, t: true, s: "ünï ✓ \u0001", o: { k: [1, 2] } },
    },
    [b5],
  );
  return [a1, b1, a2, b2, a3, b3, a4, b4, a5, b5, a6];
}

/** The document §7 says the scenario shows (a2 and b2 tie at time 3: lower author first). */
function expectedDocument(a: Author, b: Author, root: string[]): Record<string, unknown> {
  let value: Record<string, unknown> = {
    item: { stage: "qa" },
    log: a.id < b.id ? ["a", "b"] : ["b", "a"],
    mix: ["listed"],
    vals: { n: null, o: { k: [1, 2] }, s: "ünï ✓ \u0001", t: true },
  };
  for (const key of [...root].reverse()) value = { [key]: value };
  return value;
}

/** Fails unless every operation's prev and deps come before it in `ops`. */
function expectCausalOrder(ops: Op[]): void {
  const seen = new Set<string>();
  for (const op of ops) {
    const missing = [op.prev, ...op.deps].filter((id) => id !== null && !seen.has(id!));
    expect(
      missing.length === 0,
      "operations served in a causal order (§4)",
      `${op.id.slice(0, 8)} before ${missing.map((m) => m!.slice(0, 8))}`,
    );
    seen.add(op.id);
  }
}

/** The document cases. */
export const documentCases: Case[] = [
  {
    id: "document.known-answer",
    title:
      "§7 the suite's merge code and state hash give the hand-derived document for a fixed scenario",
    run() {
      const a = new Author(KeyPair.fromSeed(unhex("01".repeat(32))));
      const b = new Author(KeyPair.fromSeed(unhex("02".repeat(32))));
      const ops = scenario(a, b, ["doc"]);
      const wanted = expectedDocument(a, b, ["doc"]);
      const built = buildDocument([...ops].reverse());
      const text = canonicalJson(built);
      expect(text === canonicalJson(wanted), canonicalJson(wanted), text);
      const hash = hex(sha256(utf8(`huskies-sync/state/v1\n${text}`)));
      expect(stateHash(built) === hash, hash, stateHash(built));
      expect(
        canonicalJson({ b: 1, a: [true, null, "\u2028"] }) === '{"a":[true,null,"\u2028"],"b":1}',
        "canonical JSON per §2.3",
        canonicalJson({ b: 1, a: [true, null, "\u2028"] }),
      );
      return Promise.resolve();
    },
  },
  {
    id: "document.read-back",
    title:
      "§7 the peer serves back every operation, unchanged and causally ordered; it rebuilds the expected state",
    async run(ctx) {
      await ctx.requireOpen();
      const main = await ctx.main();
      const a = new Author();
      const b = new Author();
      const root = [...RUN_PATH, "document"];
      const ops = scenario(a, b, root);
      // A different causal order than the authors wrote them in.
      const [a1, b1, a2, b2, ...rest] = ops;
      main.sendLive([a1, b1, b2, a2, ...rest]);
      await main.heldWhen(
        [a.id, b.id],
        (h) => h.length === ops.length,
        `all ${ops.length} operations to apply`,
      );
      const result = await main.probe([a.id, b.id]);
      const served = appliedOps(result).filter((op) => op.author === a.id || op.author === b.id);
      expectCausalOrder(served);
      const byId = new Map(ops.map((op) => [op.id, op]));
      for (const op of served) {
        expect(
          canonicalJson(op) === canonicalJson(byId.get(op.id)),
          "each op served unchanged",
          brief(op),
        );
      }
      expect(served.length === ops.length, `${ops.length} operations`, describeOps(served));
      const wanted = expectedDocument(a, b, root);
      const built = buildDocument(served);
      expect(
        stateHash(built) === stateHash(wanted),
        `state ${canonicalJson(wanted)}`,
        canonicalJson(built),
      );
    },
  },
];
