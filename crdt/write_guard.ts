/**
 * The write guard: the one rule for whether a replica may sign a new
 * operation now. Signing at a position of its own chain that it already used
 * (because it lost history, or has not yet heard what its peers hold) forks
 * the node's own key, which takes acknowledged writes away from healthy
 * peers. The guard refuses while there is evidence of that risk:
 *
 * - **Own key forked**: the node already signed two operations at one
 *   position; its writes would be quarantined everywhere. Permanent.
 * - **Lost history**: the store's durable record of the node's own chain
 *   head is ahead of what the store holds (a truncated WAL, an older store
 *   restored). Lifts when peers have sent the missing operations back, or
 *   when the operator accepts the loss (`acceptLostHistory`).
 * - **Own evidence**: a validly signed operation of the node's own key at a
 *   seq above what it holds arrived (it can only have been signed by this
 *   key). Lifts when the operations up to it are applied.
 * - **Starting** (only when a start-up grace is configured): no signing until
 *   a catch-up round with one peer completed ({@link WriteGuard.notePeerCaughtUp}
 *   or {@link WriteGuard.startupComplete}) or the grace elapsed.
 * - **Peer claim**: a peer's clock says it holds more of the node's own
 *   operations than the node does. A claim is not evidence (anyone can send
 *   a number): it blocks only until the operations arrive, until the claiming
 *   peer finishes its catch-up to us without sending them (shown empty), or
 *   until {@link WriteGuardOptions.claimTimeoutMs} passes with no progress
 *   (no more of our own operations arriving; only our own signed operations
 *   count, so a forged claim cannot extend itself), whichever comes first. A peer whose claim was shown empty or
 *   expired is not believed again for {@link WriteGuardOptions.distrustMs}, so
 *   a claim can never block writes for long.
 *
 * Pure: every input, the time included, comes from the caller.
 * @module
 */

/** Why the replica may not sign now. */
export type WriteRefusal =
  | { readonly reason: "own-key-forked"; readonly forkPoint: number }
  | { readonly reason: "lost-history"; readonly recorded: number; readonly held: number }
  | { readonly reason: "own-evidence"; readonly seen: number; readonly held: number }
  | { readonly reason: "starting"; readonly until: number }
  | {
    readonly reason: "peer-claim";
    readonly peer: string;
    readonly claimed: number;
    readonly held: number;
    readonly until: number;
  };

/** One reason of {@link WriteRefusal}. */
export type WriteRefusalReason = WriteRefusal["reason"];

/** Options for {@link WriteGuard}. */
export interface WriteGuardOptions {
  /** Longest a peer's claim about our own operations blocks writes, ms. @default 15000 */
  claimTimeoutMs?: number;
  /** How long a peer whose claim was shown empty or expired is not believed again, ms. @default 600000 */
  distrustMs?: number;
  /**
   * Start in the "starting" state for at most this long, ms: no signing until
   * a catch-up round with a peer completed or this elapsed. Undefined (the
   * default) starts ready, for a replica used without peers.
   */
  startupGraceMs?: number;
  /** Accept a lost history found at open (after a deliberate restore). @default false */
  acceptLostHistory?: boolean;
}

/** A peer's unresolved claim. */
interface Claim {
  claimed: number;
  until: number;
  /** Own operations held when the deadline was last set. */
  held: number;
}

/** What the guard knows, for status pages. */
export interface WriteGateState {
  /** True when a write would be signed now. */
  canWrite: boolean;
  /** The refusal a write would get now, if any. */
  refusal: WriteRefusal | null;
  /** The store lost own history (found at open), while it is not restored or accepted. */
  lostHistory: { recorded: number; held: number } | null;
  /** True while starting (see {@link WriteGuardOptions.startupGraceMs}). */
  starting: boolean;
  /** Unresolved peer claims. */
  claims: { peer: string; claimed: number; until: number }[];
}

/** Default {@link WriteGuardOptions.claimTimeoutMs}. */
export const DEFAULT_CLAIM_TIMEOUT_MS = 15_000;
/** Default {@link WriteGuardOptions.distrustMs}. */
export const DEFAULT_DISTRUST_MS = 600_000;

/** Decides whether the replica may sign now, from the evidence it is given. */
export class WriteGuard {
  readonly #claimTimeoutMs: number;
  readonly #distrustMs: number;
  #startingUntil: number | undefined;
  #lostRecorded = 0;
  #ownSeen = 0;
  readonly #claims = new Map<string, Claim>();
  readonly #distrusted = new Map<string, number>();

  /** Creates a guard at time `now` (ms). */
  constructor(options: WriteGuardOptions = {}, now = 0) {
    this.#claimTimeoutMs = options.claimTimeoutMs ?? DEFAULT_CLAIM_TIMEOUT_MS;
    this.#distrustMs = options.distrustMs ?? DEFAULT_DISTRUST_MS;
    if (options.startupGraceMs !== undefined) this.#startingUntil = now + options.startupGraceMs;
  }

  /** Records that the store's durable own-head record says `recorded` own operations were signed. */
  noteRecordedHead(recorded: number): void {
    if (recorded > this.#lostRecorded) this.#lostRecorded = recorded;
  }

  /** Forgets a lost history (the operator accepted it). */
  acceptLostHistory(): void {
    this.#lostRecorded = 0;
  }

  /** Records a validly signed own operation at `seq`, held or not. */
  noteOwnEvidence(seq: number): void {
    if (seq > this.#ownSeen) this.#ownSeen = seq;
  }

  /** Ends the starting state. */
  startupComplete(): void {
    this.#startingUntil = undefined;
  }

  /** Records `peer`'s claim that it holds `claimed` of our own operations; we hold `held`. */
  noteClaim(peer: string, claimed: number, held: number, now: number): void {
    if (!(claimed > held)) return;
    if ((this.#distrusted.get(peer) ?? -Infinity) > now) return;
    const known = this.#claims.get(peer);
    if (known === undefined) {
      this.#claims.set(peer, { claimed, until: now + this.#claimTimeoutMs, held });
    } else if (claimed > known.claimed) known.claimed = claimed; // the deadline does not move
  }

  /**
   * `peer` finished its catch-up to us (sent everything it meant to for our
   * clock). A claim of it that is still above `held` is shown empty: dropped,
   * and the peer is not believed again for a while. Also ends the starting
   * state: a catch-up round with a peer completed.
   */
  notePeerCaughtUp(peer: string, held: number, now: number): void {
    this.#startingUntil = undefined;
    const claim = this.#claims.get(peer);
    if (claim === undefined) return;
    this.#claims.delete(peer);
    if (claim.claimed > held) this.#distrusted.set(peer, now + this.#distrustMs);
  }

  /** Drops satisfied and expired claims (their peers are distrusted); progress extends a claim. */
  #prune(held: number, now: number): void {
    for (const [peer, claim] of this.#claims) {
      if (claim.claimed <= held) this.#claims.delete(peer);
      else if (held > claim.held) {
        // Our own operations are arriving: the catch-up is under way.
        claim.held = held;
        claim.until = now + this.#claimTimeoutMs;
      } else if (claim.until <= now) {
        this.#claims.delete(peer);
        this.#distrusted.set(peer, now + this.#distrustMs);
      }
    }
    for (const [peer, until] of this.#distrusted) if (until <= now) this.#distrusted.delete(peer);
  }

  /**
   * The refusal a write would get now, or undefined when it may be signed.
   * `held` is the highest seq of our own operations held; `forkPoint` our own
   * key's fork point, if forked.
   */
  check(now: number, held: number, forkPoint: number | undefined): WriteRefusal | undefined {
    if (forkPoint !== undefined) return { reason: "own-key-forked", forkPoint };
    if (this.#lostRecorded > held) {
      return { reason: "lost-history", recorded: this.#lostRecorded, held };
    }
    this.#lostRecorded = 0; // restored: the record is met
    if (this.#ownSeen > held) return { reason: "own-evidence", seen: this.#ownSeen, held };
    if (this.#startingUntil !== undefined) {
      if (now < this.#startingUntil) return { reason: "starting", until: this.#startingUntil };
      this.#startingUntil = undefined;
    }
    this.#prune(held, now);
    let worst: [string, Claim] | undefined;
    for (const entry of this.#claims) {
      if (!worst || entry[1].claimed > worst[1].claimed) worst = entry;
    }
    if (worst) {
      const [peer, { claimed, until }] = worst;
      return { reason: "peer-claim", peer, claimed, held, until };
    }
    return undefined;
  }

  /** What the guard knows now, for status. */
  state(now: number, held: number, forkPoint: number | undefined): WriteGateState {
    const refusal = this.check(now, held, forkPoint) ?? null;
    return {
      canWrite: refusal === null,
      refusal,
      lostHistory: this.#lostRecorded > held ? { recorded: this.#lostRecorded, held } : null,
      starting: this.#startingUntil !== undefined && now < this.#startingUntil,
      claims: [...this.#claims].map(([peer, { claimed, until }]) => ({ peer, claimed, until })),
    };
  }
}

/** Seconds until `until`, rounded up, for messages. */
function secondsUntil(until: number, now: number): number {
  return Math.max(1, Math.ceil((until - now) / 1000));
}

/** The "Cannot commit: ..." message for a refusal: what happened and what to do. */
export function refusalMessage(refusal: WriteRefusal, now: number): string {
  switch (refusal.reason) {
    case "own-key-forked":
      return `Cannot commit: this node's own key is forked (it signed two different operations ` +
        `at seq ${refusal.forkPoint}, so another process or machine uses this node.key); every ` +
        "node would quarantine its new operations. Stop every other copy of this key, then give " +
        "this node a new key (`huskies keys create --force`) and an empty store, and let it " +
        "resync from its peers";
    case "lost-history":
      return `Cannot commit: this node's store holds ${refusal.held} of its own operations but ` +
        `its durable record says it signed ${refusal.recorded} (recent writes were lost, or an ` +
        "older store was restored); it accepts writes again once peers have sent the missing " +
        "operations back. After a deliberate restore, accept the loss by starting it with " +
        "acceptLostHistory (`huskies serve --accept-lost-history`)";
    case "own-evidence":
      return `Cannot commit: a peer sent this node's own operation ${refusal.seen} but it holds ` +
        `${refusal.held} of its own; it waits for the ones between, so that it never signs a ` +
        "position twice. Retry shortly";
    case "starting":
      return "Cannot commit: the node is starting and has not yet heard from a peer what its " +
        `own chain holds; retry in ${secondsUntil(refusal.until, now)} s at most`;
    case "peer-claim":
      return `Cannot commit: peer ${refusal.peer.slice(0, 12)} says it holds ${refusal.claimed} ` +
        `of this node's own operations but it holds ${refusal.held}; it waits up to ` +
        `${secondsUntil(refusal.until, now)} s for them to arrive. Retry shortly`;
  }
}

/**
 * A write the replica refused to sign. Nothing was signed or stored.
 * `retryable` is false only for a forked own key.
 */
export class WriteRefusedError extends Error {
  /**
   * Why: `own-key-forked` (permanent), `lost-history`, `own-evidence`,
   * `starting` or `peer-claim` (each lifts by itself once peers caught us up).
   */
  readonly reason: "own-key-forked" | "lost-history" | "own-evidence" | "starting" | "peer-claim";
  /** True when the same write may succeed later without an operator acting. */
  readonly retryable: boolean;
  /**
   * The refusal with its details.
   * @ignore
   */
  readonly refusal: WriteRefusal;

  /**
   * Creates the error for `refusal`, at time `now` (for the message).
   * @ignore
   */
  constructor(refusal: WriteRefusal, now: number) {
    super(refusalMessage(refusal, now));
    this.name = "WriteRefusedError";
    this.reason = refusal.reason;
    this.retryable = refusal.reason !== "own-key-forked";
    this.refusal = refusal;
  }
}
