/**
 * A replica: one node's copy of the shared document. It owns the identity
 * that signs local changes, the operation log, the materialised document and
 * the store, and is the single place where operations enter the state.
 * Everything hangs off the instance, so many replicas can live in one process.
 *
 * Forked authors (see `log.ts`): their operations from the fork point on are
 * stored and served to peers but kept out of the document. When a fork moves
 * applied operations into quarantine, the document is rebuilt from the log
 * (O(n); forks are rare).
 * @module
 */
import type { ClockHeads, VectorClock } from "./clock.ts";
import type { CrdtDocument } from "./document.ts";
import { type Identity, type NodeId, SignatureVerifier } from "./identity.ts";
import { type BatchResult, type LogMark, OpLog } from "./log.ts";
import { type Mutation, type Operation, type OpId, signOperation } from "./operation.ts";
import {
  type AppliedListener,
  type ForkListener,
  LOCAL_ORIGIN,
  OWN_EVIDENCE,
  type ReceiveOptions,
  type ReplicaOptions,
  type WriteGate,
} from "./replica_types.ts";
import {
  checkMembershipMutation,
  checkNotReserved,
  GatedDocument,
  type ReplicaMembers,
} from "./replica_members.ts";
import { type AppendOptions, type ForkProof, MemoryStore, type Store } from "./store.ts";
import { WriteGuard, WriteRefusedError } from "./write_guard.ts";
import { Listeners } from "./listeners.ts";
import { loadStore, SAVE_STATE_AT_MOST, SAVE_STATE_EVERY, StateSaver } from "./replica_state.ts";

export {
  type AppliedListener,
  type ForkListener,
  LOCAL_ORIGIN,
  type ReceiveOptions,
  ReplayError,
  type ReplicaOptions,
  type WriteGate,
} from "./replica_types.ts";

/**
 * One node's replica of the document.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Identity, MemoryStore, Replica } from "@huskies/sync";
 *
 * const a = Replica.open({ identity: Identity.generate() });
 * const [op] = a.commit([{ type: "update", path: ["items", "s1"], fields: { stage: "qa" } }]);
 * assert.equal(a.document.get(["items", "s1", "stage"]), "qa");
 *
 * // Another replica receives what it lacks and reaches the same state.
 * const b = Replica.open({ identity: Identity.generate(), store: new MemoryStore() });
 * b.receive(a.opsSince(b.clock()));
 * assert.equal(b.document.get(["items", "s1", "stage"]), "qa");
 * assert.equal(b.stateHash(), a.stateHash());
 * assert.deepEqual(b.clock(), { [op.author]: 1 });
 * a.close();
 * b.close();
 * ```
 */
export class Replica {
  /** The node's identity. */
  readonly identity: Identity;
  /** The node id (hex public key). */
  readonly nodeId: NodeId;
  /** @ignore The verifier of received operations' signatures. */
  readonly verifier: SignatureVerifier;
  readonly #gated = new GatedDocument();
  readonly #log: OpLog;
  readonly #store: Store;
  readonly #applied = new Listeners<Parameters<AppliedListener>>();
  readonly #forkListeners = new Listeners<Parameters<ForkListener>>();
  readonly #quarantineListeners = new Listeners<[readonly Operation[], unknown]>();
  #closed = false;
  readonly #saver: StateSaver;
  readonly #guard: WriteGuard;
  readonly #now: () => number;

  private constructor(options: ReplicaOptions) {
    this.identity = options.identity;
    this.verifier = options.verifier ?? new SignatureVerifier();
    this.nodeId = options.identity.nodeId;
    this.#store = options.store ?? new MemoryStore();
    this.#now = options.now ?? Date.now;
    this.#guard = new WriteGuard({
      startupGraceMs: options.startupGraceMs,
      claimTimeoutMs: options.claimTimeoutMs,
    }, this.#now());
    this.#log = new OpLog({
      verifier: this.verifier,
      // Once in a mesh, every node holds every verified operation; the rule judges them.
      mayAuthor: (author) =>
        this.#gated.members !== undefined || (options.mayAuthor?.(author) ?? true),
      pending: options.pending,
      quarantine: options.quarantine,
      forkProofs: options.forkProofs,
    });
    this.#saver = new StateSaver(this.#store, this.#gated, this.#log);
  }

  /**
   * The materialised document. Read it; change it only through
   * {@link Replica.commit}. A fork can replace it with a rebuilt one, so read
   * it through the replica each time rather than keeping it.
   */
  get document(): CrdtDocument {
    return this.#gated.document;
  }

  /**
   * Opens a replica and replays the store in insertion order, after its fork
   * proofs, so forked authors' operations go to quarantine again. From a store
   * on disk ({@link Store.loadLazy}) it loads light references and the saved
   * document (`replica_state.ts`), applying only what was stored after it;
   * the store checks every id in the background (`HuskiesNode`). From any
   * other store each id is recomputed, so a tampered or corrupt row stops the
   * open with an error. Signatures are re-checked by `huskies verify`.
   */
  static open(options: ReplicaOptions): Replica {
    const replica = new Replica(options);
    const restored = loadStore(replica.#store, replica.#log, options.mesh);
    replica.#gated.start(options.mesh, replica.#log.all(), restored);
    replica.#saver.unsaved = restored === undefined ? 1 : restored.after.length;
    replica.#checkOwnHead(options.acceptLostHistory ?? false);
    return replica;
  }

  /**
   * Saves the document with the store once 100k operations were stored since
   * the last save (else at close, or past 1M): a node calls this while no
   * catch-up runs, so that a save (~2 ms per 1k items) does not hold one up.
   */
  saveStateIfDue(): void {
    if (!this.#closed) this.#saver.add(0, SAVE_STATE_EVERY);
  }

  /** Stores newly held operations; a store on disk keeps them, and the log a reference. */
  #storeHeld(ops: Operation[], options: AppendOptions): void {
    if (this.#store.appendLazy === undefined) return this.#store.append(ops, options);
    this.#log.useReferences(ops, this.#store.appendLazy(ops, options));
  }

  #checkOpen(action: string): void {
    if (this.#closed) throw new Error(`Cannot ${action}: the replica is closed`);
  }

  /**
   * Signs `mutations` as consecutive local operations, persists them in one
   * transaction and applies them. Returns the new operations. When this
   * node's own identity has been caught forking (its key is in use
   * elsewhere), operations from the fork point on are signed and stored but
   * quarantined like any forked author's: they do not change the document.
   */
  commit(mutations: readonly Mutation[]): Operation[] {
    this.#checkOpen("commit");
    if (mutations.length === 0) return [];
    const members = this.#gated.members;
    if (members) members.checkPipelineWrite(this.nodeId, mutations);
    else checkNotReserved(mutations);
    return this.#sign(mutations);
  }

  #sign(mutations: readonly Mutation[]): Operation[] {
    const now = this.#now();
    const refusal = this.#guard.check(now, this.#ownHeld(), this.#log.forkPoint(this.nodeId));
    if (refusal !== undefined) throw new WriteRefusedError(refusal, now);
    const mark = this.#log.mark();
    const created: Operation[] = [];
    const tip = this.#log.tipOf(this.nodeId);
    let seq = (tip?.seq ?? 0) + 1;
    let prev = tip?.id ?? null;
    let time = tip?.time ?? 0;
    try {
      for (const mutation of mutations) {
        const op = signOperation({
          author: this.nodeId,
          seq,
          prev,
          deps: this.#log.depsFor(this.nodeId),
          time: Math.max(time, this.#log.maxTime) + 1,
          mutation,
        }, this.identity);
        // Not forked (the guard checked), so it applies: applyTrusted throws otherwise.
        this.#log.applyTrusted(op);
        created.push(op);
        seq = op.seq + 1;
        prev = op.id;
        time = op.time;
      }
      const last = created[created.length - 1];
      this.#storeHeld(created, {
        durable: true,
        ownHead: { author: this.nodeId, seq: last.seq, id: last.id },
      });
    } catch (error) {
      this.#log.rollback(mark);
      throw error;
    }
    this.#gated.apply(created, () => this.#log.all());
    this.#saver.add(created.length, SAVE_STATE_AT_MOST);
    this.#applied.emit(created, LOCAL_ORIGIN);
    return created;
  }

  /**
   * The mesh membership, once the replica knows its mesh id
   * ({@link Replica.joinMesh}); `HuskiesNode.members` is the public API.
   * @ignore
   */
  get members(): ReplicaMembers | undefined {
    return this.#gated.members;
  }

  /**
   * Adopts the mesh whose genesis has id `genesis`: the membership rule then decides what
   * reaches the document, and no author is refused as untrusted (all nodes hold the same ops).
   * @throws {MembershipRefusedError} the replica belongs to another mesh.
   */
  joinMesh(genesis: OpId): void {
    this.#gated.join(genesis, this.#log.all());
    this.#saver.unsaved++;
  }

  /**
   * Signs one membership operation that `build` makes from the membership (`undefined` before
   * a mesh) and the time: the members API's path (`members_api.ts`); nothing else goes here.
   * @ignore
   */
  commitMembership(
    build: (members: ReplicaMembers | undefined, now: number) => Mutation,
  ): Operation {
    this.#checkOpen("change members");
    const mutation = build(this.#gated.members, this.#now());
    checkMembershipMutation(this.nodeId, mutation);
    return this.#sign([mutation])[0];
  }

  /** Subscribes to changes of the member list; returns the unsubscribe function. */
  onMembersChanged(listener: () => void): () => void {
    return this.#gated.onMembersChanged(listener);
  }

  /** The highest seq of this node's own operations held (applied or quarantined). */
  #ownHeld(): number {
    return this.#log.tipOf(this.nodeId)?.seq ?? 0;
  }

  /**
   * Compares the store's own-head record with the own operations it holds:
   * fewer means lost history (the guard refuses writes until peers send them
   * back, unless accepted). Brings a missing or older record up to date.
   */
  #checkOwnHead(acceptLostHistory: boolean): void {
    const record = this.#store.loadOwnHead();
    const held = this.#ownHeld();
    const recorded = record?.author === this.nodeId ? record.seq : 0;
    if (recorded > held && !acceptLostHistory) {
      this.#guard.noteRecordedHead(recorded);
      return;
    }
    const tip = this.#log.tipOf(this.nodeId);
    if (tip !== undefined && (recorded !== tip.seq || record?.id !== tip.id)) {
      this.#store.append([], { ownHead: { author: this.nodeId, seq: tip.seq, id: tip.id } });
    }
  }

  /**
   * Receives operations from a peer: verifies, applies what is causally ready
   * (and anything it releases from the pending buffer), quarantines forked
   * authors' operations, persists everything newly held in one transaction,
   * and notifies listeners.
   */
  receive(ops: readonly Operation[], options: ReceiveOptions = {}): BatchResult {
    this.#checkOpen("receive operations");
    const mark = this.#log.mark();
    const result = this.#log.receive(ops, options.amortise ?? false);
    this.#settle(mark, result, options.origin);
    for (let i = 0; i < ops.length; i++) {
      // Verified operations of our own key, held or not: proof of what this key signed.
      if (ops[i].author === this.nodeId && OWN_EVIDENCE.has(result.statuses[i])) {
        this.#guard.noteOwnEvidence(ops[i].seq);
      }
    }
    return result;
  }

  /**
   * Checks and records a fork proof from a peer; true when it was new (or
   * lowers the author's fork point), valid, about an author that may write,
   * and within the proof bounds. A refused proof is not stored.
   */
  addForkProof(proof: ForkProof, origin?: unknown): boolean {
    this.#checkOpen("add a fork proof");
    const mark = this.#log.mark();
    const result = this.#log.addForkProof(proof);
    if (result === undefined) return false;
    this.#settle(mark, result, origin);
    return true;
  }

  /** Persists what the log newly holds (undoing it when that fails), updates the document, notifies. */
  #settle(mark: LogMark, result: BatchResult, origin: unknown): void {
    if (result.held.length > 0) {
      try {
        // Peers can send these again, so a power loss may cost the last few (not a crash).
        this.#storeHeld(result.held, { durable: false });
      } catch (error) {
        this.#log.rollback(mark);
        throw error;
      }
    }
    if (result.rebuilt) {
      this.#gated.rebuild(this.#log.all(), true);
    } else {
      this.#gated.apply(result.applied, () => this.#log.all());
    }
    for (const proof of result.forks) this.#recordFork(proof, origin);
    this.#saver.add(result.held.length + result.forks.length, SAVE_STATE_AT_MOST);
    if (result.applied.length > 0) this.#applied.emit(result.applied, origin);
    if (result.quarantined.length > 0) this.#emitQuarantined(result.quarantined, origin);
  }

  #recordFork(proof: ForkProof, origin: unknown): void {
    this.#store.saveFork(proof);
    this.#forkListeners.emit(proof, origin);
  }

  #emitQuarantined(ops: readonly Operation[], origin: unknown): void {
    if (!this.#quarantineListeners.empty) {
      this.#quarantineListeners.emit(this.#log.withAnchors(ops), origin);
    }
  }

  /**
   * Records a peer's clock (`peer`: its node id). When it claims more of this
   * node's own operations than the replica holds, {@link Replica.commit}
   * refuses (reason "peer-claim") until they arrive, until that peer finishes
   * its catch-up to us without sending them ({@link notePeerCaughtUp}), or
   * until the claim expires (`claimTimeoutMs`), whichever comes first. The
   * session calls this for every clock frame.
   */
  notePeerClock(clock: VectorClock, peer = "unnamed peer"): void {
    const claimed = clock[this.nodeId];
    if (typeof claimed !== "number") return;
    this.#guard.noteClaim(peer, claimed, this.#ownHeld(), this.#now());
  }

  /**
   * Records that `peer` finished its catch-up to us: it sent every operation
   * it meant to for our clock (the session calls this when the peer's
   * `ready` arrives). A claim of it that is still unmet is shown empty and
   * stops blocking writes; and a catch-up round completed, which ends the
   * "starting" state.
   */
  notePeerCaughtUp(peer = "unnamed peer"): void {
    this.#guard.notePeerCaughtUp(peer, this.#ownHeld(), this.#now());
  }

  /**
   * The write guard: whether a write would be signed now, and why not
   * (`HuskiesNode.status().writeGate` reports it).
   * @ignore
   */
  get writeGate(): WriteGate {
    return {
      state: () =>
        this.#guard.state(this.#now(), this.#ownHeld(), this.#log.forkPoint(this.nodeId)),
      startupComplete: () => this.#guard.startupComplete(),
    };
  }

  /** Subscribes to newly applied operations; returns the unsubscribe function. */
  onApplied(listener: AppliedListener): () => void {
    return this.#applied.add(listener);
  }

  /** Subscribes to fork proofs; returns the unsubscribe function. */
  onFork(listener: ForkListener): () => void {
    return this.#forkListeners.add(listener);
  }

  /**
   * Subscribes to operations newly put in quarantine (received, or moved out
   * of the document by a fork), each forked author's preceded by the last
   * operation of its agreed chain so that a peer can place them, with who
   * delivered them. Peers need them whatever their clock says: honest
   * operations may depend on them. Returns the unsubscribe function.
   */
  onQuarantined(listener: (ops: readonly Operation[], origin: unknown) => void): () => void {
    return this.#quarantineListeners.add(listener);
  }

  /** Author -> count of operations applied (for a forked author, at most its fork point - 1). */
  clock(): VectorClock {
    return this.#log.clock();
  }

  /**
   * Author -> id of the last operation held.
   * @ignore
   */
  heads(): ClockHeads {
    return this.#log.heads();
  }

  /**
   * Operations a peer with this clock lacks, in an order it can apply.
   * @ignore
   */
  opsSince(clock: VectorClock, heads?: ClockHeads): Operation[] {
    return this.#log.opsSince(clock, heads);
  }

  /**
   * Every applied operation in apply order; over a store on disk, light references whose `mutation`,
   * `sig` and `deps` are read when asked for (`JSON.stringify` gives all; a spread, the rest).
   */
  operations(): readonly Operation[] {
    return this.#log.all();
  }

  /** The applied operation with this id (a quarantined one is not applied). */
  getOperation(id: OpId): Operation | undefined {
    return this.#log.get(id);
  }

  /** Operations of forked authors held in quarantine (stored, served to peers, never applied). */
  quarantined(): Operation[] {
    return this.#log.quarantined();
  }

  /** True when the operation is held in quarantine. */
  isQuarantined(id: OpId): boolean {
    return this.#log.isQuarantined(id);
  }

  /**
   * Every quarantined operation, each forked author's preceded by the last
   * operation of its agreed chain: what a session sends after the fork proofs.
   */
  quarantineToSend(): Operation[] {
    return this.#log.quarantineToSend();
  }

  /** Number and bytes of quarantined operations. */
  quarantineSize(): { count: number; bytes: number } {
    return this.#log.quarantineSize();
  }

  /** The author's fork point (from which seq its operations are quarantined), if forked. */
  forkPoint(author: NodeId): number | undefined {
    return this.#log.forkPoint(author);
  }

  /** Number of applied operations. */
  get size(): number {
    return this.#log.size;
  }

  /** Size of the pending buffer. */
  pendingSize(): { count: number; bytes: number } {
    return this.#log.pendingSize();
  }

  /** Fork proofs known. */
  forks(): ForkProof[] {
    return this.#log.forks();
  }

  /** True when `author` has been caught equivocating. */
  isForked(author: NodeId): boolean {
    return this.#log.isForked(author);
  }

  /** Deterministic hash of the document's visible state. */
  stateHash(): string {
    return this.#gated.document.stateHash();
  }

  /** Closes the store. Safe to call twice. */
  close(): void {
    if (this.#closed) return;
    this.#saver.add(0, 1);
    this.#closed = true;
    this.#applied.clear();
    this.#forkListeners.clear();
    this.#quarantineListeners.clear();
    this.#gated.clearListeners();
    this.#store.close();
  }
}
