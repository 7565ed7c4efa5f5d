/**
 * The replica's side of mesh membership (PROTOCOL.md §5b): it feeds every
 * operation the log applies, in apply order, to the {@link Membership} rule,
 * tells the replica which of them reach the document, and builds the
 * membership operations the members API signs, refusing those the rule would
 * not accept. Pure, no I/O.
 *
 * Operations with a verdict other than `accepted` stay in the log (their
 * author's chain and the clock) and are served to peers; only the document
 * leaves them out. When a later arrival changes earlier verdicts, the replica
 * rebuilds its document from the log, the way it does after a fork.
 * @module
 */
import { CrdtDocument } from "./document.ts";
import type { NodeId } from "./identity.ts";
import { type MemberRecord, Membership } from "./membership.ts";
import {
  genesisMutation,
  grantMutation,
  parseMembershipAction,
  pipelineMutationProblem,
  revokeMutation,
  type Scope,
  SCOPES,
  touchesMembers,
} from "./membership_ops.ts";
import type { Mutation, Operation, OpId } from "./operation.ts";
import type { RestoredState } from "./replica_state.ts";

/** What feeding operations to the rule found. */
export interface FeedResult {
  /** The fed operations the document may apply, in order (when no rebuild is needed). */
  accepted: Operation[];
  /** True when earlier verdicts changed: the document must be rebuilt from the log. */
  rebuild: boolean;
  /** True when the member list may have changed. */
  membersChanged: boolean;
}

/**
 * A membership action refused before signing: this node has no scope for it,
 * or the rule would not accept it. Nothing was signed.
 */
export class MembershipRefusedError extends Error {
  /** Creates the error; `message` reads "Cannot <action>: <reason>". */
  constructor(message: string) {
    super(message);
    this.name = "MembershipRefusedError";
  }
}

/** The membership state of one replica and the decisions the replica takes from it. */
export class ReplicaMembers {
  #membership: Membership;

  /** Evaluates `ops` (the log's applied operations, in apply order) for the mesh `genesis`. */
  constructor(genesis: OpId, ops: Iterable<Operation>) {
    this.#membership = Membership.from(ops, { genesis });
  }

  /** The rule's state (read it: scopes, verdicts, members). */
  get state(): Membership {
    return this.#membership;
  }

  /** The mesh id (the genesis operation's id). */
  get mesh(): OpId {
    return this.#membership.genesisId;
  }

  /** Evaluates everything again from `ops` (after a fork rebuild). */
  reset(ops: Iterable<Operation>): void {
    this.#membership = Membership.from(ops, { genesis: this.mesh });
  }

  /** Feeds newly applied operations, in apply order. */
  feed(ops: readonly Operation[]): FeedResult {
    const accepted: Operation[] = [];
    let rebuild = false;
    let membersChanged = false;
    for (const op of ops) {
      const result = this.#membership.add(op);
      if (result.verdict === "accepted") accepted.push(op);
      if (result.changed.length > 0) rebuild = true;
      if (result.membersChanged) membersChanged = true;
    }
    return { accepted, rebuild, membersChanged };
  }

  /** True when the document applies this operation. */
  accepts(id: OpId): boolean {
    return this.#membership.verdictOf(id) === "accepted";
  }

  /** The members, with their standing over everything held. */
  list(): MemberRecord[] {
    return this.#membership.members();
  }

  /**
   * Refuses a pipeline write by `self`: one under the reserved part, or any
   * when the rule would not accept `self`'s next operation.
   * @throws {MembershipRefusedError}
   */
  checkPipelineWrite(self: NodeId, mutations: readonly Mutation[]): void {
    checkNotReserved(mutations);
    if (!this.#membership.canWrite(self)) {
      const scope = this.#membership.scopeOf(self);
      throw new MembershipRefusedError(
        scope === undefined
          ? "Cannot write: this node's key is not a member of the mesh (or was revoked)"
          : `Cannot write: this node's key has the scope ${scope} in the mesh, not write`,
      );
    }
  }

  /**
   * The grant `self` signs giving `member` the scope `scope`.
   * @throws {MembershipRefusedError} `self` is no admin, or not senior to `member`.
   */
  grant(self: NodeId, member: NodeId, scope: Scope, label: string, at: number): Mutation {
    if (!(SCOPES as readonly string[]).includes(scope)) {
      throw new MembershipRefusedError(
        `Cannot grant: the scope must be one of ${SCOPES.join(", ")}`,
      );
    }
    this.#checkActs(self, member, "grant");
    return grantMutation(member, scope, { label, at });
  }

  /**
   * The revocation `self` signs for `member`, its cut `self`'s view of the
   * member's chain (the highest seq of it applied).
   * @throws {MembershipRefusedError} `self` is no admin, or not senior to `member`.
   */
  revoke(self: NodeId, member: NodeId, cut: number, at: number): Mutation {
    this.#checkActs(self, member, "revoke");
    return revokeMutation(member, cut, at);
  }

  #checkActs(self: NodeId, member: NodeId, action: string): void {
    if (member === self) {
      throw new MembershipRefusedError(`Cannot ${action}: a node cannot ${action} itself`);
    }
    if (this.#membership.scopeOf(self) !== "admin" || !this.#membership.canWrite(self)) {
      throw new MembershipRefusedError(
        `Cannot ${action}: this node's key is not an admin of the mesh`,
      );
    }
    if (!(this.#membership.rankOf(self) < this.#membership.rankOf(member))) {
      throw new MembershipRefusedError(
        `Cannot ${action}: ${member} is an admin as senior as this node (only seniors act on a member)`,
      );
    }
  }
}

/**
 * Refuses mutations under the reserved `["members"]` part (the pipeline
 * never writes there; only the members API does).
 * @throws {MembershipRefusedError}
 */
export function checkNotReserved(mutations: readonly Mutation[]): void {
  for (const mutation of mutations) {
    const problem = pipelineMutationProblem(mutation);
    if (problem) throw new MembershipRefusedError(problem);
  }
}

/**
 * Refuses anything but a well-formed membership mutation by `author` on the
 * members path (so that path cannot carry pipeline writes).
 * @throws {MembershipRefusedError}
 */
export function checkMembershipMutation(author: NodeId, mutation: Mutation): void {
  const action = touchesMembers(mutation) ? parseMembershipAction(author, mutation) : undefined;
  if (action === undefined || typeof action === "string") {
    throw new MembershipRefusedError(
      `Cannot change members: ${action ?? "the mutation is not a membership operation"}`,
    );
  }
}

/** The genesis mutation making `self` the first admin of a new mesh. */
export function genesisFor(self: NodeId, label: string, at: number): Mutation {
  return genesisMutation(self, { label, at });
}

/**
 * The replica's document and, once it is in a mesh, the membership rule that
 * decides which applied operations reach it.
 */
export class GatedDocument {
  #document = new CrdtDocument();
  #members: ReplicaMembers | undefined;
  readonly #listeners = new Set<() => void>();

  /** The materialised document (replaced by each rebuild). */
  get document(): CrdtDocument {
    return this.#document;
  }

  /** The membership, once in a mesh. */
  get members(): ReplicaMembers | undefined {
    return this.#members;
  }

  /**
   * Joins the mesh `genesis`, judging `all` (the log's applied operations)
   * and rebuilding the document from those accepted.
   * @throws {MembershipRefusedError} already in another mesh.
   */
  join(genesis: OpId, all: readonly Operation[]): void {
    if (this.#members?.mesh === genesis) return;
    if (this.#members) {
      throw new MembershipRefusedError(
        `Cannot join mesh ${genesis}: this node belongs to mesh ${this.#members.mesh}`,
      );
    }
    this.#members = new ReplicaMembers(genesis, all);
    this.#build(all);
    this.#emit();
  }

  /**
   * Starts on the log at open: judges membership from `all` (applied
   * operations, in apply order) when in mesh `mesh`; the document is
   * `saved.document` with `saved.after` applied, or, without `saved`, built from `all`.
   */
  start(mesh: OpId | undefined, all: readonly Operation[], saved?: RestoredState): void {
    const members = mesh === undefined ? undefined : new ReplicaMembers(mesh, all);
    this.#members = members;
    if (saved === undefined) return this.#build(all);
    this.#document = saved.document;
    for (const op of saved.after) if (!members || members.accepts(op.id)) saved.document.apply(op);
  }

  /** Applies newly applied operations (those accepted); `all` gives the log for a rebuild. */
  apply(ops: readonly Operation[], all: () => readonly Operation[]): void {
    if (this.#members === undefined) {
      for (const op of ops) this.#document.apply(op);
      return;
    }
    const fed = this.#members.feed(ops);
    if (fed.rebuild) this.#build(all());
    else for (const op of fed.accepted) this.#document.apply(op);
    if (fed.membersChanged) this.#emit();
  }

  /** Rebuilds from `all` (at open, or after a fork rebuild: `rejudge` evaluates membership again). */
  rebuild(all: readonly Operation[], rejudge = false): void {
    if (rejudge && this.#members) this.#members.reset(all);
    this.#build(all);
    if (rejudge && this.#members) this.#emit();
  }

  /** Subscribes to changes of the member list; returns the unsubscribe function. */
  onMembersChanged(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Drops every listener (the replica closed). */
  clearListeners(): void {
    this.#listeners.clear();
  }

  #build(all: readonly Operation[]): void {
    const document = new CrdtDocument();
    const members = this.#members;
    for (const op of all) if (!members || members.accepts(op.id)) document.apply(op);
    this.#document = document;
  }

  #emit(): void {
    for (const listener of this.#listeners) listener();
  }
}
