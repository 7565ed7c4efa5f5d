/**
 * A partition over real sockets: an in-process TCP proxy between a spoke and
 * its hub stops forwarding (no close, no reset: a dead router). The
 * heartbeat notices within its window, and once the proxy forwards again
 * the spoke redials and converges within seconds, not at TCP's pace.
 */
import assert from "node:assert/strict";
import { CloseCode } from "../protocol/close_codes.ts";
import { HuskiesNode } from "../sync/node.ts";
import { serveNode } from "./net_helpers.ts";

/** A TCP proxy to `target` that can stop forwarding (holding what it has read) and resume. */
class PausableProxy {
  readonly #listener: Deno.TcpListener;
  readonly #conns = new Set<Deno.Conn>();
  #paused = false;
  #resume = Promise.withResolvers<void>();
  readonly #done: Promise<void>;

  constructor(target: number) {
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.#done = this.#accept(target);
  }

  get port(): number {
    return (this.#listener.addr as Deno.NetAddr).port;
  }

  pause(): void {
    this.#paused = true;
    this.#resume = Promise.withResolvers<void>();
  }

  resume(): void {
    this.#paused = false;
    this.#resume.resolve();
  }

  async #accept(target: number): Promise<void> {
    for await (const inbound of this.#listener) {
      this.#track(inbound);
      this.#serve(inbound, target).catch(() => {});
    }
  }

  #track(conn: Deno.Conn): void {
    this.#conns.add(conn);
  }

  async #serve(inbound: Deno.Conn, target: number): Promise<void> {
    while (this.#paused) await this.#resume.promise; // a SYN into the void: nothing answers
    const outbound = await Deno.connect({ hostname: "127.0.0.1", port: target });
    this.#track(outbound);
    await Promise.allSettled([this.#pipe(inbound, outbound), this.#pipe(outbound, inbound)]);
    for (const conn of [inbound, outbound]) this.#close(conn);
  }

  async #pipe(from: Deno.Conn, to: Deno.Conn): Promise<void> {
    const buffer = new Uint8Array(64 * 1024);
    for (;;) {
      const n = await from.read(buffer);
      if (n === null) break;
      while (this.#paused) await this.#resume.promise; // held, as TCP holds unacknowledged data
      let written = 0;
      while (written < n) written += await to.write(buffer.subarray(written, n));
    }
    try {
      await to.closeWrite();
    } catch {
      // already closed
    }
  }

  #close(conn: Deno.Conn): void {
    if (!this.#conns.delete(conn)) return;
    try {
      conn.close();
    } catch {
      // already closed
    }
  }

  async close(): Promise<void> {
    this.resume();
    this.#listener.close();
    for (const conn of [...this.#conns]) this.#close(conn);
    await this.#done.catch(() => {});
  }
}

Deno.test("a dead link through a silent proxy is noticed by the heartbeat and healed within seconds", async () => {
  const heartbeat = { pingIntervalMs: 200, pongTimeoutMs: 1_000 };
  const hub = await serveNode(heartbeat);
  const proxy = new PausableProxy(hub.port);
  const spoke = await HuskiesNode.open({ open: true, ...heartbeat, dialTimeoutMs: 1_000 });
  try {
    spoke.connect(`ws://127.0.0.1:${proxy.port}/crdt-sync`, {
      initialMs: 100,
      maxMs: 500,
      healthyAfterMs: 500,
    });
    await spoke.connected(hub.node.nodeId, { timeoutMs: 10_000 });

    const dropped = spoke.once("session-closed", { timeoutMs: 10_000 });
    const cutAt = Date.now();
    proxy.pause();
    hub.node.pipeline.put("during", { stage: "qa" });
    const closed = await dropped;
    const detectMs = Date.now() - cutAt;
    assert.equal(closed.code, CloseCode.KEEPALIVE_TIMEOUT);
    // Noticed within the silence timeout (plus a heartbeat interval and scheduling slack).
    assert.ok(detectMs < 3_000, `noticed after ${detectMs} ms`);

    const arrived = spoke.once("applied", { timeoutMs: 10_000 });
    const healAt = Date.now();
    proxy.resume();
    await arrived;
    const convergeMs = Date.now() - healAt;
    assert.equal(spoke.pipeline.get("during")?.stage, "qa");
    assert.ok(convergeMs < 5_000, `converged ${convergeMs} ms after the heal`);
    if (Deno.env.get("SIM_VERBOSE") === "1") {
      console.log(`noticed after ${detectMs} ms; converged ${convergeMs} ms after the heal`);
    }
  } finally {
    await spoke.close();
    await proxy.close();
    await hub.stop();
  }
});
