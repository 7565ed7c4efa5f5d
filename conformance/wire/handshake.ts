/**
 * The authentication handshake of PROTOCOL.md §3: the transcript both
 * signatures cover and the three messages.
 * @module
 */

import { hex, isHex128, isHex64, unhex, utf8 } from "./bytes.ts";
import { type KeyPair, verifySignature } from "./ed25519.ts";

/** The protocol version named in `challenge`. */
export const PROTOCOL_VERSION = "huskies-sync/1";
/** Largest handshake frame, UTF-8 bytes (§3.2). */
export const HANDSHAKE_FRAME_LIMIT = 4096;
/** Handshake deadline, ms (§3.2). */
export const HANDSHAKE_TIMEOUT_MS = 10_000;

/** Which signature a transcript is for. */
export type Role = "client" | "server";

/** The values a transcript binds (hex strings exactly as sent). */
export interface TranscriptParts {
  /** The server's challenge. */
  serverChallenge: string;
  /** The client's challenge. */
  clientChallenge: string;
  /** The server's node id. */
  serverKey: string;
  /** The client's node id. */
  clientKey: string;
}

/** First line of the in-band transcript (§3.4). */
export const AUTH_DOMAIN = "huskies-sync/auth/v1";
/** First line of the transcript signed before the upgrade (§3.10). */
export const PREAUTH_DOMAIN = "huskies-sync/preauth/v1";

/**
 * The transcript text (§3.4): six lines joined by `\n`, no trailing newline;
 * the first is `domain` (§3.10 uses {@link PREAUTH_DOMAIN}).
 */
export function transcript(role: Role, parts: TranscriptParts, domain = AUTH_DOMAIN): string {
  return [
    domain,
    role,
    parts.serverChallenge,
    parts.clientChallenge,
    parts.serverKey,
    parts.clientKey,
  ].join("\n");
}

/** Hex signature by `key` over `transcript(role, parts, domain)`. */
export function signTranscript(
  key: KeyPair,
  role: Role,
  parts: TranscriptParts,
  domain = AUTH_DOMAIN,
): string {
  return hex(key.sign(utf8(transcript(role, parts, domain))));
}

/** True when `sig` is a valid signature by `signer` (hex64) over `transcript(role, parts)`. */
export function verifyTranscript(
  signer: string,
  role: Role,
  parts: TranscriptParts,
  sig: string,
  domain = AUTH_DOMAIN,
): boolean {
  if (!isHex64(signer) || !isHex128(sig)) return false;
  return verifySignature(unhex(signer), utf8(transcript(role, parts, domain)), unhex(sig));
}

/** A `challenge` message as the suite reads it. */
export interface Challenge {
  /** Always `"challenge"`. */
  type: "challenge";
  /** Protocol version. */
  protocol: string;
  /** The server's fresh challenge, hex64. */
  challenge: string;
  /** The server's node id. */
  key: string;
}

/** What is wrong with a received `challenge` frame, or undefined when it is well formed (§3.3.1). */
export function challengeProblem(frame: unknown): string | undefined {
  if (typeof frame !== "object" || frame === null || Array.isArray(frame)) return "not an object";
  const f = frame as Record<string, unknown>;
  if (f.type !== "challenge") return `type is ${JSON.stringify(f.type)}, not "challenge"`;
  if (f.protocol !== PROTOCOL_VERSION) return `protocol is ${JSON.stringify(f.protocol)}`;
  if (!isHex64(f.challenge)) return "challenge is not 64 lowercase hex";
  if (!isHex64(f.key)) return "key is not 64 lowercase hex";
  return undefined;
}

/** The `auth` message a client sends (§3.3.2). */
export function authMessage(
  key: KeyPair,
  serverChallenge: string,
  serverKey: string,
  clientChallenge: string,
  token?: string,
): Record<string, string> {
  const parts = { serverChallenge, clientChallenge, serverKey, clientKey: key.id };
  const message: Record<string, string> = {
    type: "auth",
    key: key.id,
    challenge: clientChallenge,
    sig: signTranscript(key, "client", parts),
  };
  if (token !== undefined) message.token = token;
  return message;
}

/** The `welcome` message a server sends (§3.3.3). */
export function welcomeMessage(
  key: KeyPair,
  parts: TranscriptParts,
  scope: "write" | "read",
): Record<string, string> {
  return { type: "welcome", sig: signTranscript(key, "server", parts), scope };
}
