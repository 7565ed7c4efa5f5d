/**
 * In-memory channels: two nodes in one process connect with no sockets.
 * @module
 */
import type { Channel, ChannelReceiver, Dialer } from "../sync/channel.ts";
import type { HuskiesNode } from "../sync/node.ts";

/** Close code each end reports when its peer end was closed without a code. */
const ABNORMAL = 1006;

class MemoryEnd implements Channel {
  peer!: MemoryEnd;
  #receiver: ChannelReceiver | undefined;
  readonly #early: (string | Uint8Array)[] = [];
  #closeNotice: { code: number; reason: string } | undefined;
  #open = true;
  #notified = false;

  get bufferedAmount(): number {
    return 0;
  }

  send(data: string | Uint8Array): void {
    if (!this.#open) throw new Error("Cannot send: the channel is closed");
    const copy = typeof data === "string" ? data : data.slice();
    const peer = this.peer;
    queueMicrotask(() => peer.#deliver(copy));
  }

  close(code: number, reason: string): void {
    if (!this.#open) return;
    this.#open = false;
    this.peer.#open = false;
    // Frames already sent arrive first (microtasks run in order).
    queueMicrotask(() => {
      this.#closed(code, reason);
      this.peer.#closed(code, reason);
    });
  }

  listen(receiver: ChannelReceiver): void {
    if (this.#receiver) throw new Error("Cannot listen on a channel twice");
    this.#receiver = receiver;
    for (const data of this.#early.splice(0)) receiver.frame(data);
    if (this.#closeNotice) this.#notify();
  }

  #deliver(data: string | Uint8Array): void {
    if (this.#notified) return;
    if (this.#receiver) this.#receiver.frame(data);
    else this.#early.push(data);
  }

  #closed(code: number, reason: string): void {
    this.#closeNotice ??= { code: code || ABNORMAL, reason };
    if (this.#receiver) this.#notify();
  }

  #notify(): void {
    if (this.#notified) return;
    this.#notified = true;
    this.#receiver!.closed(this.#closeNotice!.code, this.#closeNotice!.reason);
  }
}

/**
 * Two connected channel ends: what one sends, the other receives (in order,
 * asynchronously); closing either closes both.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { memoryChannelPair } from "@huskies/sync/testing";
 *
 * const [a, b] = memoryChannelPair();
 * const got: (string | Uint8Array)[] = [];
 * const closed = Promise.withResolvers<[number, string]>();
 * b.listen({ frame: (data) => got.push(data), closed: (code, reason) => closed.resolve([code, reason]) });
 * a.listen({ frame() {}, closed() {} });
 * a.send("hello");
 * a.close(1000, "done");
 * assert.deepEqual(await closed.promise, [1000, "done"]);
 * assert.deepEqual(got, ["hello"]); // frames arrive in order, before the close
 * ```
 */
export function memoryChannelPair(): [Channel, Channel] {
  const a = new MemoryEnd();
  const b = new MemoryEnd();
  a.peer = b;
  b.peer = a;
  return [a, b];
}

/**
 * A {@link Dialer} that connects to nodes in this process: `resolve` names
 * the node for a URL (undefined: unreachable). Pass it as `NodeOptions.dialer`.
 *
 * @example Connect two nodes with no sockets
 * ```ts
 * import assert from "node:assert/strict";
 * import { HuskiesNode } from "@huskies/sync";
 * import { memoryDialer } from "@huskies/sync/testing";
 *
 * await using hub = await HuskiesNode.open({ open: true });
 * await using spoke = await HuskiesNode.open({ open: true, dialer: memoryDialer(() => hub) });
 * spoke.connect("memory://hub");
 * await spoke.connected(hub.nodeId, { timeoutMs: 5000 });
 * spoke.pipeline.put("S-1", { stage: "qa" });
 * await hub.once("applied", { timeoutMs: 5000 });
 * assert.equal(hub.pipeline.get("S-1")?.stage, "qa");
 * ```
 */
export function memoryDialer(resolve: (url: string) => HuskiesNode | undefined): Dialer {
  return (url) => {
    const target = resolve(url);
    if (target === undefined) {
      return Promise.resolve({ ok: false, code: ABNORMAL, reason: "unreachable" });
    }
    const [near, far] = memoryChannelPair();
    target.accept(far, { remote: "memory" }).catch(() => {});
    return Promise.resolve({ ok: true, channel: near });
  };
}
