/**
 * Mesh membership on nodes over real sockets (sync/members.ts): a join token
 * redeemed on an admin becomes a replicated grant, the joiner learns the mesh
 * id from the pinned hub's signed welcome, a member dials another member
 * without a token, and a revocation closes the revoked key's sessions (4403)
 * and keeps its later writes out of every document.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { MESH_FILE_NAME } from "../data_dir.ts";
import { MembershipRefusedError } from "../crdt/replica_members.ts";
import { CloseCode } from "../protocol/close_codes.ts";
import { HuskiesNode } from "../sync/node.ts";
import { readMeshId } from "../sync/members.ts";
import { identity } from "./helpers.ts";
import { eventually, type ServedNode, serveNode } from "./net_helpers.ts";

const fastRetry = { initialMs: 20, maxMs: 200 };
const SOON_MS = 5_000;

function liveWith(node: HuskiesNode, peer: string): boolean {
  return node.sessions().some((s) => s.peer === peer && s.isLive);
}

Deno.test("members: token joiners become mesh members, write through any node, and a revocation shuts them out", async () => {
  const hubDir = await Deno.makeTempDir();
  const aDir = await Deno.makeTempDir();
  const hubId = identity(300);
  const aId = identity(301);
  const cId = identity(302);
  const servers: ServedNode[] = [];
  const closing: HuskiesNode[] = [];
  try {
    const hub = await serveNode({ identity: hubId, dataDir: hubDir, open: false });
    servers.push(hub);
    const mesh = hub.node.members.init("hub");
    assert.equal(readMeshId(hubDir), mesh);
    const a = await serveNode({ identity: aId, dataDir: aDir, open: false });
    servers.push(a);
    const c = await HuskiesNode.open({ identity: cId, open: false });
    closing.push(c);

    // a and c join the hub with tokens; the hub signs grants, they learn the mesh id.
    for (const [node, label] of [[a.node, "a"], [c, "c"]] as const) {
      const { token } = hub.node.tokens.create({ ttlMs: 60_000, label }, hubId.nodeId);
      node.connect(hub.url, { ...fastRetry, token });
    }
    await eventually(() => a.node.members.mesh === mesh, "a learned the mesh id", SOON_MS);
    await eventually(() => c.members.mesh === mesh, "c learned the mesh id", SOON_MS);
    assert.equal(readMeshId(aDir), mesh);
    const granted = hub.node.members.list().map((m) => [m.key, m.scope, m.grantedBy]);
    assert.deepEqual(
      granted.sort(),
      [
        [hubId.nodeId, "admin", hubId.nodeId],
        [aId.nodeId, "write", hubId.nodeId],
        [cId.nodeId, "write", hubId.nodeId],
      ].sort(),
    );
    assert.equal(hub.node.trust.scopeOf(aId.nodeId), undefined, "a grant, not a local trust");

    // c dials a directly, without a token: a admits it as a member.
    await eventually(() => a.node.members.list().length === 3, "a holds the grants", SOON_MS);
    c.connect(a.url, { ...fastRetry, hubKey: aId.nodeId });
    await eventually(() => liveWith(a.node, cId.nodeId), "a accepted c", SOON_MS);
    c.pipeline.put("C-1", { stage: "coding" });
    await eventually(() => a.node.pipeline.get("C-1") !== undefined, "c's item on a", SOON_MS);
    await eventually(() => hub.node.pipeline.get("C-1") !== undefined, "c's item on hub", SOON_MS);

    // The hub revokes c: its sessions on the hub and on a close with 4403.
    const closedOnA = a.node.once("session-closed", {
      filter: (e) => e.peer === cId.nodeId,
      timeoutMs: SOON_MS,
    });
    const closedOnHub = hub.node.once("session-closed", {
      filter: (e) => e.peer === cId.nodeId,
      timeoutMs: SOON_MS,
    });
    const cut = hub.node.replica.clock()[cId.nodeId];
    hub.node.members.revoke(cId.nodeId);
    assert.equal((await closedOnHub).code, CloseCode.NOT_TRUSTED);
    assert.equal((await closedOnA).code, CloseCode.NOT_TRUSTED);
    const onA = a.node.members.list().find((m) => m.key === cId.nodeId);
    assert.equal(onA?.scope, undefined);
    assert.equal(onA?.revokedAtSeq, cut);

    // c, shut out, writes on; relayed by any means, its write is held but applies nowhere.
    c.pipeline.put("C-2", { stage: "coding" });
    const relayed = c.replica.opsSince(hub.node.replica.clock());
    assert.ok(relayed.length > 0);
    hub.node.replica.receive(relayed);
    assert.equal(hub.node.replica.clock()[cId.nodeId], c.replica.clock()[cId.nodeId]);
    assert.equal(hub.node.pipeline.get("C-2"), undefined);
    assert.ok(hub.node.status().counters.unauthorized >= relayed.length, "counted as refused");
    assert.notEqual(hub.node.pipeline.get("C-1"), undefined, "writes up to the cut stay");
    await eventually(
      () => a.node.replica.clock()[cId.nodeId] === c.replica.clock()[cId.nodeId],
      "the hub forwarded c's held write to a",
      SOON_MS,
    );
    assert.equal(a.node.pipeline.get("C-2"), undefined);
    assert.equal(a.node.replica.stateHash(), hub.node.replica.stateHash());
  } finally {
    for (const node of closing) await node.close();
    for (const server of servers) await server.stop();
    await Deno.remove(hubDir, { recursive: true });
    await Deno.remove(aDir, { recursive: true });
  }
});

Deno.test("members: only an admin issues grants; without a mesh the members API says why", async () => {
  const node = await HuskiesNode.open({ identity: identity(310) });
  try {
    assert.deepEqual(node.members.list(), []);
    assert.throws(() => node.members.grant(identity(311).nodeId), {
      message:
        "Cannot grant: this node belongs to no mesh (run `huskies members init` or join one)",
    });
    node.members.init("solo");
    assert.throws(() => node.members.init(), MembershipRefusedError);
    node.members.grant(identity(311).nodeId, { scope: "read", label: "observer" });
    const reader = node.members.list().find((m) => m.key === identity(311).nodeId);
    assert.deepEqual([reader?.scope, reader?.label], ["read", "observer"]);
  } finally {
    await node.close();
  }
});

Deno.test("members: a mesh file that is not one stops the open with a clear error", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(join(dir, MESH_FILE_NAME), "{}");
    await assert.rejects(() => HuskiesNode.open({ dataDir: dir }), {
      message: `Cannot read ${join(dir, MESH_FILE_NAME)}: expected {"mesh": "<64 hex genesis id>"}`,
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
