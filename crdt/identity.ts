/**
 * Ed25519 identities and signature checks.
 *
 * Validity rule (pinned, tested in `tests/identity_test.ts`): RFC 8032
 * cofactorless verification with strict encodings. A public key must be the
 * canonical encoding of a curve point that is not of small order (the identity
 * point included); the signature's R must not encode a small-order point (a
 * byte compare against {@link SMALL_ORDER_ENCODINGS}, sign bit ignored, as
 * libsodium does); S must be below the group order L; and R must equal the
 * recomputed R byte for byte. `node:crypto` (OpenSSL) is the hot
 * path; `@noble/ed25519` with `zip215: false` applies the same rule where
 * native Ed25519 is unavailable.
 * @module
 */
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  type KeyObject,
  randomBytes,
  sign as nodeSign,
  verify as nodeVerify,
} from "node:crypto";
import * as ed from "@noble/ed25519";
import { concatBytes, fromHex, isHex64, toHex } from "../protocol/bytes.ts";

ed.hashes.sha512 = (message: Uint8Array) =>
  new Uint8Array(createHash("sha512").update(message).digest());

const PKCS8_PREFIX = fromHex("302e020100300506032b657004220420");
/** The DER prefix of an Ed25519 public key in SubjectPublicKeyInfo form. */
export const ED25519_SPKI_PREFIX_HEX = "302a300506032b6570032100";
const SPKI_PREFIX = fromHex(ED25519_SPKI_PREFIX_HEX);

/** A node id: the lowercase hex of a 32-byte Ed25519 public key. */
export type NodeId = string;

/**
 * Returns `undefined` when `publicKey` is acceptable as a node key, otherwise
 * a message: it must be 32 bytes, a canonical point encoding, and not of small
 * order.
 */
export function publicKeyProblem(publicKey: Uint8Array): string | undefined {
  if (publicKey.length !== 32) return "public key must be 32 bytes";
  let point: ed.Point;
  try {
    point = ed.Point.fromBytes(publicKey, false);
  } catch {
    return "public key is not a valid curve point encoding";
  }
  if (!bytesEqualCt(point.toBytes(), publicKey)) return "public key encoding is not canonical";
  if (point.is0() || point.isSmallOrder()) return "public key is a small-order point";
  return undefined;
}

/**
 * The encodings of the small-order points of edwards25519 with their sign bit
 * (bit 255) cleared, non-canonical ones (y = p, y = p + 1) included: the
 * blocklist libsodium checks a signature's R against. Identity (order 1),
 * order 2, order 4, two of order 8 and the non-canonical 0 and 1.
 */
export const SMALL_ORDER_ENCODINGS: readonly string[] = [
  "0100000000000000000000000000000000000000000000000000000000000000",
  "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
  "0000000000000000000000000000000000000000000000000000000000000000",
  "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
  "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
  "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
  "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
];

const SMALL_ORDER_BYTES = SMALL_ORDER_ENCODINGS.map((hex) => fromHex(hex));

/**
 * True when the first 32 bytes of `signature` (its R) encode a small-order
 * point, sign bit ignored. Such a signature is refused whatever the rest says.
 */
export function hasSmallOrderR(signature: Uint8Array): boolean {
  for (const blocked of SMALL_ORDER_BYTES) {
    let diff = (signature[31] & 0x7f) ^ blocked[31];
    for (let i = 0; i < 31; i++) diff |= signature[i] ^ blocked[i];
    if (diff === 0) return true;
  }
  return false;
}

function bytesEqualCt(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

/**
 * A node's signing identity: its Ed25519 seed and public key.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { HuskiesNode, Identity } from "@huskies/sync";
 *
 * const identity = Identity.generate();
 * assert.match(identity.nodeId, /^[0-9a-f]{64}$/);
 * assert.equal(Identity.fromSeed(identity.exportSeed()).nodeId, identity.nodeId);
 * await using node = await HuskiesNode.open({ identity });
 * assert.equal(node.nodeId, identity.nodeId);
 * ```
 */
export class Identity {
  /** The 32-byte Ed25519 public key. */
  readonly publicKey: Uint8Array;
  /** The node id: lowercase hex of {@link Identity.publicKey}. */
  readonly nodeId: NodeId;
  readonly #seed: Uint8Array;
  readonly #privateKey: KeyObject;

  private constructor(seed: Uint8Array) {
    this.#seed = seed.slice();
    this.#privateKey = createPrivateKey({
      key: Buffer.from(concatBytes(PKCS8_PREFIX, seed)),
      format: "der",
      type: "pkcs8",
    });
    const spki = createPublicKey(this.#privateKey).export({ format: "der", type: "spki" });
    this.publicKey = new Uint8Array(spki.subarray(spki.length - 32));
    this.nodeId = toHex(this.publicKey);
  }

  /** Creates an identity from a 32-byte seed. */
  static fromSeed(seed: Uint8Array): Identity {
    if (!(seed instanceof Uint8Array) || seed.length !== 32) {
      throw new TypeError("Cannot create identity: seed must be 32 bytes");
    }
    return new Identity(seed);
  }

  /** Creates a fresh random identity. */
  static generate(): Identity {
    return new Identity(new Uint8Array(randomBytes(32)));
  }

  /** Returns a copy of the 32-byte private seed. Handle with care: never log it. */
  exportSeed(): Uint8Array {
    return this.#seed.slice();
  }

  /** Signs `message`, returning the 64-byte Ed25519 signature. */
  sign(message: Uint8Array): Uint8Array {
    return new Uint8Array(nodeSign(null, message, this.#privateKey));
  }

  /** Keeps the seed out of logs and `console.log` output. */
  toJSON(): { nodeId: NodeId } {
    return { nodeId: this.nodeId };
  }
}

/** Which Ed25519 implementation a {@link SignatureVerifier} uses. */
export type VerifyEngine = "native" | "noble";

/**
 * Verifies Ed25519 signatures by node id, caching each key's decoded form and
 * its validity, so repeated checks cost one native verify each.
 */
export class SignatureVerifier {
  readonly #engine: VerifyEngine;
  readonly #keys = new Map<NodeId, KeyObject | Uint8Array | null>();
  /** Most keys kept in the cache before it is cleared. */
  readonly #maxCached: number;

  /** Creates a verifier; `engine` defaults to native `node:crypto`. */
  constructor(engine: VerifyEngine = "native", maxCached = 65536) {
    this.#engine = engine;
    this.#maxCached = maxCached;
  }

  #key(nodeId: NodeId): KeyObject | Uint8Array | null {
    let key = this.#keys.get(nodeId);
    if (key !== undefined) return key;
    if (!isHex64(nodeId)) {
      key = null;
    } else {
      const raw = fromHex(nodeId);
      if (publicKeyProblem(raw)) key = null;
      else if (this.#engine === "noble") key = raw;
      else {
        key = createPublicKey({
          key: Buffer.from(concatBytes(SPKI_PREFIX, raw)),
          format: "der",
          type: "spki",
        });
      }
    }
    if (this.#keys.size >= this.#maxCached) this.#keys.clear();
    this.#keys.set(nodeId, key);
    return key;
  }

  /** True when `nodeId` is an acceptable public key under the pinned rule. */
  isValidKey(nodeId: NodeId): boolean {
    return this.#key(nodeId) !== null;
  }

  /** The Ed25519 implementation used. */
  get engine(): VerifyEngine {
    return this.#engine;
  }

  /**
   * False when {@link verify} refuses `signature` by `nodeId` before the
   * Ed25519 equation: the key breaks the pinned rule, the signature is not 64
   * bytes or its R is of small order. What passes is decided by the equation alone.
   */
  mayVerify(nodeId: NodeId, signature: Uint8Array): boolean {
    return this.#key(nodeId) !== null && signature.length === 64 && !hasSmallOrderR(signature);
  }

  /** True when `signature` is a valid signature of `message` by `nodeId`. */
  verify(nodeId: NodeId, message: Uint8Array, signature: Uint8Array): boolean {
    if (!this.mayVerify(nodeId, signature)) return false;
    const key = this.#key(nodeId)!;
    if (key instanceof Uint8Array) {
      try {
        return ed.verify(signature, message, key, { zip215: false });
      } catch {
        return false;
      }
    }
    try {
      return nodeVerify(null, message, key, signature);
    } catch {
      return false;
    }
  }
}
