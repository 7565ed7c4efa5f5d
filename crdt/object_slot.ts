/**
 * A value kept with an object for as long as the object lives, in a private
 * field stamped onto it: what a `WeakMap` would hold, without the collector's
 * work for each entry of a weak table. With an operation's cached encoding
 * and checks kept with it instead of in two `WeakMap`s and a `WeakSet`, chain
 * ingest ran 14 % faster (median of six alternating pairs,
 * `scripts/RESULTS.md`). A private field is invisible to everything but this
 * module: a copy made by spreading the object (with a field changed, say)
 * does not carry the value, and neither `Object.keys`, `Reflect.ownKeys`,
 * JSON, `structuredClone` nor `assert.deepStrictEqual` sees it.
 *
 * The field is stamped by a class whose base constructor returns the object
 * it is given (`super(object)` then initialises the subclass's fields on that
 * object). Setting and reading values this way took about half the time of
 * a symbol-keyed property set with `Reflect.defineProperty` (0.53-0.56
 * against 0.89-1.24 µs per object, `scripts/RESULTS.md`).
 * @module
 */

/** A constructor whose instances are the objects it is given, so a subclass's fields go on them. */
const ReturnsItsArgument = function (object: object) {
  return object;
} as unknown as new (object: object) => object;

/** One kind of value kept with objects; see the module doc. */
export class ObjectSlot<T> {
  readonly #get: (object: object) => T | undefined;
  readonly #set: (object: object, value: T) => void;

  /** Creates a slot; `description` names it (seen when a debugger shows the slot). */
  constructor(readonly description: string) {
    // A class per slot: each evaluation of the class body makes a private name of its own.
    class Stamp extends ReturnsItsArgument {
      #value: T;
      constructor(object: object, value: T) {
        super(object);
        this.#value = value;
      }
      static get(object: object): T | undefined {
        return #value in object ? (object as Stamp).#value : undefined;
      }
      static set(object: object, value: T): void {
        if (#value in object) (object as Stamp).#value = value;
        else new Stamp(object, value);
      }
    }
    this.#get = Stamp.get;
    this.#set = Stamp.set;
  }

  /** The value kept with `object`, or `undefined`. */
  get(object: object): T | undefined {
    return this.#get(object);
  }

  /**
   * Keeps `value` with `object` (replacing any) and returns it. An object
   * that cannot take new properties (frozen, sealed, made non-extensible)
   * keeps nothing, so callers compute again each time.
   */
  set(object: object, value: T): T {
    if (Object.isExtensible(object)) this.#set(object, value);
    return value;
  }
}
