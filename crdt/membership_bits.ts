/**
 * Immutable bit sets over small integers, used by the membership rule to
 * record which membership operations lie in an operation's causal history.
 * Unions return an existing set whenever one side contains the other, so
 * operations with the same membership history share one object.
 * @module
 */

/** An immutable set of small non-negative integers. Never mutate one after creating it. */
export type BitSet = Uint32Array;

/** The empty set. */
export const EMPTY_BITS: BitSet = new Uint32Array(0);

/** True when `bit` is in `bits`. */
export function hasBit(bits: BitSet, bit: number): boolean {
  const word = bit >>> 5;
  return word < bits.length && (bits[word] & (1 << (bit & 31))) !== 0;
}

/** `bits` with `bit` added (the same object when it is already there). */
export function withBit(bits: BitSet, bit: number): BitSet {
  if (hasBit(bits, bit)) return bits;
  const out = new Uint32Array(Math.max(bits.length, (bit >>> 5) + 1));
  out.set(bits);
  out[bit >>> 5] |= 1 << (bit & 31);
  return out;
}

function contains(big: BitSet, small: BitSet): boolean {
  for (let i = 0; i < small.length; i++) {
    const word = i < big.length ? big[i] : 0;
    if ((small[i] & ~word) !== 0) return false;
  }
  return true;
}

/** The union of two sets (one of them when it contains the other). */
export function unionBits(a: BitSet, b: BitSet): BitSet {
  if (a === b || contains(a, b)) return a;
  if (contains(b, a)) return b;
  const out = new Uint32Array(Math.max(a.length, b.length));
  out.set(a);
  for (let i = 0; i < b.length; i++) out[i] |= b[i];
  return out;
}

/** The set of the integers 0 .. words * 32 - 1 that covers at least `count` integers. */
export function allBits(count: number): BitSet {
  return new Uint32Array(Math.ceil(count / 32) + 1).fill(0xffffffff);
}
