/**
 * The forwarding rule of a node (a hub): what one session brings is passed
 * on to the others. One implementation, used by every node over every
 * transport, the simulation included.
 *
 * - Operations applied from a session go to every session whose peer differs
 *   from that session's peer (never back to the node they came from, over
 *   any of its links); local operations go to every session.
 * - A fork proof goes to every session but the one it came from.
 * - Newly quarantined operations go to every session, the sender's too:
 *   moving a branch out of the chain quarantines operations that peer may lack.
 * @module
 */
import type { NodeId } from "../crdt/identity.ts";
import type { Operation } from "../crdt/operation.ts";
import type { Replica } from "../crdt/replica.ts";
import type { ForkProof } from "../crdt/store.ts";

/** A session as the hub sees it. */
export interface HubMember {
  /** The peer's node id. */
  readonly peer: NodeId;
  /** True when `origin` (what a replica listener was told) is this member's session. */
  owns(origin: unknown): boolean;
  /** Queues operations for the peer; `quarantined` ones bypass the peer's clock. */
  enqueue(ops: readonly Operation[], quarantined: boolean): void;
  /** Sends a fork proof to the peer. */
  sendForkProof(proof: ForkProof): void;
}

/** The sessions of one node and the forwarding rule between them. */
export class Hub<M extends HubMember> {
  readonly #members = new Set<M>();

  /** Adds a session. */
  add(member: M): void {
    this.#members.add(member);
  }

  /** Removes a session. */
  delete(member: M): void {
    this.#members.delete(member);
  }

  /** How many sessions there are. */
  get size(): number {
    return this.#members.size;
  }

  /** The sessions, in the order added. */
  members(): M[] {
    return [...this.#members];
  }

  /** The member whose session `origin` is, if any. */
  memberOf(origin: unknown): M | undefined {
    for (const member of this.#members) if (member.owns(origin)) return member;
    return undefined;
  }

  /** Operations were applied, delivered by `origin`: pass them to every other peer. */
  applied(ops: readonly Operation[], origin: unknown): void {
    const source = this.memberOf(origin)?.peer;
    for (const member of this.members()) if (member.peer !== source) member.enqueue(ops, false);
  }

  /** A fork proof was recorded, delivered by `origin`: pass it to every other session. */
  fork(proof: ForkProof, origin: unknown): void {
    for (const member of this.members()) if (!member.owns(origin)) member.sendForkProof(proof);
  }

  /** Operations were newly quarantined: pass them to every session. */
  quarantined(ops: readonly Operation[]): void {
    for (const member of this.members()) member.enqueue(ops, true);
  }

  /** Subscribes the rule to `replica`'s listeners; returns the unsubscribe function. */
  attach(replica: Replica): () => void {
    const stops = [
      replica.onApplied((ops, origin) => this.applied(ops, origin)),
      replica.onFork((proof, origin) => this.fork(proof, origin)),
      replica.onQuarantined((ops) => this.quarantined(ops)),
    ];
    return () => stops.forEach((stop) => stop());
  }
}
