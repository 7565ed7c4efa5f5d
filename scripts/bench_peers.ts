/**
 * Fan-out benchmark peers: connects N lightweight protocol peers to a hub,
 * records when each live operation arrives, and prints latency figures as
 * JSON on stdout. Run by scripts/bench.ts in its own process so the hub's
 * process measures only the hub.
 *
 * Usage: deno run -A scripts/bench_peers.ts <url> <peers> <expected ops>
 */
import { connectCountingPeer } from "./compare/huskies_peer.ts";
import { quantile } from "./compare/proc.ts";

const [url, peersArg, expectedArg] = Deno.args;
const peers = Number(peersArg);
const expected = Number(expectedArg);
const latencies: number[] = [];
const connected = [];
for (let i = 0; i < peers; i++) connected.push(await connectCountingPeer(url, expected, latencies));
console.log(JSON.stringify({ ready: peers }));
await Promise.all(connected.map((peer) => peer.done));
latencies.sort((a, b) => a - b);
console.log(JSON.stringify({
  count: latencies.length,
  p50: quantile(latencies, 0.5),
  p99: quantile(latencies, 0.99),
  max: quantile(latencies, 1),
}));
Deno.exit(0);
