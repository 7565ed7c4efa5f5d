/**
 * A lightweight huskies protocol peer for the benchmarks: it authenticates,
 * asks for nothing (empty clock), says `ready`, then only counts the stamped
 * benchmark values in the frames it receives. It neither verifies nor stores:
 * it stands for the subscribers whose delivery latency the hub decides. It
 * keeps the heartbeat of PROTOCOL.md §6.4 (a ping every 5 s, a pong to each
 * ping), so a run that outlasts the hub's 15 s silence limit is not cut short.
 * @module
 */
import { ClientHandshake } from "../../auth/handshake.ts";
import { Identity } from "../../crdt/identity.ts";
import { PING_FRAME, PONG_FRAME } from "../../sync/frames.ts";
import { forEachStamp, nowMs } from "./proc.ts";

const READY = '{"type":"ready"}';
/** How the hub under test writes its pings (with or without a clock). */
const PING_PREFIX = '{"type":"ping"';
const PING_INTERVAL_MS = 5000;

/** A connected peer: resolves `done` when it has seen `expected` stamps. */
export interface CountingPeer {
  /** Resolves once `expected` stamped values arrived. */
  done: Promise<void>;
  /** Closes the socket. */
  close(): void;
}

/**
 * Connects a peer to `url` with the native WebSocket client and resolves once
 * the hub said `ready`. Each stamped value's latency (arrival minus stamp, ms)
 * goes to `latencies`; `onStamp`, when given, also gets its stamp and arrival
 * (ms since the epoch), for traces.
 */
export function connectCountingPeer(
  url: string,
  expected: number,
  latencies: number[],
  onStamp?: (sentAtMs: number, arrivedMs: number) => void,
): Promise<CountingPeer> {
  const ready = Promise.withResolvers<CountingPeer>();
  const done = Promise.withResolvers<void>();
  done.promise.catch(() => {});
  const socket = new WebSocket(url);
  socket.binaryType = "arraybuffer";
  const handshake = new ClientHandshake({ identity: Identity.generate() });
  handshake.start();
  let authenticated = false;
  let seen = 0;
  let heartbeat: ReturnType<typeof setInterval> | undefined;
  const peer: CountingPeer = { done: done.promise, close: () => socket.close() };
  socket.onmessage = (event) => {
    if (!authenticated) {
      const step = handshake.receive(event.data);
      if (step.send) socket.send(step.send);
      if (step.done) {
        authenticated = true;
        socket.send(JSON.stringify({ type: "clock", clock: {} }));
        socket.send(READY);
        heartbeat = setInterval(() => socket.send(PING_FRAME), PING_INTERVAL_MS);
      }
      return;
    }
    const arrived = nowMs();
    const data = typeof event.data === "string" ? event.data : new Uint8Array(event.data);
    if (typeof data === "string" && data.startsWith(PING_PREFIX)) socket.send(PONG_FRAME);
    if (data === READY) ready.resolve(peer);
    seen += forEachStamp(data, (sentAt) => {
      latencies.push(arrived - sentAt);
      onStamp?.(sentAt, arrived);
    });
    if (seen >= expected) done.resolve();
  };
  socket.onerror = () => {};
  socket.onclose = (event) => {
    clearInterval(heartbeat);
    const error = new Error(`Cannot stay connected: peer closed ${event.code} ${event.reason}`);
    ready.reject(error);
    if (seen < expected) done.reject(error);
  };
  return ready.promise;
}
