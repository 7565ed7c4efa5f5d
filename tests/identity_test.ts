import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import * as ed from "@noble/ed25519";
import {
  hasSmallOrderR,
  Identity,
  publicKeyProblem,
  SignatureVerifier,
  SMALL_ORDER_ENCODINGS,
} from "../crdt/identity.ts";

const engines = [new SignatureVerifier("native"), new SignatureVerifier("noble")];

// RFC 8032 section 7.1, TEST 1.
const RFC_SEED = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
const RFC_PUBLIC = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
const RFC_SIG =
  "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b";

/** Group order L, little-endian, as 32 bytes. */
const L = 2n ** 252n + 27742317777372353535851937790883648493n;

function addToScalar(sig: Uint8Array, n: bigint): Uint8Array {
  const out = sig.slice();
  let s = 0n;
  for (let i = 31; i >= 0; i--) s = (s << 8n) | BigInt(sig[32 + i]);
  s += n;
  for (let i = 0; i < 32; i++) {
    out[32 + i] = Number(s & 0xffn);
    s >>= 8n;
  }
  return out;
}

Deno.test("identity matches the RFC 8032 test vector", () => {
  const id = Identity.fromSeed(Uint8Array.fromHex(RFC_SEED));
  assert.equal(id.nodeId, RFC_PUBLIC);
  assert.equal(id.sign(new Uint8Array()).toHex(), RFC_SIG);
  for (const engine of engines) {
    assert.ok(engine.verify(RFC_PUBLIC, new Uint8Array(), Uint8Array.fromHex(RFC_SIG)));
  }
});

Deno.test("signature check refuses a non-canonical S (S + L) on every engine", () => {
  const sig = Uint8Array.fromHex(RFC_SIG);
  const malleated = addToScalar(sig, L);
  for (const engine of engines) {
    assert.equal(engine.verify(RFC_PUBLIC, new Uint8Array(), malleated), false);
  }
});

Deno.test("signature check refuses small-order, identity and non-canonical public keys", () => {
  const bad = {
    identity: "0100000000000000000000000000000000000000000000000000000000000000",
    "order 2": "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "order 4": "0000000000000000000000000000000000000000000000000000000000000000",
    "order 8": "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
    "y = p + 1 (non-canonical identity)":
      "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
  };
  for (const [name, key] of Object.entries(bad)) {
    assert.ok(publicKeyProblem(Uint8Array.fromHex(key)), `${name} must be refused`);
    for (const engine of engines) {
      assert.equal(engine.isValidKey(key), false, name);
      assert.equal(engine.verify(key, new Uint8Array(), new Uint8Array(64)), false, name);
    }
  }
  assert.equal(publicKeyProblem(Uint8Array.fromHex(RFC_PUBLIC)), undefined);
});

Deno.test("signature check refuses altered messages, signatures and wrong lengths", () => {
  const id = Identity.generate();
  const message = new Uint8Array(32).fill(9);
  const sig = id.sign(message);
  const flippedR = sig.slice();
  flippedR[0] ^= 1;
  for (const engine of engines) {
    assert.ok(engine.verify(id.nodeId, message, sig));
    assert.equal(engine.verify(id.nodeId, message.map((b) => b ^ 1), sig), false);
    assert.equal(engine.verify(id.nodeId, message, flippedR), false);
    assert.equal(engine.verify(id.nodeId, message, sig.subarray(0, 63)), false);
    assert.equal(engine.verify("not-a-key", message, sig), false);
  }
});

Deno.test("native and noble engines agree on random valid and invalid signatures", () => {
  for (let i = 0; i < 50; i++) {
    const id = Identity.generate();
    const message = crypto.getRandomValues(new Uint8Array(40));
    const sig = id.sign(message);
    if (i % 2 === 1) sig[(i * 7) % 64] ^= 1 << (i % 8);
    const [native, noble] = engines.map((e) => e.verify(id.nodeId, message, sig));
    assert.equal(native, noble);
    assert.equal(native, i % 2 === 0);
  }
});

Deno.test("identity keeps its seed out of JSON output", () => {
  const id = Identity.generate();
  const seedHex = id.exportSeed().toHex();
  assert.ok(!JSON.stringify(id).includes(seedHex));
  assert.deepEqual(JSON.parse(JSON.stringify(id)), { nodeId: id.nodeId });
});

/**
 * A signature by `seed`'s key over `message` whose R is the encoding `rHex`
 * of the identity point: S = k * a (mod L), so [S]B = R + [k]A holds and
 * cofactorless verification alone accepts it.
 */
function identityRSignature(seed: Uint8Array, message: Uint8Array, rHex: string): Uint8Array {
  const { scalar, pointBytes } = ed.utils.getExtendedPublicKey(seed);
  const r = Uint8Array.fromHex(rHex);
  const h = createHash("sha512").update(r).update(pointBytes).update(message).digest();
  let k = 0n;
  for (let i = 63; i >= 0; i--) k = (k << 8n) | BigInt(h[i]);
  let s = ((k % L) * scalar) % L;
  const sig = new Uint8Array(64);
  sig.set(r);
  for (let i = 0; i < 32; i++) {
    sig[32 + i] = Number(s & 0xffn);
    s >>= 8n;
  }
  return sig;
}

Deno.test("signature check refuses a small-order R (the libsodium rule) on every engine", () => {
  const seed = new Uint8Array(32).fill(7);
  const id = Identity.fromSeed(seed);
  const message = new Uint8Array(32).fill(3);
  const sig = identityRSignature(seed, message, SMALL_ORDER_ENCODINGS[0]);
  assert.ok(hasSmallOrderR(sig));
  for (const engine of engines) assert.equal(engine.verify(id.nodeId, message, sig), false);
  assert.equal(hasSmallOrderR(id.sign(message)), false);
});

Deno.test("the small-order blocklist covers all eight torsion points, either sign bit", () => {
  const order8 = ed.Point.fromBytes(Uint8Array.fromHex(SMALL_ORDER_ENCODINGS[3]), false);
  let point = ed.Point.ZERO;
  for (let i = 0; i < 8; i++) {
    const bytes = point.toBytes();
    assert.ok(hasSmallOrderR(new Uint8Array([...bytes, ...new Uint8Array(32)])), bytes.toHex());
    bytes[31] ^= 0x80;
    assert.ok(hasSmallOrderR(new Uint8Array([...bytes, ...new Uint8Array(32)])), bytes.toHex());
    point = point.add(order8);
  }
});
