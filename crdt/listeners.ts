/**
 * A set of listeners with one signature: subscribe (returning the
 * unsubscribe function), call them all, forget them all.
 * @module
 */

/** Listeners taking `Args`. */
export class Listeners<Args extends unknown[]> {
  readonly #set = new Set<(...args: Args) => void>();

  /** True when nobody listens. */
  get empty(): boolean {
    return this.#set.size === 0;
  }

  /** Subscribes `listener`; returns the unsubscribe function. */
  add(listener: (...args: Args) => void): () => void {
    this.#set.add(listener);
    return () => this.#set.delete(listener);
  }

  /** Calls every listener, in subscription order. */
  emit(...args: Args): void {
    for (const listener of this.#set) listener(...args);
  }

  /** Forgets every listener. */
  clear(): void {
    this.#set.clear();
  }
}
