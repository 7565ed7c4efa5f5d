/**
 * A compact map from operation id to position: an open-addressing hash table
 * in one `Int32Array` (per slot: position + 1, and the id's 32-bit hash, so
 * a probe reads the id itself only when the hashes match), hashed on the
 * id's leading characters (ids are SHA-256 hex, so uniform). It keeps 16-32
 * bytes per operation where a `Map` keeps 50-80, and a hub holds one entry
 * per operation. The ids stay where the caller keeps them (`idAt`). Pure.
 * @module
 */
import type { OpId } from "./operation.ts";

/** Smallest table (slots); it doubles whenever it is half full. */
const MIN_SLOTS = 1024;

/** The table slot an id hashes to: its first 8 characters mixed (uniform for hex ids). */
function hashOf(id: string): number {
  let hash = 0x811c9dc5;
  const n = Math.min(id.length, 8);
  for (let i = 0; i < n; i++) hash = Math.imul(hash ^ id.charCodeAt(i), 0x01000193);
  return hash | 0;
}

/** Id -> position (a non-negative integer below 2^31 - 1), for ids found at `idAt(position)`. */
export class IdIndex {
  readonly #idAt: (position: number) => OpId;
  /** Per slot, position + 1 (0: empty) then the id's hash. */
  #slots = new Int32Array(2 * MIN_SLOTS);
  #count = 0;
  /** The last id hashed and its hash: `has` then `set` of one id hash it once. */
  #lastId = "";
  #lastHash = 0;

  /** An empty index; `idAt(position)` gives the id stored at a position it holds. */
  constructor(idAt: (position: number) => OpId) {
    this.#idAt = idAt;
  }

  /** Number of ids held. */
  get size(): number {
    return this.#count;
  }

  /** The position of `id`, or `undefined`. */
  get(id: OpId): number | undefined {
    const entry = this.#slots[this.#find(id)];
    return entry === 0 ? undefined : entry - 1;
  }

  /** True when `id` is held. */
  has(id: OpId): boolean {
    return this.#slots[this.#find(id)] !== 0;
  }

  /** Records `id` at `position` (`idAt(position)` must already give it); replaces an earlier one. */
  set(id: OpId, position: number): void {
    const at = this.#find(id);
    const slots = this.#slots;
    if (slots[at] !== 0) {
      slots[at] = position + 1;
      return;
    }
    slots[at] = position + 1;
    slots[at + 1] = this.#hash(id);
    this.#count++;
    if (this.#count * 4 > slots.length) this.#resize(slots.length * 2);
  }

  /** Forgets `id` (while `idAt` still gives it for its position); false when it was not held. */
  delete(id: OpId): boolean {
    const slots = this.#slots;
    const mask = slots.length - 1;
    let hole = this.#find(id);
    if (slots[hole] === 0) return false;
    slots[hole] = 0;
    this.#count--;
    // Backward-shift deletion: move later entries of the probe run into the hole when they may.
    for (let next = (hole + 2) & mask; slots[next] !== 0; next = (next + 2) & mask) {
      const home = (slots[next + 1] << 1) & mask;
      const movable = hole <= next ? home <= hole || home > next : home <= hole && home > next;
      if (movable) {
        slots[hole] = slots[next];
        slots[hole + 1] = slots[next + 1];
        slots[next] = 0;
        hole = next;
      }
    }
    return true;
  }

  /** Forgets everything. */
  clear(): void {
    this.#slots = new Int32Array(2 * MIN_SLOTS);
    this.#count = 0;
  }

  #hash(id: OpId): number {
    if (id !== this.#lastId) {
      this.#lastId = id;
      this.#lastHash = hashOf(id);
    }
    return this.#lastHash;
  }

  /** The index in `#slots` of the slot holding `id`, or of the empty slot where it would go. */
  #find(id: OpId): number {
    const slots = this.#slots;
    const mask = slots.length - 1;
    const hash = this.#hash(id);
    let at = (hash << 1) & mask;
    while (slots[at] !== 0) {
      if (slots[at + 1] === hash && this.#idAt(slots[at] - 1) === id) return at;
      at = (at + 2) & mask;
    }
    return at;
  }

  #resize(length: number): void {
    const old = this.#slots;
    const slots = new Int32Array(length);
    const mask = length - 1;
    for (let i = 0; i < old.length; i += 2) {
      if (old[i] === 0) continue;
      let at = (old[i + 1] << 1) & mask;
      while (slots[at] !== 0) at = (at + 2) & mask;
      slots[at] = old[i];
      slots[at + 1] = old[i + 1];
    }
    this.#slots = slots;
  }
}
