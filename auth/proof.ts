/**
 * What both ways of authenticating share (the in-band handshake in
 * `handshake.ts` and the pre-upgrade proof in `preauth.ts`): the signed
 * transcript, the welcome message, step and close shapes, the authoriser
 * type, fresh challenges and the client's pinned hub key and token. Pure.
 * @module
 */
import { randomBytes } from "node:crypto";
import { fromHex, isHex128, isHex64, toHex, utf8, utf8Length } from "../protocol/bytes.ts";
import type { Identity, SignatureVerifier } from "../crdt/identity.ts";
import { CloseCode } from "../protocol/close_codes.ts";
import {
  parseJoinToken,
  parsePresentedToken,
  presentedToken,
  type RedeemFailure,
} from "./tokens.ts";
import { isScope, type Scope } from "./trust.ts";

/** Protocol name sent in the challenge; a client refuses any other (close 4426). */
export const PROTOCOL_ID = "huskies-sync/1";

/** First line of every signed transcript. */
export const TRANSCRIPT_DOMAIN = "huskies-sync/auth/v1";

/** Largest handshake frame in UTF-8 bytes; a bigger one is closed with 1009. */
export const MAX_HANDSHAKE_FRAME_BYTES = 4096;

/** Most UTF-8 bytes a WebSocket close reason may have. */
export const MAX_CLOSE_REASON_BYTES = 123;

/** Which side of the handshake signs a transcript. */
export type HandshakeRole = "client" | "server";

/** A close the caller must perform: WebSocket close code and reason. */
export interface HandshakeClose {
  /** Close code, from `CloseCode`. */
  code: number;
  /** Human-readable reason (at most 123 UTF-8 bytes). */
  reason: string;
}

/** The result of the handshake: the peer's node id and the granted scope. */
export interface HandshakeDone {
  /** The authenticated peer's node id. */
  peer: string;
  /**
   * On the server: the scope granted to the client. On the client: the scope
   * the hub granted to this node.
   */
  scope: Scope;
  /** On the client: the mesh id the hub signed in its welcome, if any. */
  mesh?: string;
}

/**
 * What the caller does next, in this order: send `send` (if any), then close
 * with `close` (if any), or treat the connection as authenticated (`done`).
 */
export interface Step {
  /** A text frame to send. */
  send?: string;
  /** Close the socket with this code and reason; nothing else follows. */
  close?: HandshakeClose;
  /** The handshake succeeded. */
  done?: HandshakeDone;
}

/** The accepting side's proof and the granted scope. */
export interface WelcomeMessage {
  /** Message type. */
  type: "welcome";
  /** Ed25519 signature over `transcript("server")`, 128 lowercase hex. */
  sig: string;
  /** Scope granted to the client. */
  scope: Scope;
  /** The server's mesh id (its genesis operation id), when it belongs to a mesh. */
  mesh?: string;
  /** The server's signature over {@link meshStatement}, present with `mesh`. */
  meshSig?: string;
}

/** What a server signs to tell a client its mesh id, bound to this handshake (pure). */
export function meshStatement(parts: TranscriptParts, mesh: string): Uint8Array {
  return utf8(["huskies-sync mesh v1", parts.clientChallenge, parts.clientKey, mesh].join("\n"));
}

/** The values a transcript covers. */
export interface TranscriptParts {
  /** The server's challenge (64 hex). */
  serverChallenge: string;
  /** The client's challenge (64 hex). */
  clientChallenge: string;
  /** The server's node id. */
  serverKey: string;
  /** The client's node id. */
  clientKey: string;
}

/**
 * The bytes a side signs: UTF-8 of
 * `domain + "\n" + role + "\n" + serverChallenge + "\n" +
 * clientChallenge + "\n" + serverKey + "\n" + clientKey` (pure). The domain
 * is {@link TRANSCRIPT_DOMAIN} in the in-band handshake; the pre-upgrade
 * authentication (`preauth.ts`) uses its own.
 */
export function transcript(
  role: HandshakeRole,
  parts: TranscriptParts,
  domain: string = TRANSCRIPT_DOMAIN,
): Uint8Array {
  return utf8(
    [
      domain,
      role,
      parts.serverChallenge,
      parts.clientChallenge,
      parts.serverKey,
      parts.clientKey,
    ].join("\n"),
  );
}

/** Result of an {@link Authorizer}. */
export type AuthorizeResult =
  | { ok: true; scope: Scope }
  | { ok: false; code: number; reason: string };

/**
 * Decides whether an authenticated key may connect, given the token it
 * presented (if any). Called only after the key's proof was verified.
 */
export type Authorizer = (peerKey: string, token: string | undefined) => AuthorizeResult;

/** Close reasons for refused tokens. */
export const TOKEN_REFUSED_REASONS: Readonly<Record<RedeemFailure, string>> = Object.freeze({
  unknown: "token unknown",
  expired: "token expired",
  used: "token used up",
  revoked: "token revoked",
  malformed: "token malformed",
});

/** The reason for a 4403 refusal at authentication (an unknown key in a closed mesh). */
export const NOT_TRUSTED_REASON = "key not trusted";

const FIXED_REFUSAL_REASONS: ReadonlySet<string> = new Set([
  NOT_TRUSTED_REASON,
  ...Object.values(TOKEN_REFUSED_REASONS),
]);

/**
 * The close for an authoriser's refusal, with fixed text only: a reason
 * outside the documented set (which could carry peer data, such as the key
 * or the token) becomes `not authorized`, and a code outside 4000-4999
 * becomes 4403 (pure).
 */
export function refusalClose(verdict: { code: number; reason: string }): HandshakeClose {
  const code = Number.isInteger(verdict.code) && verdict.code >= 4000 && verdict.code <= 4999
    ? verdict.code
    : CloseCode.NOT_TRUSTED;
  const reason = FIXED_REFUSAL_REASONS.has(verdict.reason) ? verdict.reason : "not authorized";
  return { code, reason };
}

/** Shortens `reason` to at most {@link MAX_CLOSE_REASON_BYTES} UTF-8 bytes. */
export function clampCloseReason(reason: string): string {
  let bytes = 0;
  let out = "";
  for (const ch of reason) {
    bytes += utf8Length(ch);
    if (bytes > MAX_CLOSE_REASON_BYTES) break;
    out += ch;
  }
  return out;
}

/** `n` random bytes from node:crypto (the default random source). */
export function defaultRandom(n: number): Uint8Array {
  return new Uint8Array(randomBytes(n));
}

/** 64 hex of 32 fresh random bytes from `random` (which must return exactly 32). */
export function freshChallenge(random: (n: number) => Uint8Array): string {
  const bytes = random(32);
  if (!(bytes instanceof Uint8Array) || bytes.length !== 32) {
    throw new TypeError("Cannot create challenge: random(32) must return 32 bytes");
  }
  return toHex(bytes);
}

/**
 * The hub key a client pins and the token it presents, from `hubKey` and
 * `token` options: a full join token also pins its hub (pure).
 * @throws {TypeError} `hubKey` or `token` is malformed, or they name different hubs.
 */
export function clientCredentials(
  options: { hubKey?: string; token?: string },
  verifier: SignatureVerifier,
  what: string,
): { hubKey: string | undefined; token: string | undefined } {
  let hubKey = options.hubKey;
  if (hubKey !== undefined && !verifier.isValidKey(hubKey)) {
    throw new TypeError(`Cannot create ${what}: hubKey is not a valid node id`);
  }
  let token = options.token;
  if (token !== undefined) {
    if (token.trim().toLowerCase().startsWith("hjt1.")) {
      const parsed = parseJoinToken(token);
      if (hubKey !== undefined && hubKey !== parsed.hubKey) {
        throw new TypeError(
          `Cannot create ${what}: the join token names a different hub than hubKey`,
        );
      }
      hubKey = parsed.hubKey;
      token = presentedToken(parsed);
    } else if (!parsePresentedToken(token)) {
      throw new TypeError(`Cannot create ${what}: token must be a join token or <16 hex>.<64 hex>`);
    }
  }
  return { hubKey, token };
}

/** The 1002 close for a malformed handshake message (`what` is always our own text). */
export function violation(what: string): Step {
  return {
    close: {
      code: CloseCode.PROTOCOL_ERROR,
      reason: clampCloseReason(`protocol violation: ${what}`),
    },
  };
}

/**
 * Checks size and JSON shape common to every handshake frame (pure):
 * returns the object when its `type` is `expected`, else the close step.
 */
export function parseFrame(
  text: string,
  expected: string,
): { frame: Record<string, unknown> } | { refuse: Step } {
  if (typeof text !== "string") return { refuse: violation("frame is not text") };
  // A UTF-16 unit is at least one UTF-8 byte, so a long string is too big without scanning it.
  if (text.length > MAX_HANDSHAKE_FRAME_BYTES || utf8Length(text) > MAX_HANDSHAKE_FRAME_BYTES) {
    return { refuse: { close: { code: CloseCode.TOO_BIG, reason: "handshake frame too big" } } };
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { refuse: violation("frame is not JSON") };
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return { refuse: violation("frame is not a JSON object") };
  }
  const frame = value as Record<string, unknown>;
  if (frame.type !== expected) return { refuse: violation(`expected ${expected} message`) };
  return { frame };
}

const BAD_PROOF: Step = { close: { code: CloseCode.BAD_PROOF, reason: "bad proof" } };

/**
 * Reads a server's challenge (the in-band `challenge` frame or the body of
 * `GET …/challenge`): protocol, shapes, the pinned hub key and a valid server
 * key. Returns the challenge and key, or the close step (pure).
 */
export function readChallenge(
  text: string,
  hubKey: string | undefined,
  verifier: SignatureVerifier,
): { challenge: string; key: string } | { refuse: Step } {
  const parsed = parseFrame(text, "challenge");
  if ("refuse" in parsed) return parsed;
  const { protocol, challenge, key } = parsed.frame;
  if (typeof protocol !== "string") {
    return { refuse: violation("challenge.protocol must be a string") };
  }
  if (protocol !== PROTOCOL_ID) {
    return {
      refuse: { close: { code: CloseCode.INCOMPATIBLE_VERSION, reason: "incompatible protocol" } },
    };
  }
  if (!isHex64(challenge)) {
    return { refuse: violation("challenge.challenge must be 64 lowercase hex") };
  }
  if (!isHex64(key)) return { refuse: violation("challenge.key must be 64 lowercase hex") };
  if (hubKey !== undefined && key !== hubKey) {
    return { refuse: { close: { code: CloseCode.HUB_KEY_MISMATCH, reason: "hub key mismatch" } } };
  }
  if (!verifier.isValidKey(key)) return { refuse: BAD_PROOF };
  return { challenge, key };
}

/** The `welcome` frame a server sends: its signature over `transcript("server")` (pure). */
export function signWelcome(
  identity: Identity,
  parts: TranscriptParts,
  scope: Scope,
  domain: string,
  mesh?: string,
): string {
  const welcome: WelcomeMessage = {
    type: "welcome",
    sig: toHex(identity.sign(transcript("server", parts, domain))),
    scope,
  };
  if (mesh !== undefined) {
    welcome.mesh = mesh;
    welcome.meshSig = toHex(identity.sign(meshStatement(parts, mesh)));
  }
  return JSON.stringify(welcome);
}

/**
 * Checks a server's `welcome` frame against the transcript the client signed:
 * `{ done }` with the server's key and the granted scope, or `{ close }` (pure).
 */
export function readWelcome(
  text: string,
  parts: TranscriptParts,
  domain: string,
  verifier: SignatureVerifier,
): Step {
  const parsed = parseFrame(text, "welcome");
  if ("refuse" in parsed) return parsed.refuse;
  const { sig, scope, mesh, meshSig } = parsed.frame;
  if (!isHex128(sig)) return violation("welcome.sig must be 128 lowercase hex");
  if (!isScope(scope)) return violation('welcome.scope must be "write" or "read"');
  if (!verifier.verify(parts.serverKey, transcript("server", parts, domain), fromHex(sig))) {
    return BAD_PROOF;
  }
  if (mesh === undefined) return { done: { peer: parts.serverKey, scope } };
  if (!isHex64(mesh)) return violation("welcome.mesh must be 64 lowercase hex");
  if (!isHex128(meshSig)) return violation("welcome.meshSig must be 128 lowercase hex");
  if (!verifier.verify(parts.serverKey, meshStatement(parts, mesh), fromHex(meshSig))) {
    return BAD_PROOF;
  }
  return { done: { peer: parts.serverKey, scope, mesh } };
}
