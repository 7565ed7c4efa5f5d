/**
 * A value kept with an object for as long as the object lives, in a
 * non-enumerable property under a key of its own: what a `WeakMap` would
 * hold, without the collector's work for each entry of a weak table. With an
 * operation's cached encoding and checks kept this way instead of in two
 * `WeakMap`s and a `WeakSet`, chain ingest ran 14 % faster (median of six
 * alternating pairs, `scripts/RESULTS.md`). Not enumerable, so a copy made by
 * spreading the object (with a field changed, say) does not carry the value,
 * and neither JSON, `structuredClone` nor `assert.deepStrictEqual` sees it.
 * @module
 */

/** One kind of value kept with objects; see the module doc. */
export class ObjectSlot<T> {
  readonly #key: symbol;

  /** Creates a slot; `description` names its key (seen only in a debugger). */
  constructor(description: string) {
    this.#key = Symbol(description);
  }

  /** The value kept with `object`, or `undefined`. */
  get(object: object): T | undefined {
    return (object as Record<symbol, T | undefined>)[this.#key];
  }

  /**
   * Keeps `value` with `object` (replacing any) and returns it. An object
   * that cannot take it (frozen, sealed) keeps nothing.
   */
  set(object: object, value: T): T {
    Reflect.defineProperty(object, this.#key, { value, writable: true }); // false when it cannot
    return value;
  }
}
