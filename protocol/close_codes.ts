/**
 * WebSocket close codes with meaning, shared by both ends of a connection.
 * Codes marked permanent stop a rendezvous client from retrying.
 * @module
 */

/** Named close codes used by huskies-sync. */
export const CloseCode = {
  /** Normal closure. */
  NORMAL: 1000,
  /** The node is shutting down. */
  GOING_AWAY: 1001,
  /** The peer broke the protocol (malformed or unexpected frame). */
  PROTOCOL_ERROR: 1002,
  /** A frame was larger than the limit. */
  TOO_BIG: 1009,
  /** Something failed on our side (storage, a data file); the peer may retry later. */
  INTERNAL_ERROR: 1011,
  /** Handshake proof (signature) was invalid. Permanent. */
  BAD_PROOF: 4401,
  /** The peer's key is not trusted (or its trust was removed). Permanent. */
  NOT_TRUSTED: 4403,
  /** A join token was refused: unknown, expired, used up or revoked (see reason). Permanent. */
  TOKEN_REFUSED: 4405,
  /** The hub's key is not the one the client pinned. Permanent. */
  HUB_KEY_MISMATCH: 4406,
  /** The handshake did not finish in time. */
  HANDSHAKE_TIMEOUT: 4408,
  /** The peer was silent longer than the keepalive allows. */
  KEEPALIVE_TIMEOUT: 4410,
  /** The peer sent too many operations that failed verification. */
  TOO_MANY_INVALID: 4422,
  /** The peer speaks an incompatible protocol version. Permanent. */
  INCOMPATIBLE_VERSION: 4426,
  /** Too many unauthenticated connections or handshake attempts. */
  RATE_LIMITED: 4429,
  /** The peer fell too far behind (outbound buffer over its limit). */
  SLOW_CONSUMER: 4508,
} as const;

/** One of the {@link CloseCode} values. */
export type CloseCodeValue = typeof CloseCode[keyof typeof CloseCode];

const PERMANENT = new Set<number>([
  CloseCode.BAD_PROOF,
  CloseCode.NOT_TRUSTED,
  CloseCode.TOKEN_REFUSED,
  CloseCode.HUB_KEY_MISMATCH,
  CloseCode.INCOMPATIBLE_VERSION,
]);

/**
 * True when a close with `code` means retrying cannot succeed without an operator's change.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { CloseCode, isPermanentClose } from "@huskies/sync";
 *
 * assert.equal(isPermanentClose(CloseCode.NOT_TRUSTED), true); // 4403: trust the key first
 * assert.equal(isPermanentClose(CloseCode.GOING_AWAY), false); // 1001: retry later
 * ```
 */
export function isPermanentClose(code: number): boolean {
  return PERMANENT.has(code);
}
