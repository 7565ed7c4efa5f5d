/**
 * The node's reactions, as plain functions the composition root calls:
 * replica changes become events, session reports become events and
 * counters, and trust changes close or resync sessions.
 * @module
 */
import type { AccessPolicy, TrustStore } from "../auth/mod.ts";
import type { NodeId } from "../crdt/identity.ts";
import type { Replica } from "../crdt/replica.ts";
import { CloseCode } from "../protocol/close_codes.ts";
import type { Direction, NodeEventEmitter } from "./events.ts";
import type { Hub } from "./hub.ts";
import type { Logger } from "./logger.ts";
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
