/**
 * The node's reactions, as plain functions the composition root calls:
 * replica changes become events, session reports become events and
 * counters, and trust changes close or resync sessions.
 * @module
 */
import type { AccessPolicy, TrustStore } from "../auth/mod.ts";
import type { NodeId } from "../crdt/identity.ts";
import type { Replica } from "../crdt/replica.ts";
import { refusalMessage, type WriteGateState } from "../crdt/write_guard.ts";
import { CloseCode } from "../protocol/close_codes.ts";
import type { Direction, NodeEventEmitter } from "./events.ts";
import type { Hub } from "./hub.ts";
import type { Logger } from "./logger.ts";
import type { WriteGateStatus } from "./node_options.ts";
import type { Timers } from "./timers.ts";
import type { SessionEvent } from "./session_types.ts";
import type { SessionRunner } from "./session_runner.ts";

/** Operations applied and refused since the node started. */
export interface NodeCounters {
  /** Operations applied. */
  applied: number;
  /** Operations refused as invalid. */
  invalid: number;
  /** Operations refused as unauthorised. */
  unauthorized: number;
}

/** Turns the replica's applied operations and fork proofs into counters, logs and events. */
export function emitReplicaEvents(
  replica: Replica,
  hub: Hub<SessionRunner>,
  events: NodeEventEmitter,
  counters: NodeCounters,
  logger: Logger,
): void {
  replica.onApplied((held, origin) => {
    // In a mesh every held operation is forwarded, but only accepted ones are "applied".
    const members = replica.members;
    const operations = members ? held.filter((op) => members.accepts(op.id)) : held;
    if (operations.length < held.length) {
      const refused = held.filter((op) => !members!.accepts(op.id));
      counters.unauthorized += refused.length;
      logger.log("info", "operations held but not applied: the mesh's members rule refuses them", {
        count: refused.length,
        authors: [...new Set(refused.map((op) => op.author))],
      });
    }
    if (operations.length === 0) return;
    counters.applied += operations.length;
    const from = hub.memberOf(origin)?.peer;
    events.emit("applied", from === undefined ? { operations } : { operations, from });
  });
  replica.onFork((proof, origin) => {
    logger.log("warn", "fork detected: author signed two operations at one position", {
      author: proof.author,
      seq: proof.seq,
    });
    const from = hub.memberOf(origin)?.peer;
    const { author, seq } = proof;
    events.emit("fork-detected", { author, seq, proof, ...(from ? { from } : {}) });
  });
}

/** Turns one session report into the node's event (and counters). */
export function emitSessionEvent(
  events: NodeEventEmitter,
  counters: NodeCounters,
  event: SessionEvent,
  peer: NodeId,
  direction: Direction,
): void {
  switch (event.type) {
    case "refused": {
      const { invalid, unauthorized, byAuthor } = event;
      counters.invalid += invalid;
      counters.unauthorized += unauthorized;
      events.emit("refused", { kind: "operations", peer, invalid, unauthorized, byAuthor });
      break;
    }
    case "caught-up": {
      const { operations, durationMs } = event;
      events.emit("caught-up", { peer, direction, operations, durationMs });
      break;
    }
    case "live":
      events.emit("live", { peer, direction });
      break;
  }
}

/**
 * Watches the trust list: a session whose peer lost its trust closes (4403);
 * when keys were added or changed scope, every session asks its peer again
 * for what it lacks (operations refused before may be acceptable now).
 */
export function watchTrust(
  trust: TrustStore,
  policy: AccessPolicy,
  hub: Hub<SessionRunner>,
  logger: Logger,
  options: { signal: AbortSignal; intervalMs: number },
): void {
  trust.watch(({ added, removed, changed }) => {
    for (const session of hub.members()) {
      if (removed.includes(session.peer) && policy.connectScope(session.peer) === undefined) {
        logger.log("info", "trust removed; closing session", { peer: session.peer });
        session.close(CloseCode.NOT_TRUSTED, "key no longer trusted");
      } else if (added.length + changed.length > 0) {
        session.resync();
      }
    }
  }, {
    ...options,
    onError: (error) =>
      logger.log("error", "cannot reread the trust list; keeping the previous one", {
        error: error.message,
      }),
  });
}

/** The write gate as the node's status shows it (pure). */
export function writeGateStatus(gate: WriteGateState, now: number): WriteGateStatus {
  const refusal = gate.refusal;
  const lost = gate.lostHistory ? { lostHistory: { ...gate.lostHistory } } : {};
  if (refusal === null) return { state: "open", reason: null, retryable: true, ...lost };
  const reason = refusalMessage(refusal, now);
  switch (refusal.reason) {
    case "own-key-forked":
      return { state: "own-key-forked", reason, retryable: false };
    case "lost-history":
    case "own-evidence":
      return { state: "lost-history", reason, retryable: true, ...lost };
    case "starting":
      return { state: "starting", reason, retryable: true, until: refusal.until };
    case "peer-claim":
      return { state: "claim", reason, retryable: true, until: refusal.until };
  }
}

/**
 * Says loudly at open what the write gate refuses for: a lost own history
 * (ERROR: what was lost and how to recover) or a forked own key (ERROR).
 */
export function reportWriteGateAtOpen(replica: Replica, logger: Logger, now: number): void {
  const gate = replica.writeGate.state();
  if (gate.lostHistory) {
    const { recorded, held } = gate.lostHistory;
    logger.log(
      "error",
      `lost history: the store holds ${held} of this node's own operations but its durable ` +
        `record says it signed ${recorded}; ${recorded - held} recent own operations are missing ` +
        "(a truncated WAL, or an older ops.db restored). Writes are refused until peers send " +
        "them back; keep this node connected to its peers. After a deliberate restore with no " +
        "peer holding them, restart with `huskies serve --accept-lost-history` (risky: if a " +
        "peer does hold them, the next write forks this node's key)",
      { recorded, held, missing: recorded - held },
    );
  }
  if (gate.refusal?.reason === "own-key-forked") {
    logger.log("error", refusalMessage(gate.refusal, now), {
      forkPoint: gate.refusal.forkPoint,
    });
  }
}

/**
 * Ends the start-up grace: when a peer's catch-up to us completes (the
 * session's caught-up event; the replica has already ended the "starting"
 * state), or when `graceMs` passes with none, with a WARN that writes are now
 * allowed without having heard from a peer. Returns a function that cancels
 * the grace timer (on close).
 */
export function watchStartup(
  replica: Replica,
  events: NodeEventEmitter,
  timers: Timers,
  logger: Logger,
  graceMs: number,
): () => void {
  if (graceMs <= 0) return () => {};
  const started = timers.now();
  let waiting = true;
  const done = () => {
    waiting = false;
    stopListening();
    timers.clearTimeout(timer);
  };
  const stopListening = events.on("caught-up", ({ peer, operations }) => {
    if (!waiting) return;
    done();
    logger.log("info", "start-up: caught up with a peer; writes allowed", {
      peer,
      operations,
      afterMs: timers.now() - started,
    });
  });
  const timer = timers.setTimeout(() => {
    if (!waiting) return;
    done();
    replica.writeGate.startupComplete();
    logger.log(
      "warn",
      `start-up grace of ${graceMs / 1000} s passed without a catch-up from any peer; writes ` +
        "are now allowed without having heard from a peer (if a peer holds newer operations of " +
        "this node's key, they can fork it)",
      { graceMs },
    );
  }, graceMs);
  return done;
}

/** Shortest interval between two refused-operations summaries, and between catch-up progress logs, ms. */
export const OPERATOR_LOG_INTERVAL_MS = 10_000;

/** Refused operations per peer and author, as the summary log counts them. */
type RefusalTally = Map<NodeId, Map<NodeId, { invalid: number; unauthorized: number }>>;

/** Formats a refused-operations tally as one line per peer (pure). */
export function formatRefusals(tally: RefusalTally): string {
  const parts: string[] = [];
  for (const [peer, authors] of tally) {
    const each = [...authors].map(([author, { invalid, unauthorized }]) => {
      const kinds = [
        invalid ? `${invalid} invalid` : "",
        unauthorized ? `${unauthorized} unauthorized` : "",
      ].filter(Boolean).join(", ");
      return `${author.slice(0, 12)}: ${kinds}`;
    });
    parts.push(`from peer ${peer.slice(0, 12)} by ${each.join("; ")}`);
  }
  return parts.join(" | ");
}

/**
 * Logs refused operations as a rate-limited WARN summary: at once for the
 * first, then at most once per {@link OPERATOR_LOG_INTERVAL_MS} with what
 * accumulated, naming the peers and authors with counts and the fix for
 * unauthorized authors. Returns a function that stops it.
 */
export function summariseRefusals(
  events: NodeEventEmitter,
  timers: Timers,
  logger: Logger,
): () => void {
  let tally: RefusalTally = new Map();
  let timer: unknown;
  let lastAt = -Infinity;
  const flush = () => {
    timer = undefined;
    if (tally.size === 0) return;
    lastAt = timers.now();
    let unauthorized = false;
    let total = 0;
    for (const authors of tally.values()) {
      for (const counts of authors.values()) {
        total += counts.invalid + counts.unauthorized;
        unauthorized ||= counts.unauthorized > 0;
      }
    }
    const authors = [...new Set([...tally.values()].flatMap((a) => [...a.keys()]))];
    logger.log(
      "warn",
      `refused ${total} operation${total === 1 ? "" : "s"}: ${formatRefusals(tally)}` +
        (unauthorized
          ? "; unauthorized authors lack write scope here (`huskies trust add <author>` if they " +
            "should write)"
          : "; invalid operations failed verification (a buggy or hostile peer)"),
      { operations: total, authors },
    );
    tally = new Map();
  };
  const stop = events.on("refused", (event) => {
    if (event.kind !== "operations") return;
    let authors = tally.get(event.peer);
    if (authors === undefined) tally.set(event.peer, authors = new Map());
    for (const [author, counts] of Object.entries(event.byAuthor)) {
      const known = authors.get(author) ?? { invalid: 0, unauthorized: 0 };
      known.invalid += counts.invalid;
      known.unauthorized += counts.unauthorized;
      authors.set(author, known);
    }
    if (timer !== undefined) return;
    const wait = lastAt + OPERATOR_LOG_INTERVAL_MS - timers.now();
    if (wait <= 0) flush();
    else timer = timers.setTimeout(flush, wait);
  });
  return () => {
    stop();
    if (timer !== undefined) timers.clearTimeout(timer);
    flush();
  };
}

/**
 * Logs each peer's catch-up to us: progress (operations received so far,
 * at most once per {@link OPERATOR_LOG_INTERVAL_MS} per peer) and completion
 * with the count and duration. Returns a function that stops it.
 */
export function logCatchUps(events: NodeEventEmitter, timers: Timers, logger: Logger): () => void {
  const running = new Map<NodeId, { received: number; since: number; loggedAt: number }>();
  const stops = [
    events.on("peer-authenticated", ({ peer }) => {
      const now = timers.now();
      running.set(peer, { received: 0, since: now, loggedAt: now });
    }),
    events.on("applied", ({ operations, from }) => {
      const entry = from === undefined ? undefined : running.get(from);
      if (entry === undefined) return;
      entry.received += operations.length;
      const now = timers.now();
      if (now - entry.loggedAt < OPERATOR_LOG_INTERVAL_MS) return;
      entry.loggedAt = now;
      logger.log("info", "catching up from peer", {
        peer: from,
        operations: entry.received,
        elapsedMs: now - entry.since,
      });
    }),
    events.on("caught-up", ({ peer, operations, durationMs }) => {
      running.delete(peer);
      logger.log("info", "caught up from peer", { peer, operations, durationMs });
    }),
    events.on("session-closed", ({ peer }) => running.delete(peer)),
  ];
  return () => stops.forEach((stop) => stop());
}

/** How often a node looks whether its document is due to be saved, ms. */
export const STATE_SAVE_CHECK_MS = 1_000;

/**
 * Saves the replica's document when it is due ({@link Replica.saveStateIfDue})
 * and no catch-up runs (`busy()` is false), looking every
 * {@link STATE_SAVE_CHECK_MS}: a sync of many operations is not held up by
 * the save they make due. Returns the function that stops it.
 */
export function saveStateWhenQuiet(
  replica: Replica,
  timers: Timers,
  busy: () => boolean,
): () => void {
  let handle: ReturnType<Timers["setTimeout"]>;
  const look = () => {
    if (!busy()) replica.saveStateIfDue();
    handle = timers.setTimeout(look, STATE_SAVE_CHECK_MS);
  };
  handle = timers.setTimeout(look, STATE_SAVE_CHECK_MS);
  return () => timers.clearTimeout(handle);
}
