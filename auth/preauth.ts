/**
 * Authentication before the WebSocket upgrade, so an honest node never makes
 * the accepting side hold an unauthenticated WebSocket (Deno buffers a whole
 * message of up to 64 MiB before any of our code sees it). Pure: the clock,
 * the random source and the per-process secret are injected; the HTTP
 * adapter is `preauth_http.ts`.
 *
 * 1. The client fetches a fresh challenge over plain HTTP. The server keeps
 *    no state for it: the challenge is its expiry, a nonce and an HMAC under a
 *    per-process secret.
 * 2. The client sends the upgrade request with a credential: its key, the
 *    server's challenge, its own fresh challenge and its signature over the
 *    transcript of both challenges and both keys (domain
 *    {@link PREAUTH_DOMAIN}, role `client`).
 * 3. The server checks all of it, and authorises the key, BEFORE upgrading;
 *    otherwise it answers with an HTTP refusal. A proof is accepted once.
 * 4. After the upgrade the server's first frame is a `welcome` signed over the
 *    same transcript (role `server`), so both sides are authenticated.
 *
 * `PROTOCOL.md` §3.10 specifies it, with a known-answer vector.
 *
 * @example Both sides in memory
 * ```ts
 * import assert from "node:assert/strict";
 * import { PreauthClient, PreauthServer } from "./preauth.ts";
 * import { Identity } from "../crdt/identity.ts";
 * const hub = Identity.generate();
 * const node = Identity.generate();
 * const server = new PreauthServer({
 *   identity: hub,
 *   authorize: () => ({ ok: true, scope: "write" }),
 * });
 * const client = new PreauthClient({ identity: node, hubKey: hub.nodeId });
 * const proof = client.prove(JSON.stringify(server.issue()));
 * assert.ok("credential" in proof);
 * const check = server.check(proof.credential);
 * assert.equal(check.kind, "accepted");
 * if (check.kind === "accepted") {
 *   assert.deepEqual(client.receive(check.welcome).done, { peer: hub.nodeId, scope: "write" });
 * }
 * ```
 * @module
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import { concatBytes, fromHex, isHex128, isHex64, toHex, utf8 } from "../protocol/bytes.ts";
import { type Identity, SignatureVerifier } from "../crdt/identity.ts";
import { CloseCode } from "../protocol/close_codes.ts";
import {
  type Authorizer,
  type AuthorizeResult,
  clientCredentials,
  defaultRandom,
  freshChallenge,
  type HandshakeClose,
  PROTOCOL_ID,
  readChallenge,
  readWelcome,
  refusalClose,
  signWelcome,
  type Step,
  transcript,
  type TranscriptParts,
} from "./proof.ts";
import type { ChallengeMessage } from "./handshake.ts";
import { parsePresentedToken } from "./tokens.ts";
import type { Scope } from "./trust.ts";

/** First line of the transcripts signed before the upgrade (the in-band one uses `huskies-sync/auth/v1`). */
export const PREAUTH_DOMAIN = "huskies-sync/preauth/v1";

/** Prefix of the HMAC input that makes a server challenge. */
const CHALLENGE_MAC_DOMAIN = "huskies-sync/preauth/challenge/v1";

/** Seconds a server challenge stays valid. */
export const PREAUTH_CHALLENGE_TTL_SECS = 30;

/** First field of a credential. */
export const CREDENTIAL_VERSION = "hpa1";

/** Most characters of a credential (one with a token has 411). */
const MAX_CREDENTIAL_CHARS = 512;

/** Why a pre-upgrade credential was refused, and how to answer it. */
export interface PreauthRefusal {
  /** HTTP status to answer instead of upgrading. */
  status: 400 | 401 | 403 | 428 | 429;
  /** The close code the same refusal has in the in-band handshake (sent as `x-huskies-close`). */
  code: number;
  /** Fixed reason text (never peer data). */
  reason: string;
  /** The refused key, when its proof was valid (so the key is the client's own). */
  key?: string;
}

/** Result of {@link PreauthServer.check}. */
export type PreauthCheck =
  /** No credential and `allowInBand`: run the in-band handshake (under the admission caps). */
  | { kind: "absent" }
  /** Authenticated: upgrade, send `welcome` as the first frame, then run the sync session. */
  | { kind: "accepted"; peer: string; scope: Scope; welcome: string }
  /** Answer `refusal.status` over HTTP and do not upgrade. */
  | { kind: "refused"; refusal: PreauthRefusal };

/** Options for {@link PreauthServer}. */
export interface PreauthServerOptions {
  /** This node's identity. */
  identity: Identity;
  /** Decides who may connect (the standard one is `makeAuthorizer`). */
  authorize: Authorizer;
  /** The mesh id to sign into the welcome (read after authorising), if any (§3.3.3). */
  mesh?: () => string | undefined;
  /** 32-byte HMAC key for challenges. @default {32 fresh random bytes} */
  secret?: Uint8Array;
  /** Clock in ms. @default {Date.now} */
  now?: () => number;
  /** Source of random bytes. @default {node:crypto randomBytes} */
  random?: (n: number) => Uint8Array;
  /** Signature verifier. @default {new SignatureVerifier()} */
  verifier?: SignatureVerifier;
  /** Seconds a challenge stays valid. @default {PREAUTH_CHALLENGE_TTL_SECS} */
  challengeTtlSecs?: number;
  /** Most accepted proofs remembered (to refuse a replay) at once; more answer 429. @default {4096} */
  maxRecentProofs?: number;
  /**
   * Whether a request without a credential may use the in-band handshake
   * (`absent`) or is refused with 401 `pre-authentication required`. An
   * unauthenticated WebSocket can make the server hold about three times a
   * 64 MiB message (measured: ~190 MiB), so only `false` bounds what
   * unauthenticated clients can make the node hold. @default {false}
   */
  allowInBand?: boolean;
}

function refused(
  status: PreauthRefusal["status"],
  code: number,
  reason: string,
): PreauthCheck {
  return { kind: "refused", refusal: { status, code, reason } };
}

const MALFORMED = refused(400, CloseCode.PROTOCOL_ERROR, "malformed credential");

/** The server side: issues challenges and checks upgrade credentials. */
export class PreauthServer {
  readonly #identity: Identity;
  readonly #mesh: (() => string | undefined) | undefined;
  readonly #authorize: Authorizer;
  readonly #secret: Uint8Array;
  readonly #now: () => number;
  readonly #random: (n: number) => Uint8Array;
  readonly #verifier: SignatureVerifier;
  readonly #ttlSecs: number;
  readonly #maxRecent: number;
  readonly #allowInBand: boolean;
  /** Accepted server challenges -> their expiry (s); insertion order is roughly expiry order. */
  readonly #recent = new Map<string, number>();

  /**
   * Creates the server side; one per node process.
   * @throws {TypeError} `secret` is not 32 bytes.
   * @throws {RangeError} a limit is not a whole number >= 1.
   */
  constructor(options: PreauthServerOptions) {
    this.#identity = options.identity;
    this.#mesh = options.mesh;
    this.#authorize = options.authorize;
    this.#random = options.random ?? defaultRandom;
    this.#secret = options.secret ?? this.#random(32);
    if (!(this.#secret instanceof Uint8Array) || this.#secret.length !== 32) {
      throw new TypeError("Cannot create preauth server: secret must be 32 bytes");
    }
    this.#now = options.now ?? Date.now;
    this.#verifier = options.verifier ?? new SignatureVerifier();
    this.#ttlSecs = options.challengeTtlSecs ?? PREAUTH_CHALLENGE_TTL_SECS;
    this.#maxRecent = options.maxRecentProofs ?? 4096;
    this.#allowInBand = options.allowInBand ?? false;
    for (
      const [name, value] of [["challengeTtlSecs", this.#ttlSecs], [
        "maxRecentProofs",
        this.#maxRecent,
      ]] as const
    ) {
      if (!Number.isSafeInteger(value) || value < 1) {
        throw new RangeError(`Cannot create preauth server: ${name} must be a whole number >= 1`);
      }
    }
  }

  /** Accepted proofs currently remembered. */
  get recentProofs(): number {
    return this.#recent.size;
  }

  #nowSecs(): number {
    return Math.floor(this.#now() / 1000);
  }

  #mac(head: Uint8Array): Uint8Array {
    const hmac = createHmac("sha256", this.#secret);
    hmac.update(utf8(`${CHALLENGE_MAC_DOMAIN}\n${this.#identity.nodeId}\n`));
    hmac.update(head);
    return new Uint8Array(hmac.digest()).subarray(0, 16);
  }

  /**
   * A fresh challenge, the body of `GET …/challenge`: 32 bytes = expiry
   * (seconds since the epoch, 8 bytes big-endian) || nonce (8 random bytes)
   * || the first 16 bytes of HMAC-SHA256 over the domain, this node's id and
   * the first 16 bytes. Keeps no state.
   */
  issue(): ChallengeMessage {
    const head = new Uint8Array(16);
    new DataView(head.buffer).setBigUint64(0, BigInt(this.#nowSecs() + this.#ttlSecs));
    const nonce = this.#random(8);
    if (!(nonce instanceof Uint8Array) || nonce.length !== 8) {
      throw new TypeError("Cannot issue challenge: random(8) must return 8 bytes");
    }
    head.set(nonce, 8);
    return {
      type: "challenge",
      protocol: PROTOCOL_ID,
      challenge: toHex(concatBytes(head, this.#mac(head))),
      key: this.#identity.nodeId,
    };
  }

  /** Drops remembered proofs whose challenge expired. */
  #prune(nowSecs: number): void {
    for (const [challenge, expiry] of this.#recent) {
      if (expiry > nowSecs) break;
      this.#recent.delete(challenge);
    }
  }

  /**
   * Checks the credential of an upgrade request (`undefined` when it has
   * none). `viaQuery` says it came in the URL, where a token is refused
   * (URLs end up in logs). On `accepted` the key was authorised (a token was
   * redeemed) and the proof cannot be used again.
   * @throws whatever the authoriser throws (e.g. an I/O error).
   */
  check(credential: string | undefined, viaQuery = false): PreauthCheck {
    if (credential === undefined) {
      return this.#allowInBand
        ? { kind: "absent" }
        : refused(401, CloseCode.BAD_PROOF, "pre-authentication required");
    }
    if (typeof credential !== "string" || credential.length > MAX_CREDENTIAL_CHARS) {
      return MALFORMED;
    }
    const fields = credential.split(".");
    if (fields[0] !== CREDENTIAL_VERSION || (fields.length !== 5 && fields.length !== 7)) {
      return MALFORMED;
    }
    const [, key, serverChallenge, clientChallenge, sig] = fields;
    if (!isHex64(key) || !isHex64(serverChallenge) || !isHex64(clientChallenge) || !isHex128(sig)) {
      return MALFORMED;
    }
    let token: string | undefined;
    if (fields.length === 7) {
      token = `${fields[5]}.${fields[6]}`;
      if (!parsePresentedToken(token)) return MALFORMED;
      if (viaQuery) {
        return refused(400, CloseCode.PROTOCOL_ERROR, "token only in the header");
      }
    }
    const stale = this.#checkChallenge(serverChallenge);
    if (stale) return refused(428, CloseCode.HANDSHAKE_TIMEOUT, stale);
    const parts: TranscriptParts = {
      serverChallenge,
      clientChallenge,
      serverKey: this.#identity.nodeId,
      clientKey: key,
    };
    if (
      !this.#verifier.verify(key, transcript("client", parts, PREAUTH_DOMAIN), fromHex(sig))
    ) {
      return refused(401, CloseCode.BAD_PROOF, "bad proof");
    }
    this.#prune(this.#nowSecs());
    if (this.#recent.size >= this.#maxRecent) {
      return refused(429, CloseCode.RATE_LIMITED, "too many recent proofs");
    }
    const verdict: AuthorizeResult = this.#authorize(key, token);
    if (!verdict.ok) {
      const { code, reason } = refusalClose(verdict);
      return { kind: "refused", refusal: { status: 403, code, reason, key } };
    }
    this.#recent.set(serverChallenge, Number(fromHexExpiry(serverChallenge)));
    return {
      kind: "accepted",
      peer: key,
      scope: verdict.scope,
      welcome: signWelcome(this.#identity, parts, verdict.scope, PREAUTH_DOMAIN, this.#mesh?.()),
    };
  }

  /** Why `challenge` cannot be used now (we did not issue it, it expired, it was used), if so. */
  #checkChallenge(challenge: string): string | undefined {
    const bytes = fromHex(challenge);
    const expected = this.#mac(bytes.subarray(0, 16));
    if (!timingSafeEqual(expected, bytes.subarray(16))) return "challenge unknown";
    const expiry = fromHexExpiry(challenge);
    const nowSecs = BigInt(this.#nowSecs());
    if (expiry <= nowSecs) return "challenge expired";
    if (expiry > nowSecs + BigInt(this.#ttlSecs)) return "challenge unknown"; // our clock went back
    if (this.#recent.has(challenge)) return "challenge used";
    return undefined;
  }
}

/** The expiry (seconds) in the first 8 bytes of a server challenge. */
function fromHexExpiry(challenge: string): bigint {
  return BigInt(`0x${challenge.slice(0, 16)}`);
}

/** Options for {@link PreauthClient}. */
export interface PreauthClientOptions {
  /** This node's identity. */
  identity: Identity;
  /** The hub's node id to pin; a challenge from another key is refused (4406). */
  hubKey?: string;
  /** A join token: the full `hjt1.…` string (which also pins the hub key) or `<id>.<secret>`. */
  token?: string;
  /** Source of random bytes. @default {node:crypto randomBytes} */
  random?: (n: number) => Uint8Array;
  /** Signature verifier. @default {new SignatureVerifier()} */
  verifier?: SignatureVerifier;
}

/** The client side for one connection attempt: prove, then check the welcome. */
export class PreauthClient {
  readonly #identity: Identity;
  readonly #hubKey: string | undefined;
  readonly #token: string | undefined;
  readonly #random: (n: number) => Uint8Array;
  readonly #verifier: SignatureVerifier;
  #parts: TranscriptParts | undefined;
  #done = false;

  /**
   * Creates the client side.
   * @throws {TypeError} `hubKey` or `token` is malformed, or they name different hubs.
   */
  constructor(options: PreauthClientOptions) {
    this.#identity = options.identity;
    this.#random = options.random ?? defaultRandom;
    this.#verifier = options.verifier ?? new SignatureVerifier();
    const credentials = clientCredentials(options, this.#verifier, "preauth client");
    this.#hubKey = credentials.hubKey;
    this.#token = credentials.token;
  }

  /** Whether {@link PreauthClient.prove} would put a token in the credential. */
  get hasToken(): boolean {
    return this.#token !== undefined;
  }

  /**
   * From the body of `GET …/challenge`, the credential for the upgrade
   * request, or the close that ends this attempt (wrong protocol 4426, another
   * hub 4406, a malformed body 1002).
   */
  prove(challengeBody: string): { credential: string } | { close: HandshakeClose } {
    if (this.#parts !== undefined) throw new Error("Cannot prove: this attempt already proved");
    const read = readChallenge(challengeBody, this.#hubKey, this.#verifier);
    if ("refuse" in read) return { close: read.refuse.close! };
    this.#parts = {
      serverChallenge: read.challenge,
      clientChallenge: freshChallenge(this.#random),
      serverKey: read.key,
      clientKey: this.#identity.nodeId,
    };
    const sig = toHex(this.#identity.sign(transcript("client", this.#parts, PREAUTH_DOMAIN)));
    const fields = [
      CREDENTIAL_VERSION,
      this.#identity.nodeId,
      this.#parts.serverChallenge,
      this.#parts.clientChallenge,
      sig,
    ];
    if (this.#token !== undefined) fields.push(this.#token);
    return { credential: fields.join(".") };
  }

  /**
   * Checks the server's first frame after the upgrade, its `welcome`:
   * `{ done }` with the hub's key and our scope, or `{ close }`.
   */
  receive(text: string): Step {
    if (this.#parts === undefined) throw new Error("Cannot receive a welcome: call prove() first");
    if (this.#done) {
      return { close: { code: CloseCode.PROTOCOL_ERROR, reason: "frame after welcome" } };
    }
    const step = readWelcome(text, this.#parts, PREAUTH_DOMAIN, this.#verifier);
    this.#done = true;
    return step;
  }
}
