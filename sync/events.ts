/**
 * The node's typed events and a small emitter with an awaitable `once`.
 * @module
 */
import type { NodeId } from "../crdt/identity.ts";
import type { MemberRecord } from "../crdt/membership.ts";
import type { Operation } from "../crdt/operation.ts";
import type { ForkProof } from "../crdt/store.ts";
import type { Scope } from "../auth/trust.ts";
import type { Timers } from "./timers.ts";

/** Which side opened a connection. */
export type Direction = "inbound" | "outbound";

/** Every event a node emits, by type. */
export interface NodeEvents {
  /** A peer completed the handshake; its sync session starts. */
  "peer-authenticated": {
    peer: NodeId;
    direction: "inbound" | "outbound";
    remote: string;
    scope: Scope;
  };
  /** The peer's catch-up arrived (its `ready`): operations received so far and time since authentication. */
  "caught-up": {
    peer: NodeId;
    direction: "inbound" | "outbound";
    operations: number;
    durationMs: number;
  };
  /** Catch-up finished both ways; live operations flow. */
  "live": { peer: NodeId; direction: "inbound" | "outbound" };
  /** A sync session ended. */
  "session-closed": {
    peer: NodeId;
    direction: "inbound" | "outbound";
    code: number;
    reason: string;
  };
  /**
   * A refusal: a handshake refused (by us or the peer; `key` when the refused
   * key is known), or operations from a peer refused, with counts per author.
   */
  "refused":
    | {
      kind: "handshake";
      direction: "inbound" | "outbound";
      code: number;
      reason: string;
      remote: string;
      key?: NodeId;
    }
    | {
      kind: "operations";
      peer: NodeId;
      invalid: number;
      unauthorized: number;
      byAuthor: Record<NodeId, { invalid: number; unauthorized: number }>;
    };
  /** An author was caught signing two operations at one position. */
  "fork-detected": { author: NodeId; seq: number; proof: ForkProof; from?: NodeId };
  /**
   * Operations were applied to the document; `from` is the peer that
   * delivered them (absent: local). In a mesh, only those the membership
   * rule accepts.
   */
  "applied": { operations: readonly Operation[]; from?: NodeId };
  /** The mesh's member list may have changed (a grant, revocation, or the mesh joined). */
  "members-changed": { members: MemberRecord[] };
  /**
   * The background check of the store found a row that does not match its
   * id (`store_check.ts`); the node stops. `message` names the row.
   */
  "store-corrupt": { message: string };
}

/** The name of a node event. */
export type NodeEventType = keyof NodeEvents;

/** A listener for one event type. */
export type NodeEventListener<K extends NodeEventType> = (event: NodeEvents[K]) => void;

/** Options for {@link NodeEventEmitter.once}. */
export interface OnceOptions<K extends NodeEventType> {
  /** Only an event for which this returns true settles the promise. */
  filter?: (event: NodeEvents[K]) => boolean;
  /** Rejects (with the signal's reason) when aborted. */
  signal?: AbortSignal;
  /** Rejects with a "Timed out" error after this many ms (on the node's timers). */
  timeoutMs?: number;
}

/** Typed listeners per event type; a throwing listener cannot break the node. */
export class NodeEventEmitter {
  readonly #listeners = new Map<NodeEventType, Set<(event: never) => void>>();
  readonly #timers: Timers;
  readonly #onListenerError: (error: unknown) => void;

  /** Creates an emitter whose `once` timeouts run on `timers`. */
  constructor(timers: Timers, onListenerError: (error: unknown) => void) {
    this.#timers = timers;
    this.#onListenerError = onListenerError;
  }

  /** Calls `listener` on every `type` event; returns the unsubscribe function. */
  on<K extends NodeEventType>(type: K, listener: NodeEventListener<K>): () => void {
    let set = this.#listeners.get(type);
    if (set === undefined) this.#listeners.set(type, set = new Set());
    set.add(listener as (event: never) => void);
    return () => set.delete(listener as (event: never) => void);
  }

  /** Delivers `event` to every `type` listener. */
  emit<K extends NodeEventType>(type: K, event: NodeEvents[K]): void {
    const set = this.#listeners.get(type);
    if (set === undefined) return;
    for (const listener of [...set]) {
      try {
        (listener as NodeEventListener<K>)(event);
      } catch (error) {
        this.#onListenerError(error);
      }
    }
  }

  /** Resolves with the next `type` event that passes `filter`. */
  once<K extends NodeEventType>(type: K, options: OnceOptions<K> = {}): Promise<NodeEvents[K]> {
    const { filter, signal, timeoutMs } = options;
    if (signal?.aborted) return Promise.reject(signal.reason);
    const { promise, resolve, reject } = Promise.withResolvers<NodeEvents[K]>();
    let timer: unknown;
    const cleanup = () => {
      stop();
      if (timer !== undefined) this.#timers.clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
    };
    const onAbort = () => (cleanup(), reject(signal!.reason));
    const stop = this.on(type, (event) => {
      if (filter && !filter(event)) return;
      cleanup();
      resolve(event);
    });
    signal?.addEventListener("abort", onAbort, { once: true });
    if (timeoutMs !== undefined) {
      timer = this.#timers.setTimeout(() => {
        cleanup();
        reject(new Error(`Timed out after ${timeoutMs} ms waiting for the "${type}" event`));
      }, timeoutMs);
    }
    return promise;
  }
}
