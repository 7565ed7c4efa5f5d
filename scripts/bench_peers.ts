/**
 * Fan-out benchmark peers: connects N lightweight protocol peers to a hub,
 * records when each live operation arrives, and prints latency figures as
 * JSON on stdout. Run by scripts/bench.ts in its own process so the hub's
 * process measures only the hub.
 *
 * Usage: deno run -A scripts/bench_peers.ts <url> <peers> <expected ops>
 */
import { ClientHandshake } from "../auth/handshake.ts";
import { Identity } from "../crdt/identity.ts";

const [url, peersArg, expectedArg] = Deno.args;
const peers = Number(peersArg);
const expected = Number(expectedArg);
const now = () => performance.timeOrigin + performance.now();
const latencies: number[] = [];
let finished = 0;
const done = Promise.withResolvers<void>();

function record(op: { mutation: { fields?: { sent_at_us?: number } } }): boolean {
  const sent = op.mutation.fields?.sent_at_us;
  if (typeof sent !== "number") return false;
  latencies.push(now() - sent / 1000);
  return true;
}

function connect(): Promise<void> {
  const ready = Promise.withResolvers<void>();
  const socket = new WebSocket(url);
  socket.binaryType = "arraybuffer";
  const handshake = new ClientHandshake({ identity: Identity.generate() });
  handshake.start();
  let authenticated = false;
  let received = 0;
  socket.onmessage = (event) => {
    if (!authenticated) {
      const step = handshake.receive(event.data);
      if (step.send) socket.send(step.send);
      if (step.done) {
        authenticated = true;
        socket.send(JSON.stringify({ type: "clock", clock: {} }));
        socket.send(JSON.stringify({ type: "ready" }));
      }
      return;
    }
    const text = typeof event.data === "string" ? event.data : new TextDecoder().decode(event.data);
    const frame = JSON.parse(text);
    if (frame.type === "ready") ready.resolve();
    const ops = frame.op ? [frame.op] : frame.type === "bulk" ? frame.ops : [];
    for (const op of ops) if (record(op)) received++;
    if (received >= expected && received - ops.length < expected) {
      if (++finished === peers) done.resolve();
    }
  };
  socket.onerror = () => {};
  return ready.promise;
}

for (let i = 0; i < peers; i++) await connect();
console.log(JSON.stringify({ ready: peers }));
await done.promise;
latencies.sort((a, b) => a - b);
const at = (q: number) =>
  latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))];
console.log(JSON.stringify({ count: latencies.length, p50: at(0.5), p99: at(0.99), max: at(1) }));
Deno.exit(0);
