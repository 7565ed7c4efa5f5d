/**
 * The replica's membership wiring (crdt/replica_members.ts): once a replica
 * knows its mesh id, the membership rule decides which held operations reach
 * its document; operations of non-members are held (not refused) so every
 * node holds the same; a revocation removes past-cut operations a node had
 * applied; pipeline writes need write scope and never touch the reserved part.
 */
import assert from "node:assert/strict";
import { Replica } from "../crdt/replica.ts";
import { MembershipRefusedError } from "../crdt/replica_members.ts";
import { grantMember, initMesh, revokeMember } from "../crdt/members_api.ts";
import { join } from "node:path";
import { SqliteStore } from "../crdt/sqlite_store.ts";
import { identity, setField } from "./helpers.ts";

const admin = identity(1);
const member = identity(2);
const stranger = identity(3);

/** Sends everything `from` holds that `to` lacks. */
function sync(from: Replica, to: Replica): void {
  to.receive(from.opsSince(to.clock(), to.heads()));
}

function stage(replica: Replica, story: string): unknown {
  return replica.document.get(["items", story, "stage"]);
}

function newMesh(): { hub: Replica; mesh: string } {
  const hub = Replica.open({ identity: admin });
  const mesh = initMesh(hub, "hub");
  return { hub, mesh };
}

function grant(replica: Replica, key: string, scope: "read" | "write" | "admin" = "write") {
  return grantMember(replica, key, scope, "m");
}

Deno.test("members: a granted member's writes reach the document everywhere; before the grant it cannot write", () => {
  const { hub, mesh } = newMesh();
  const node = Replica.open({ identity: member, mesh });
  sync(hub, node);
  assert.equal(node.members?.state.hasGenesis, true);
  assert.throws(
    () => node.commit([setField("S-1", "stage", "coding")]),
    (error: Error) =>
      error instanceof MembershipRefusedError &&
      error.message ===
        "Cannot write: this node's key is not a member of the mesh (or was revoked)",
  );
  grant(hub, member.nodeId);
  sync(hub, node);
  node.commit([setField("S-1", "stage", "coding")]);
  sync(node, hub);
  assert.equal(stage(hub, "S-1"), "coding");
  assert.equal(hub.stateHash(), node.stateHash());
  const listed = hub.members!.list().map((m) => [m.key, m.scope]);
  assert.deepEqual(
    listed.sort(),
    [[admin.nodeId, "admin"], [member.nodeId, "write"]].sort(),
  );
});

Deno.test("members: a non-member's operations are held and served but kept out of the document", () => {
  const { hub } = newMesh();
  const outsider = Replica.open({ identity: stranger });
  outsider.commit([setField("S-9", "stage", "rogue")]);
  const result = hub.receive(outsider.opsSince({}));
  assert.deepEqual(result.statuses, ["applied"]);
  assert.equal(stage(hub, "S-9"), undefined);
  assert.equal(hub.clock()[stranger.nodeId], 1);
  assert.equal(hub.members!.state.verdictOf(result.applied[0].id), "unauthorised");
  // Without a mesh, the trust-based rule still refuses unknown authors.
  const closed = Replica.open({ identity: member, mayAuthor: (a) => a === member.nodeId });
  assert.deepEqual(closed.receive(outsider.opsSince({})).statuses, ["unauthorized"]);
});

Deno.test("members: a revocation removes past-cut operations a node had applied, in any arrival order", () => {
  const { hub, mesh } = newMesh();
  const node = Replica.open({ identity: member, mesh });
  const witness = Replica.open({ identity: stranger, mesh });
  grant(hub, member.nodeId);
  sync(hub, node);
  node.commit([setField("S-1", "stage", "coding")]);
  sync(node, hub);
  const seen = hub.clock()[member.nodeId];
  // The member writes again, concurrently with its revocation at the cut the hub saw.
  node.commit([setField("S-2", "stage", "coding")]);
  sync(node, witness);
  assert.equal(stage(witness, "S-2"), "coding");
  revokeMember(hub, member.nodeId);
  sync(hub, witness);
  assert.equal(stage(witness, "S-2"), undefined, "past the cut: removed from the document");
  assert.equal(stage(witness, "S-1"), "coding", "up to the cut: kept");
  assert.equal(witness.clock()[member.nodeId], 2, "the operation stays held");
  sync(node, hub);
  assert.equal(stage(hub, "S-2"), undefined);
  assert.equal(hub.stateHash(), witness.stateHash());
  sync(hub, node);
  assert.equal(node.stateHash(), hub.stateHash());
  assert.throws(() => node.commit([setField("S-3", "stage", "x")]), MembershipRefusedError);
  const record = hub.members!.list().find((m) => m.key === member.nodeId);
  assert.equal(record?.scope, undefined);
  assert.equal(record?.revokedAtSeq, seen);
});

Deno.test("members: pipeline writes under the reserved part are refused, in a mesh or not", () => {
  const plain = Replica.open({ identity: member });
  const write = { type: "update" as const, path: ["members", admin.nodeId], fields: { x: 1 } };
  const reserved =
    'Cannot write: the ["members"] part of the document is reserved for membership operations';
  assert.throws(() => plain.commit([write]), { message: reserved });
  const { hub } = newMesh();
  assert.throws(() => hub.commit([write]), { message: reserved });
  assert.equal(plain.size, 0);
  // Nor can the members path carry anything but a membership operation.
  const size = hub.size;
  assert.throws(() => hub.commitMembership(() => setField("S-1", "stage", "x")), {
    message: "Cannot change members: the mutation is not a membership operation",
  });
  assert.throws(() => hub.commitMembership(() => write), {
    message:
      "Cannot change members: a membership operation's action must be genesis, grant or revoke",
  });
  assert.equal(hub.size, size);
});

Deno.test("members: only an admin senior to the target grants or revokes", () => {
  const { hub, mesh } = newMesh();
  const node = Replica.open({ identity: member, mesh });
  grant(hub, member.nodeId, "admin");
  sync(hub, node);
  assert.throws(() => revokeMember(node, admin.nodeId), {
    message: new RegExp(`Cannot revoke: ${admin.nodeId} is an admin as senior as this node`),
  });
  grant(node, stranger.nodeId, "read");
  sync(node, hub);
  const reader = Replica.open({ identity: stranger, mesh });
  sync(hub, reader);
  assert.throws(() => grant(reader, identity(4).nodeId), {
    message: "Cannot grant: this node's key is not an admin of the mesh",
  });
  assert.equal(hub.members!.state.scopeOf(stranger.nodeId), "read");
});

Deno.test("members: joining a mesh later, and reopening the store, judge the held history the same", async () => {
  const { hub, mesh } = newMesh();
  const outsider = Replica.open({ identity: stranger });
  outsider.commit([setField("S-9", "stage", "rogue")]);
  const file = join(await Deno.makeTempDir(), "ops.db");
  const node = Replica.open({ identity: member, store: SqliteStore.open(file) });
  node.receive(outsider.opsSince({}));
  sync(hub, node);
  assert.equal(stage(node, "S-9"), "rogue", "no mesh yet: trust decides (open)");
  let changes = 0;
  node.onMembersChanged(() => changes++);
  node.joinMesh(mesh);
  assert.equal(changes, 1);
  assert.equal(stage(node, "S-9"), undefined);
  assert.equal(node.stateHash(), hub.stateHash());
  assert.throws(() => node.joinMesh("0".repeat(64)), MembershipRefusedError);
  node.close();
  const reopened = Replica.open({ identity: member, store: SqliteStore.open(file), mesh });
  assert.equal(reopened.stateHash(), hub.stateHash());
  reopened.close();
});
