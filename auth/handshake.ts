/**
 * The mutual-authentication handshake as two pure state machines, one per
 * side. No sockets here: the caller feeds received text frames to
 * `receive()` and carries out the returned {@link Step} (send a frame, close
 * with a code, or hand the connection to sync once `done`).
 *
 * 1. server -> client `{"type":"challenge","protocol":"huskies-sync/1","challenge":<64 hex>,"key":<server id>}`
 * 2. client -> server `{"type":"auth","key":<client id>,"challenge":<64 hex>,"sig":<128 hex>,"token"?:"<id>.<secret>"}`
 * 3. server -> client `{"type":"welcome","sig":<128 hex>,"scope":"write"|"read"}`
 *
 * Each signature covers {@link transcript}: the role, both fresh challenges
 * and both keys, so a proof from one connection cannot be replayed on
 * another nor reflected to the other side. `PROTOCOL.md` has the
 * full specification.
 *
 * @example Run both sides in memory
 * ```ts
 * import { ClientHandshake, ServerHandshake } from "./handshake.ts";
 * import { Identity } from "../crdt/identity.ts";
 * const hub = Identity.generate();
 * const node = Identity.generate();
 * const server = new ServerHandshake({
 *   identity: hub,
 *   authorize: () => ({ ok: true, scope: "write" }),
 * });
 * const client = new ClientHandshake({ identity: node, hubKey: hub.nodeId });
 * client.start();
 * const auth = client.receive(server.start().send!);
 * const welcome = server.receive(auth.send!);
 * const done = client.receive(welcome.send!);
 * console.log(welcome.done, done.done); // { peer: node id, ... } { peer: hub id, ... }
 * ```
 * @module
 */
import { fromHex, isHex128, isHex64, toHex } from "../protocol/bytes.ts";
import { type Identity, SignatureVerifier } from "../crdt/identity.ts";
import { CloseCode } from "../protocol/close_codes.ts";
import {
  type Authorizer,
  type AuthorizeResult,
  clientCredentials,
  defaultRandom,
  freshChallenge,
  type HandshakeClose,
  parseFrame,
  PROTOCOL_ID,
  readChallenge,
  readWelcome,
  refusalClose,
  signWelcome,
  type Step,
  transcript,
  TRANSCRIPT_DOMAIN,
  type TranscriptParts,
  violation,
} from "./proof.ts";

export {
  type Authorizer,
  type AuthorizeResult,
  clampCloseReason,
  type HandshakeClose,
  type HandshakeDone,
  type HandshakeRole,
  MAX_CLOSE_REASON_BYTES,
  MAX_HANDSHAKE_FRAME_BYTES,
  PROTOCOL_ID,
  type Step,
  transcript,
  TRANSCRIPT_DOMAIN,
  type TranscriptParts,
  type WelcomeMessage,
} from "./proof.ts";

/** Seconds the whole handshake may take before the socket adapter closes it (4408). */
export const AUTH_TIMEOUT_SECS = 10;

/** {@link AUTH_TIMEOUT_SECS} in ms (internal). */
const AUTH_TIMEOUT_MS = AUTH_TIMEOUT_SECS * 1000;

/** The accepting side's first frame. */
export interface ChallengeMessage {
  /** Message type. */
  type: "challenge";
  /** Protocol name, {@link PROTOCOL_ID}. */
  protocol: string;
  /** 32 fresh random bytes, 64 lowercase hex. */
  challenge: string;
  /** The server's node id. */
  key: string;
}

/** The connecting side's proof. */
export interface AuthMessage {
  /** Message type. */
  type: "auth";
  /** The client's node id. */
  key: string;
  /** The client's own 32 fresh random bytes, 64 lowercase hex. */
  challenge: string;
  /** Ed25519 signature over `transcript("client")`, 128 lowercase hex. */
  sig: string;
  /** A join token's `<token id>.<secret>`, when joining. */
  token?: string;
}

/** The time (ms since the epoch) by which a handshake started at `now` must be done. */
export function handshakeDeadline(now: number = Date.now()): number {
  return now + AUTH_TIMEOUT_MS;
}

/** The close a socket adapter performs when the handshake deadline passes. */
export const HANDSHAKE_TIMEOUT_CLOSE: Readonly<HandshakeClose> = Object.freeze({
  code: CloseCode.HANDSHAKE_TIMEOUT,
  reason: "handshake timeout",
});

/** Where a handshake is. */
export type HandshakeStatus = "idle" | "waiting" | "done" | "closed";

/** Lifecycle shared by both sides: idle -> waiting -> done | closed. */
class Phase {
  state: HandshakeStatus = "idle";

  close(step: Step): Step {
    this.state = "closed";
    return step;
  }

  /** Frames after done or close are protocol violations; frames before start are a caller bug. */
  late(): Step | undefined {
    if (this.state === "idle") throw new Error("Cannot receive a frame: call start() first");
    if (this.state === "done") {
      return this.close(violation("frame after handshake done"));
    }
    if (this.state === "closed") return violation("frame after close");
    return undefined;
  }

  binary(): Step {
    return this.late() ?? this.close(violation("binary frame during handshake"));
  }
}

/** Options for {@link ServerHandshake}. */
export interface ServerHandshakeOptions {
  /** This node's identity. */
  identity: Identity;
  /** Decides who may connect (the standard one is `makeAuthorizer` in `authorize.ts`). */
  authorize: Authorizer;
  /** Source of random bytes. @default {node:crypto randomBytes} */
  random?: (n: number) => Uint8Array;
  /** Signature verifier (shared caches help). @default {new SignatureVerifier()} */
  verifier?: SignatureVerifier;
  /** The mesh id to sign into the welcome (read after authorising), if any. */
  mesh?: () => string | undefined;
}

/** The accepting side of the handshake. */
export class ServerHandshake {
  readonly #phase = new Phase();

  /** Where the handshake is: `idle` before start, `waiting`, `done` or `closed`. */
  get status(): HandshakeStatus {
    return this.#phase.state;
  }

  /** A binary frame during the handshake is a protocol violation (close 1002). */
  receiveBinary(): Step {
    return this.#phase.binary();
  }

  readonly #identity: Identity;
  readonly #authorize: Authorizer;
  readonly #random: (n: number) => Uint8Array;
  readonly #verifier: SignatureVerifier;
  #challenge = "";

  /** Creates the server side for one connection. */
  constructor(options: ServerHandshakeOptions) {
    this.#identity = options.identity;
    this.#authorize = options.authorize;
    this.#random = options.random ?? defaultRandom;
    this.#verifier = options.verifier ?? new SignatureVerifier();
    this.#mesh = options.mesh;
  }

  readonly #mesh: (() => string | undefined) | undefined;

  /** Returns the challenge frame to send as soon as the socket opens. */
  start(): Step {
    if (this.#phase.state !== "idle") {
      throw new Error("Cannot start handshake: it was already started");
    }
    this.#challenge = freshChallenge(this.#random);
    this.#phase.state = "waiting";
    const message: ChallengeMessage = {
      type: "challenge",
      protocol: PROTOCOL_ID,
      challenge: this.#challenge,
      key: this.#identity.nodeId,
    };
    return { send: JSON.stringify(message) };
  }

  /**
   * Handles the client's `auth` frame: verifies its proof, authorises the
   * key, and returns the `welcome` frame with `done`, or a close.
   * @throws whatever the authoriser throws (e.g. an I/O error); the handshake is then closed.
   */
  receive(text: string): Step {
    const late = this.#phase.late();
    if (late) return late;
    const parsed = parseFrame(text, "auth");
    if ("refuse" in parsed) return this.#phase.close(parsed.refuse);
    const { frame } = parsed;
    const { key, challenge, sig, token } = frame;
    if (!isHex64(key)) return this.#phase.close(violation("auth.key must be 64 lowercase hex"));
    if (!isHex64(challenge)) {
      return this.#phase.close(violation("auth.challenge must be 64 lowercase hex"));
    }
    if (!isHex128(sig)) return this.#phase.close(violation("auth.sig must be 128 lowercase hex"));
    if (token !== undefined && typeof token !== "string") {
      return this.#phase.close(violation("auth.token must be a string"));
    }
    const parts: TranscriptParts = {
      serverChallenge: this.#challenge,
      clientChallenge: challenge,
      serverKey: this.#identity.nodeId,
      clientKey: key,
    };
    if (!this.#verifier.verify(key, transcript("client", parts), fromHex(sig))) {
      return this.#phase.close({ close: { code: CloseCode.BAD_PROOF, reason: "bad proof" } });
    }
    let verdict: AuthorizeResult;
    try {
      verdict = this.#authorize(key, token);
    } catch (error) {
      this.#phase.state = "closed";
      throw error;
    }
    if (!verdict.ok) {
      return this.#phase.close({
        close: refusalClose(verdict),
      });
    }
    const mesh = this.#mesh?.();
    const welcome = signWelcome(this.#identity, parts, verdict.scope, TRANSCRIPT_DOMAIN, mesh);
    this.#phase.state = "done";
    return { send: welcome, done: { peer: key, scope: verdict.scope } };
  }
}

/** Options for {@link ClientHandshake}. */
export interface ClientHandshakeOptions {
  /** This node's identity. */
  identity: Identity;
  /** The hub's node id to pin; a hub with another key is refused (4406). */
  hubKey?: string;
  /**
   * A join token: the full `hjt1.…` string (which also pins the hub key) or
   * just `<token id>.<secret>`.
   */
  token?: string;
  /** Source of random bytes. @default {node:crypto randomBytes} */
  random?: (n: number) => Uint8Array;
  /** Signature verifier. @default {new SignatureVerifier()} */
  verifier?: SignatureVerifier;
}

/** The connecting side of the handshake. */
export class ClientHandshake {
  readonly #phase = new Phase();

  /** Where the handshake is: `idle` before start, `waiting`, `done` or `closed`. */
  get status(): HandshakeStatus {
    return this.#phase.state;
  }

  /** A binary frame during the handshake is a protocol violation (close 1002). */
  receiveBinary(): Step {
    return this.#phase.binary();
  }

  readonly #identity: Identity;
  readonly #hubKey: string | undefined;
  readonly #token: string | undefined;
  readonly #random: (n: number) => Uint8Array;
  readonly #verifier: SignatureVerifier;
  #parts: TranscriptParts | undefined;

  /**
   * Creates the client side for one connection.
   * @throws {TypeError} `hubKey` or `token` is malformed, or they name different hubs.
   */
  constructor(options: ClientHandshakeOptions) {
    this.#identity = options.identity;
    this.#random = options.random ?? defaultRandom;
    this.#verifier = options.verifier ?? new SignatureVerifier();
    const credentials = clientCredentials(options, this.#verifier, "client handshake");
    this.#hubKey = credentials.hubKey;
    this.#token = credentials.token;
  }

  /** Starts waiting for the server's challenge; the client sends nothing first. */
  start(): Step {
    if (this.#phase.state !== "idle") {
      throw new Error("Cannot start handshake: it was already started");
    }
    this.#phase.state = "waiting";
    return {};
  }

  /** Handles the server's `challenge`, then its `welcome`. */
  receive(text: string): Step {
    const late = this.#phase.late();
    if (late) return late;
    return this.#parts === undefined ? this.#onChallenge(text) : this.#onWelcome(text);
  }

  #onChallenge(text: string): Step {
    const read = readChallenge(text, this.#hubKey, this.#verifier);
    if ("refuse" in read) return this.#phase.close(read.refuse);
    const { challenge, key } = read;
    this.#parts = {
      serverChallenge: challenge,
      clientChallenge: freshChallenge(this.#random),
      serverKey: key,
      clientKey: this.#identity.nodeId,
    };
    const auth: AuthMessage = {
      type: "auth",
      key: this.#identity.nodeId,
      challenge: this.#parts.clientChallenge,
      sig: toHex(this.#identity.sign(transcript("client", this.#parts))),
    };
    if (this.#token !== undefined) auth.token = this.#token;
    return { send: JSON.stringify(auth) };
  }

  #onWelcome(text: string): Step {
    const step = readWelcome(text, this.#parts!, TRANSCRIPT_DOMAIN, this.#verifier);
    if (step.close) return this.#phase.close(step);
    this.#phase.state = "done";
    return step;
  }
}
