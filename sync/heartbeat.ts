/**
 * The application heartbeat of one session (`PROTOCOL.md` §6.4): when we
 * last heard the peer and last pinged it, and what is due. Pure.
 * @module
 */

/** See the module doc. */
export class Heartbeat {
  /** When the peer was last heard (any frame), ms. */
  lastReceived: number;
  #lastPing: number;

  /** Starts at `now`; 0 disables the ping or the silence limit. */
  constructor(now: number, readonly intervalMs: number, readonly timeoutMs: number) {
    this.lastReceived = this.#lastPing = now;
  }

  /** What is due at `now`: drop a `silent` peer, send a `ping`, or nothing. */
  due(now: number): "silent" | "ping" | undefined {
    if (this.timeoutMs > 0 && now - this.lastReceived > this.timeoutMs) return "silent";
    if (this.intervalMs > 0 && now - this.#lastPing >= this.intervalMs) {
      this.#lastPing = now;
      return "ping";
    }
    return undefined;
  }

  /** When {@link due} next has something to do. */
  get wakeAt(): number {
    return Math.min(
      this.intervalMs > 0 ? this.#lastPing + this.intervalMs : Infinity,
      this.timeoutMs > 0 ? this.lastReceived + this.timeoutMs + 1 : Infinity,
    );
  }
}
