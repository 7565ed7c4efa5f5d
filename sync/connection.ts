/**
 * One connection over a {@link Channel}: the authentication handshake under
 * a deadline, then a sync session. Transport-independent; the node runs every
 * inbound and outbound connection through {@link runConnection}.
 * @module
 */
import { HANDSHAKE_TIMEOUT_CLOSE, type HandshakeDone, type Step } from "../auth/handshake.ts";
import type { Scope } from "../auth/trust.ts";
import type { NodeId } from "../crdt/identity.ts";
import { CloseCode } from "../protocol/close_codes.ts";
import type { Channel } from "./channel.ts";
import type { Direction } from "./events.ts";
import type { Logger } from "./logger.ts";
import type { Handshake } from "./preauth_handshakes.ts";
import type { SessionRunner } from "./session_runner.ts";
import type { Timers } from "./timers.ts";

/** How a connection ended. */
export interface ConnectionOutcome {
  /** The close code: our refusal's, or the transport's. */
  code: number;
  /** The close reason. */
  reason: string;
  /** The authenticated peer, when the handshake succeeded. */
  peer?: NodeId;
  /** The scope granted, when the handshake succeeded. */
  scope?: Scope;
  /** When the handshake succeeded (ms on the node's timers). */
  authenticatedAt?: number;
}

/** A handshake refusal, for the node's `refused` event. */
export interface HandshakeRefusal {
  /** Close code. */
  code: number;
  /** Close reason. */
  reason: string;
  /** The refused key, when known. */
  key?: NodeId;
}

/** What {@link runConnection} needs. */
export interface ConnectionOptions {
  /** The open transport. */
  channel: Channel;
  /** Whether we accepted or dialled it. */
  direction: Direction;
  /** The handshake to run (server side inbound, client side outbound, or pre-authenticated). */
  handshake: Handshake;
  /** The clock and timers (the handshake deadline runs on them). */
  timers: Timers;
  /** Time allowed for the handshake, ms. */
  authTimeoutMs: number;
  /** Who is on the other end, for logs and events (an address or URL). */
  remote: string;
  /** The logger. */
  logger: Logger;
  /** Starts the session once authenticated; returns its runner. */
  startSession: (done: HandshakeDone, channel: Channel) => SessionRunner;
  /** Called once when the handshake ends: true when it succeeded. */
  onHandshakeEnd?: (authenticated: boolean) => void;
  /** Called when the handshake is refused (by either side, or times out). */
  onRefused?: (refusal: HandshakeRefusal) => void;
}

/** Codes with which a server refuses a key whose proof verified. */
const KEY_REFUSALS: ReadonlySet<number> = new Set([CloseCode.NOT_TRUSTED, CloseCode.TOKEN_REFUSED]);

/** The key an `auth` frame claims, for reporting a refusal (already verified by the handshake). */
function claimedKey(text: string): NodeId | undefined {
  try {
    const key = (JSON.parse(text) as { key?: unknown }).key;
    return typeof key === "string" ? key : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Runs the handshake on `channel`, then a sync session; resolves (never
 * rejects) when the channel has closed.
 */
export function runConnection(options: ConnectionOptions): Promise<ConnectionOutcome> {
  const { channel, handshake, timers, logger, remote } = options;
  const { promise, resolve } = Promise.withResolvers<ConnectionOutcome>();
  let runner: SessionRunner | undefined;
  let done: HandshakeDone | undefined;
  let authenticatedAt: number | undefined;
  let refusal: HandshakeRefusal | undefined;
  let handshakeOver = false;
  let settled = false;
  /**
   * The connection is over for us: resolve now rather than when the transport
   * confirms the close (on a dead link that can take as long as TCP does).
   */
  const finish = (code: number, reason: string) => {
    if (settled) return;
    settled = true;
    resolve({
      code: refusal?.code ?? code,
      reason: refusal?.reason ?? reason,
      ...(done ? { peer: done.peer, scope: done.scope, authenticatedAt } : {}),
    });
  };
  const endHandshake = (authenticated: boolean) => {
    if (handshakeOver) return;
    handshakeOver = true;
    timers.clearTimeout(deadline);
    options.onHandshakeEnd?.(authenticated);
  };
  const refuse = (close: { code: number; reason: string }, key?: NodeId) => {
    refusal = { ...close, ...(key === undefined ? {} : { key }) };
    endHandshake(false);
    channel.close(close.code, close.reason);
    options.onRefused?.(refusal);
    finish(close.code, close.reason);
  };
  const internalError = (error: unknown) => {
    // For example the token or trust file could not be read or written.
    logger.log("error", "handshake failed on our side", {
      remote,
      error: (error as Error).message,
    });
    refusal = { code: CloseCode.INTERNAL_ERROR, reason: "internal error" };
    endHandshake(false);
    channel.close(CloseCode.INTERNAL_ERROR, "internal error");
    finish(refusal.code, refusal.reason);
  };
  const deadline = timers.setTimeout(() => {
    logger.log("warn", "handshake timed out", { remote });
    refuse(HANDSHAKE_TIMEOUT_CLOSE);
  }, options.authTimeoutMs);
  const apply = (step: Step, text?: string) => {
    if (step.send !== undefined) channel.send(step.send);
    if (step.close) {
      logger.log("warn", "handshake refused", { remote, ...step.close });
      const key = options.direction === "inbound" && text !== undefined &&
          KEY_REFUSALS.has(step.close.code)
        ? claimedKey(text)
        : undefined;
      refuse(step.close, key);
    } else if (step.done) {
      done = step.done;
      authenticatedAt = timers.now();
      endHandshake(true);
      runner = options.startSession(step.done, channel);
      runner.ended.then(({ code, reason }) => finish(code, reason));
    }
  };
  // Start before listening: frames that arrived early are delivered as soon as we listen.
  try {
    apply(handshake.start());
  } catch (error) {
    internalError(error);
  }
  channel.listen({
    frame(data) {
      if (settled || refusal) return;
      if (runner) {
        runner.frame(data);
        return;
      }
      try {
        apply(
          typeof data === "string" ? handshake.receive(data) : handshake.receiveBinary(),
          typeof data === "string" ? data : undefined,
        );
      } catch (error) {
        internalError(error);
      }
    },
    closed(code, reason) {
      endHandshake(false);
      runner?.transportClosed(code, reason);
      if (!settled && !done && !refusal && options.direction === "outbound" && code >= 4000) {
        // The hub refused us during the handshake.
        options.onRefused?.({ code, reason });
      }
      finish(code, reason);
    },
  });
  return promise;
}
