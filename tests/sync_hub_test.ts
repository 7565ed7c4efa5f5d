/** The hub forwarding rule, on plain members. */
import assert from "node:assert/strict";
import type { Operation } from "../crdt/operation.ts";
import type { ForkProof } from "../crdt/store.ts";
import { Hub, type HubMember } from "../sync/hub.ts";
import { identity, OpFactory } from "./helpers.ts";

class Member implements HubMember {
  readonly got: { ops: readonly Operation[]; quarantined: boolean }[] = [];
  readonly proofs: ForkProof[] = [];
  readonly session = {};
  constructor(readonly peer: string) {}
  owns(origin: unknown): boolean {
    return origin === this.session;
  }
  enqueue(ops: readonly Operation[], quarantined: boolean): void {
    this.got.push({ ops, quarantined });
  }
  sendForkProof(proof: ForkProof): void {
    this.proofs.push(proof);
  }
}

const A = identity(1).nodeId;
const B = identity(2).nodeId;

Deno.test("the hub sends operations to every session whose peer differs from the origin's peer", () => {
  const hub = new Hub<Member>();
  // Two links to peer A (it dialled us and we dialled it), one to peer B.
  const [a1, a2, b] = [new Member(A), new Member(A), new Member(B)];
  for (const m of [a1, a2, b]) hub.add(m);
  const ops = new OpFactory().chain(identity(3), 2);
  hub.applied(ops, a1.session);
  assert.deepEqual(a1.got, [], "never back to the session they came from");
  assert.deepEqual(a2.got, [], "nor over another link to the same peer");
  assert.deepEqual(b.got, [{ ops, quarantined: false }]);
  hub.applied(ops, Symbol("local"));
  assert.equal(a1.got.length + a2.got.length + b.got.length, 4, "local operations go to all");
});

Deno.test("the hub passes fork proofs to every other session and quarantined operations to all", () => {
  const hub = new Hub<Member>();
  const [a1, a2, b] = [new Member(A), new Member(A), new Member(B)];
  for (const m of [a1, a2, b]) hub.add(m);
  const twin = identity(4);
  const x = new OpFactory().next(twin, { type: "append", path: ["n"], value: 1 });
  const y = new OpFactory().next(twin, { type: "append", path: ["n"], value: 2 });
  const proof: ForkProof = { author: twin.nodeId, seq: 1, a: x, b: y };
  hub.fork(proof, a1.session);
  assert.deepEqual([a1.proofs.length, a2.proofs.length, b.proofs.length], [0, 1, 1]);
  hub.quarantined([x, y]);
  for (const m of [a1, a2, b]) assert.deepEqual(m.got, [{ ops: [x, y], quarantined: true }]);
  hub.delete(b);
  assert.deepEqual(hub.members(), [a1, a2]);
});
