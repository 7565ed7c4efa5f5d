/**
 * The membership rule (PROTOCOL.md §5b.3-5b.5): from the operations a
 * replica holds, in any causal order, the mesh's members and a verdict for
 * every operation. Pure, no I/O.
 *
 * Operations are added one at a time in a causal order (the order the log
 * applies them). Each operation records which membership operations lie in
 * its causal history, as a shared bit set, so an ordinary operation's verdict
 * costs O(its dependencies). A revocation, a genesis, or an admin grant that
 * changes a rank re-evaluates every operation (O(n), like a fork rebuild) and
 * returns the operations whose verdict changed, so the replica can rebuild its
 * document without them (or with them again).
 * @module
 */
import type { NodeId } from "./identity.ts";
import type { Operation, OpId } from "./operation.ts";
import { allBits, type BitSet, EMPTY_BITS, hasBit, unionBits, withBit } from "./membership_bits.ts";
import { type MembershipAction, parseMembershipAction, type Scope } from "./membership_ops.ts";
import { touchesMembersOp } from "./stored_operation.ts";

/**
 * What the rule says about one operation.
 * - `accepted`: applies to the document.
 * - `unauthorised`: its author had no scope for it in its causal history.
 * - `past-cut`: its author was revoked with a cut below its `seq`.
 * - `malformed`: it writes under `["members"]` but is no valid membership operation.
 */
export type Verdict = "accepted" | "unauthorised" | "past-cut" | "malformed";

/** An operation whose verdict changed after a later arrival. */
export interface VerdictChange {
  /** The operation. */
  op: Operation;
  /** Its verdict before. */
  before: Verdict;
  /** Its verdict now. */
  after: Verdict;
}

/** The result of {@link Membership.add}. */
export interface AddResult {
  /** The new operation's verdict. */
  verdict: Verdict;
  /** Operations added earlier whose verdict changed (empty for most arrivals). */
  changed: VerdictChange[];
  /** True when the member list may have changed. */
  membersChanged: boolean;
}

/** One member as the whole held history shows it. */
export interface MemberRecord {
  /** The member's node id. */
  key: NodeId;
  /** Current scope; `undefined` when revoked (and not granted again). */
  scope: Scope | undefined;
  /** Label of the grant in force (or the last one). */
  label: string;
  /** Node id of the admin whose grant is in force (the member itself for the genesis). */
  grantedBy: NodeId;
  /** Id of that grant. */
  grantId: OpId;
  /** When that grant was made (its author's wall clock, milliseconds since the epoch). */
  grantedAt: number;
  /** The cut of the revocation in force: operations past this seq are refused. */
  revokedAtSeq: number | undefined;
  /** Node id of the admin whose revocation is in force. */
  revokedBy: NodeId | undefined;
  /** When that revocation was made (its author's wall clock, milliseconds since the epoch). */
  revokedAt: number | undefined;
  /** Seniority: 0 for the genesis admin, grant distance for other admins, `null` otherwise. */
  rank: number | null;
}

/** Options for {@link Membership}. */
export interface MembershipOptions {
  /** The mesh id: the id of the mesh's genesis operation. */
  genesis: OpId;
}

/** A held membership operation. */
interface MemberOp {
  bit: number;
  op: Operation;
  action: MembershipAction;
  /** Membership operations in its history. */
  past: BitSet;
  /** The rank this grant gives its target (first admin grants only), or Infinity. */
  rankVia: number;
}

/** What the rule knows about one added operation. */
interface Added {
  op: Operation;
  /** Membership operations in its history. */
  past: BitSet;
  /** `past` plus the operation itself when it is a membership operation. */
  out: BitSet;
  member: MemberOp | undefined;
  malformed: boolean;
  /** A membership operation whose history gives its author no admin grant: never valid. */
  powerless: boolean;
  verdict: Verdict;
}

/** A member's standing in one history: its scope and the seq its operations may reach. */
interface View {
  scope: Scope | undefined;
  limit: number;
  grant: MemberOp | undefined;
  /** The revocation in force with the lowest cut, if any. */
  revocation: MemberOp | undefined;
}

function stampAfter(a: Operation, b: Operation): boolean {
  return a.time !== b.time ? a.time > b.time : a.author > b.author;
}

/**
 * The membership state of one replica, evaluated incrementally.
 *
 * @example
 * ```ts
 * import { Membership } from "./membership.ts";
 * const membership = new Membership({ genesis: "<genesis id>" });
 * // for each operation the log applies: membership.add(op).verdict
 * ```
 */
export class Membership {
  readonly #genesisId: OpId;
  readonly #added = new Map<OpId, Added>();
  /** Every added operation, in the order added. */
  readonly #order: Added[] = [];
  /** Membership operations by bit. */
  readonly #ops: MemberOp[] = [];
  /** Well-formed grants and revocations by target (and the genesis under its author). */
  readonly #about = new Map<NodeId, MemberOp[]>();
  /** Admin grants by target. */
  readonly #adminGrants = new Map<NodeId, MemberOp[]>();
  readonly #ranks = new Map<NodeId, number>();
  /** Validity of each membership operation, by bit. */
  #valid: boolean[] = [];
  /** Views per history set, for the current validity; replaced when validity changes. */
  #views = new WeakMap<BitSet, Map<NodeId, View>>();
  #genesis: MemberOp | undefined;
  /** Operations in the genesis's history (accepted as the mesh's starting history). */
  #preMesh = new Set<OpId>();
  /** Every membership operation held (grown on demand). */
  #everything: BitSet = EMPTY_BITS;
  /** Highest seq added per author. */
  readonly #lastSeq = new Map<NodeId, number>();

  /** Creates the state for the mesh whose genesis operation has id `options.genesis`. */
  constructor(options: MembershipOptions) {
    this.#genesisId = options.genesis;
  }

  /** Builds the state from operations in a causal order (after a fork rebuild, or at load). */
  static from(ops: Iterable<Operation>, options: MembershipOptions): Membership {
    const membership = new Membership(options);
    for (const op of ops) membership.add(op);
    return membership;
  }

  /** The mesh id this state was created for. */
  get genesisId(): OpId {
    return this.#genesisId;
  }

  /** True once the genesis operation has been added. */
  get hasGenesis(): boolean {
    return this.#genesis !== undefined;
  }

  /** Number of operations added. */
  get size(): number {
    return this.#order.length;
  }

  /**
   * Adds one operation, whose `prev` and dependencies (those the log holds)
   * were added before. Returns its verdict and the earlier operations whose
   * verdict changed. Throws when it was added already (a caller bug).
   */
  add(op: Operation): AddResult {
    if (this.#added.has(op.id)) throw new Error(`Cannot add operation ${op.id}: already added`);
    let past = EMPTY_BITS;
    for (const parent of op.prev === null ? op.deps : [op.prev, ...op.deps]) {
      const held = this.#added.get(parent);
      if (held !== undefined) past = unionBits(past, held.out);
    }
    const entry: Added = {
      op,
      past,
      out: past,
      member: undefined,
      malformed: false,
      powerless: false,
      verdict: "accepted",
    };
    if (touchesMembersOp(op)) {
      const action = parseMembershipAction(op.author, op.mutation);
      if (typeof action === "string") entry.malformed = true;
      else if (!this.#mayEverAct(op, action, past)) entry.powerless = true;
      else entry.member = this.#addMemberOp(op, action, past);
    }
    if (entry.member) entry.out = withBit(past, entry.member.bit);
    this.#added.set(op.id, entry);
    this.#order.push(entry);
    this.#lastSeq.set(op.author, Math.max(op.seq, this.#lastSeq.get(op.author) ?? 0));
    const member = entry.member;
    if (member === undefined) {
      entry.verdict = this.#judge(entry);
      return { verdict: entry.verdict, changed: [], membersChanged: false };
    }
    const isAdminGrant = member.action.action === "grant" && member.action.scope === "admin";
    const rankChanged = isAdminGrant && this.#rankGrant(member);
    const isGenesis = member.action.action === "genesis" && op.id === this.#genesisId;
    if (isGenesis) this.#setGenesis(member);
    if (!rankChanged && !isGenesis) {
      // Its validity depends only on operations by its author's seniors, which are settled.
      entry.verdict = this.#judge(entry);
      this.#valid[member.bit] = entry.verdict === "accepted";
      // Nothing held has it in its history, and only an accepted revocation cuts.
      if (entry.verdict !== "accepted" || member.action.action !== "revoke") {
        if (entry.verdict === "accepted") this.#views = new WeakMap();
        return {
          verdict: entry.verdict,
          changed: [],
          membersChanged: entry.verdict === "accepted",
        };
      }
    }
    const changed = this.#resolve(entry);
    return { verdict: entry.verdict, changed, membersChanged: true };
  }

  /**
   * False when a membership operation can never be valid, whatever arrives
   * later: a genesis other than the mesh's, or a grant or revocation whose
   * history holds neither the genesis (by its author) nor any admin grant of
   * its author. Such operations get no place in the history sets, so a
   * non-admin cannot make them grow.
   */
  #mayEverAct(op: Operation, action: MembershipAction, past: BitSet): boolean {
    if (action.action === "genesis") return op.id === this.#genesisId;
    const genesis = this.#genesis;
    if (genesis?.op.author === op.author && hasBit(past, genesis.bit)) return true;
    return (this.#adminGrants.get(op.author) ?? []).some((grant) => hasBit(past, grant.bit));
  }

  #addMemberOp(op: Operation, action: MembershipAction, past: BitSet): MemberOp {
    const member: MemberOp = { bit: this.#ops.length, op, action, past, rankVia: Infinity };
    this.#ops.push(member);
    this.#valid.push(false);
    const list = this.#about.get(action.target);
    if (list) list.push(member);
    else this.#about.set(action.target, [member]);
    return member;
  }

  #setGenesis(genesis: MemberOp): void {
    this.#genesis = genesis;
    this.#ranks.set(genesis.op.author, 0);
    // Its history, walked once: the mesh's starting history.
    const stack = [genesis.op.prev, ...genesis.op.deps];
    while (stack.length > 0) {
      const id = stack.pop();
      if (id === null || id === undefined || this.#preMesh.has(id)) continue;
      const held = this.#added.get(id);
      if (held === undefined) continue;
      this.#preMesh.add(id);
      stack.push(held.op.prev, ...held.op.deps);
    }
  }

  /** Records the rank an admin grant gives; true when some key's rank changed. */
  #rankGrant(grant: MemberOp): boolean {
    const author = grant.op.author;
    let authorRank = Infinity;
    if (this.#genesis?.op.author === author && hasBit(grant.past, this.#genesis.bit)) {
      authorRank = 0;
    }
    for (const earlier of this.#adminGrants.get(author) ?? []) {
      if (hasBit(grant.past, earlier.bit)) authorRank = Math.min(authorRank, earlier.rankVia);
    }
    const target = grant.action.target;
    // Only a first appointment ranks: a grant that has seen another admin grant of its target
    // does not change the target's seniority.
    const first = !(this.#adminGrants.get(target) ?? []).some((g) => hasBit(grant.past, g.bit));
    grant.rankVia = first ? authorRank + 1 : Infinity;
    const list = this.#adminGrants.get(target);
    if (list) list.push(grant);
    else this.#adminGrants.set(target, [grant]);
    if (grant.rankVia >= this.rankOf(target)) return false;
    this.#ranks.set(target, grant.rankVia);
    return true;
  }

  /**
   * Re-evaluates every membership operation, lowest-ranked author first, then
   * every operation; returns the changed verdicts (not `fresh`'s own).
   */
  #resolve(fresh: Added): VerdictChange[] {
    this.#valid = this.#ops.map(() => false);
    this.#views = new WeakMap();
    const byRank = [...this.#ops].sort((a, b) =>
      this.rankOf(a.op.author) - this.rankOf(b.op.author)
    );
    for (const member of byRank) {
      // Ops by authors with no rank cannot act on anyone; later layers never read them.
      if (this.rankOf(member.op.author) === Infinity && member !== this.#genesis) break;
      this.#valid[member.bit] = this.#judge(this.#added.get(member.op.id)!) === "accepted";
    }
    this.#views = new WeakMap();
    const changed: VerdictChange[] = [];
    for (const entry of this.#order) {
      const verdict = this.#judge(entry);
      if (entry !== fresh && verdict !== entry.verdict) {
        changed.push({ op: entry.op, before: entry.verdict, after: verdict });
      }
      entry.verdict = verdict;
    }
    return changed;
  }

  /** The rule's verdict for one added operation, given the current validity (PROTOCOL.md §5b.4). */
  #judge(entry: Added): Verdict {
    if (entry.malformed) return "malformed";
    if (entry.powerless) return "unauthorised";
    const { op, member } = entry;
    if (member?.action.action === "genesis") {
      return op.id === this.#genesisId ? "accepted" : "unauthorised";
    }
    const genesis = this.#genesis;
    if (genesis === undefined || !hasBit(entry.past, genesis.bit)) {
      if (member) return "unauthorised";
      // Until the genesis is held nothing is accepted (its arrival judges everything again).
      return this.#preMesh.has(op.id) ? "accepted" : "unauthorised";
    }
    const view = this.#view(op.author, entry.past);
    if (op.seq > view.limit) return "past-cut";
    if (member) {
      if (view.scope !== "admin") return "unauthorised";
      if (!(this.rankOf(op.author) < this.rankOf(member.action.target))) return "unauthorised";
    } else if (view.scope !== "write" && view.scope !== "admin") {
      return "unauthorised";
    }
    return "accepted";
  }

  /** `key`'s standing in the history `past`, cached per history set. */
  #view(key: NodeId, past: BitSet): View {
    let views = this.#views.get(past);
    if (views === undefined) this.#views.set(past, views = new Map());
    let view = views.get(key);
    if (view === undefined) views.set(key, view = this.#computeView(key, past));
    return view;
  }

  #computeView(key: NodeId, past: BitSet): View {
    const genesis = this.#genesis;
    if (genesis !== undefined && genesis.op.author === key && hasBit(past, genesis.bit)) {
      // The genesis admin: nobody is senior to it.
      return { scope: "admin", limit: Infinity, grant: genesis, revocation: undefined };
    }
    const rank = this.rankOf(key);
    const counted = (this.#about.get(key) ?? []).filter((m) =>
      this.#valid[m.bit] && m.action.action !== "genesis" && this.rankOf(m.op.author) < rank
    );
    const kept = counted.filter((m) => hasBit(past, m.bit));
    const maximal = kept.filter((m) => !kept.some((o) => o !== m && hasBit(o.past, m.bit)));
    let grant: MemberOp | undefined;
    let revoked = false;
    for (const m of maximal) {
      if (m.action.action === "revoke") revoked = true;
      else if (grant === undefined || stampAfter(m.op, grant.op)) grant = m;
    }
    let limit = Infinity;
    let revocation: MemberOp | undefined;
    for (const r of counted) {
      if (r.action.action !== "revoke") continue;
      const lifted = kept.some((g) => g.action.action === "grant" && hasBit(g.past, r.bit));
      if (lifted) continue;
      // The lowest cut; among equal cuts the earliest stamp, so every node names the same one.
      if (
        r.action.cut < limit ||
        (r.action.cut === limit && revocation !== undefined && stampAfter(revocation.op, r.op))
      ) {
        limit = r.action.cut;
        revocation = r;
      }
    }
    const scope = revoked || grant === undefined || grant.action.action === "revoke"
      ? undefined
      : grant.action.scope;
    return { scope, limit, grant, revocation };
  }

  /** The seniority rank of `key` (0 for the genesis admin; Infinity for non-admins). */
  rankOf(key: NodeId): number {
    return this.#ranks.get(key) ?? Infinity;
  }

  /** The verdict of an added operation, or `undefined` when it was not added. */
  verdictOf(id: OpId): Verdict | undefined {
    return this.#added.get(id)?.verdict;
  }

  /** Every added operation with its verdict, in the order added. */
  verdicts(): { op: Operation; verdict: Verdict }[] {
    return this.#order.map(({ op, verdict }) => ({ op, verdict }));
  }

  /** `key`'s standing over everything held. */
  #currentView(key: NodeId): View {
    if (this.#everything.length * 32 < this.#ops.length) {
      this.#everything = allBits(this.#ops.length);
    }
    return this.#view(key, this.#everything);
  }

  /**
   * The scope a connection from `key` is admitted with (PROTOCOL.md §5b.5): its scope
   * over everything held, `undefined` when it is no member or revoked.
   */
  scopeOf(key: NodeId): Scope | undefined {
    if (this.#genesis === undefined) return undefined;
    const view = this.#currentView(key);
    return view.limit === Infinity ? view.scope : undefined;
  }

  /**
   * True when the rule would accept `key`'s next pipeline operation made on
   * top of everything held: the write guard a replica checks before signing.
   */
  canWrite(key: NodeId): boolean {
    if (this.#genesis === undefined) return false;
    const view = this.#currentView(key);
    const next = (this.#lastSeq.get(key) ?? 0) + 1;
    return (view.scope === "write" || view.scope === "admin") && next <= view.limit;
  }

  /** Every key any valid membership operation names, with its standing over everything held. */
  members(): MemberRecord[] {
    const records: MemberRecord[] = [];
    for (const [key, ops] of this.#about) {
      if (!ops.some((m) => this.#valid[m.bit])) continue;
      const view = this.#currentView(key);
      const grant = view.grant ?? this.#lastValidGrant(ops);
      if (grant === undefined || grant.action.action === "revoke") continue;
      const rank = this.rankOf(key);
      records.push({
        key,
        scope: view.limit === Infinity ? view.scope : undefined,
        label: grant.action.label,
        grantedBy: grant.op.author,
        grantId: grant.op.id,
        grantedAt: grant.action.at,
        revokedAtSeq: view.revocation === undefined ? undefined : view.limit,
        revokedBy: view.revocation?.op.author,
        revokedAt: view.revocation?.action.at,
        rank: rank === Infinity ? null : rank,
      });
    }
    return records.sort((a, b) => a.key < b.key ? -1 : a.key > b.key ? 1 : 0);
  }

  #lastValidGrant(ops: MemberOp[]): MemberOp | undefined {
    let last: MemberOp | undefined;
    for (const m of ops) {
      if (!this.#valid[m.bit] || m.action.action === "revoke") continue;
      if (last === undefined || stampAfter(m.op, last.op)) last = m;
    }
    return last;
  }
}
