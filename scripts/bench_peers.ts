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
const decoder = new TextDecoder();
const READY = '{"type":"ready"}';
const done = Promise.withResolvers<void>();

const SENT_AT = /"sent_at_us":(\d+)/g;

/** Records the latency of every benchmark operation in a frame; returns how many it saw. */
function record(text: string): number {
  const arrived = now();
  let seen = 0;
  for (const match of text.matchAll(SENT_AT)) {
    latencies.push(arrived - Number(match[1]) / 1000);
    seen++;
  }
  return seen;
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
    const text = typeof event.data === "string" ? event.data : decoder.decode(event.data);
    if (text === READY) ready.resolve();
    const seen = record(text);
    received += seen;
    if (seen > 0 && received >= expected && received - seen < expected) {
      if (++finished === peers) done.resolve();
    }
  };
  socket.onerror = () => {};
  socket.onclose = (event) => {
    ready.reject(new Error(`peer closed before ready: ${event.code} ${event.reason}`));
    done.reject(new Error(`peer closed: ${event.code} ${event.reason}`));
  };
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
