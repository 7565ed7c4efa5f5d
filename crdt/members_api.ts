/**
 * The members API over a replica: create a mesh, grant, revoke. The one place
 * that signs membership operations (through `Replica.commitMembership`); the
 * node's `node.members` and the CLI call these.
 * @module
 */
import type { VectorClock } from "./clock.ts";
import type { NodeId } from "./identity.ts";
import type { Scope } from "./membership_ops.ts";
import type { Mutation, Operation, OpId } from "./operation.ts";
import { genesisFor, MembershipRefusedError, type ReplicaMembers } from "./replica_members.ts";

/** What the members API needs of a replica (a `Replica` is one). */
export interface MeshReplica {
  /** The signing node's id. */
  readonly nodeId: NodeId;
  /** The membership, once in a mesh. */
  readonly members: ReplicaMembers | undefined;
  /** Signs one membership operation. */
  commitMembership(
    build: (members: ReplicaMembers | undefined, now: number) => Mutation,
  ): Operation;
  /** Adopts a mesh id. */
  joinMesh(genesis: OpId): void;
  /** Author -> operations applied. */
  clock(): VectorClock;
}

/**
 * Makes this node the first admin of a new mesh: signs the genesis, joins
 * the mesh, returns its id (the mesh id).
 * @throws {MembershipRefusedError} the node belongs to a mesh already.
 */
export function initMesh(replica: MeshReplica, label = ""): OpId {
  const genesis = replica.commitMembership((members, now) => {
    if (members) {
      throw new MembershipRefusedError(
        `Cannot create a mesh: this node belongs to mesh ${members.mesh} already`,
      );
    }
    return genesisFor(replica.nodeId, label, now);
  });
  replica.joinMesh(genesis.id);
  return genesis.id;
}

function meshOf(members: ReplicaMembers | undefined, action: string): ReplicaMembers {
  if (members) return members;
  throw new MembershipRefusedError(
    `Cannot ${action}: this node belongs to no mesh (run \`huskies members init\` or join one)`,
  );
}

/**
 * Signs a grant of `scope` to `member`.
 * @throws {MembershipRefusedError} no mesh, not an admin, or not senior to `member`.
 */
export function grantMember(
  replica: MeshReplica,
  member: NodeId,
  scope: Scope,
  label = "",
): Operation {
  return replica.commitMembership((members, now) =>
    meshOf(members, "grant").grant(replica.nodeId, member, scope, label, now)
  );
}

/**
 * Signs a revocation of `member` whose cut is this node's view of the
 * member's chain (its operations applied here); later ones are refused
 * everywhere.
 * @throws {MembershipRefusedError} no mesh, not an admin, or not senior to `member`.
 */
export function revokeMember(replica: MeshReplica, member: NodeId): Operation {
  const cut = replica.clock()[member] ?? 0;
  return replica.commitMembership((members, now) =>
    meshOf(members, "revoke").revoke(replica.nodeId, member, cut, now)
  );
}
