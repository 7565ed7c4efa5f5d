/**
 * The huskies client side of scripts/compare_yjs.ts, in its own process:
 *
 * - `fanout <url> <subscribers> <rate> <updates> <native|ws>`: counting peers
 *   subscribe, then a writer node (in memory, a spoke dialling the hub with
 *   `HuskiesNode.connect`) commits `rate` updates/s of 100-byte values;
 *   prints latency figures once every peer has every update.
 * - `load <url> <updates> <native|ws>`: one counting peer watches while the
 *   writer commits `updates` updates to distinct items as fast as a window of
 *   5,000 unconfirmed updates allows; prints the writer's state hash.
 * - `cold <url> <expected> <state hash> <sqlite|memory>`: a fresh node dials
 *   the hub and syncs everything; prints the time and the bytes on its socket.
 *
 * `ws` dials with the node's default `noDelayDialer` (npm `ws`, TCP_NODELAY),
 * `native` with `webSocketDialer` (Deno's client); the counting peers keep
 * the native client.
 *
 * `HUSKIES_LIVE_BATCH_MS` in the environment overrides the writer's live
 * batching window (default 2 ms).
 *
 * Each step prints one JSON line: `{"phase": "writing"}` when the measured
 * period starts, then `{"result": {...}}`.
 * @module
 */
import { join } from "node:path";
import { HuskiesNode } from "../../sync/node.ts";
import { webSocketDialer } from "../../sync/websocket.ts";
import { noDelayDialer } from "../../sync/ws_dialer.ts";
import { connectCountingPeer, type CountingPeer } from "./huskies_peer.ts";
import { clientTcpBytes, fanoutResult, nowMs, stampedValue, tick, writeAtRate } from "./proc.ts";

const [mode, url, ...rest] = Deno.args;
const print = (value: unknown) => console.log(JSON.stringify(value));

/** Resolves once `check` holds, polling each millisecond; throws after `ms`. */
async function waitFor(check: () => boolean, what: string, ms = 60_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`Cannot measure: timed out waiting for ${what}`);
    await tick();
  }
}

async function openWriter(client: string): Promise<HuskiesNode> {
  if (client !== "ws" && client !== "native") {
    throw new Error(`Cannot measure: unknown client ${client}`);
  }
  const liveBatchMs = Deno.env.get("HUSKIES_LIVE_BATCH_MS");
  const writer = await HuskiesNode.open({
    open: true,
    dialer: client === "ws" ? noDelayDialer : webSocketDialer,
    ...(liveBatchMs !== undefined ? { liveBatchMs: Number(liveBatchMs) } : {}),
  });
  writer.connect(url);
  await waitFor(() => writer.sessions().some((s) => s.stats().state === "live"), "writer live");
  return writer;
}

async function fanout(subscribers: number, rate: number, updates: number, client: string) {
  const latencies: number[] = [];
  const peers: CountingPeer[] = [];
  for (let i = 0; i < subscribers; i++) {
    peers.push(await connectCountingPeer(url, updates, latencies));
  }
  const writer = await openWriter(client);
  print({ phase: "writing" });
  const start = nowMs();
  await writeAtRate(writer.replica, updates, rate, start);
  await Promise.all(peers.map((peer) => peer.done));
  print({ result: fanoutResult(latencies, nowMs() - start) });
  for (const peer of peers) peer.close();
  await writer.close();
}

async function load(updates: number, client: string) {
  const latencies: number[] = [];
  const observer = await connectCountingPeer(url, updates, latencies);
  const writer = await openWriter(client);
  print({ phase: "writing" });
  const start = nowMs();
  for (let made = 0; made < updates;) {
    for (const end = Math.min(updates, made + 100); made < end; made++) {
      writer.replica.commit([{
        type: "update",
        path: ["items", `k-${made}`],
        fields: { value: stampedValue(nowMs()) },
      }]);
    }
    await waitFor(() => made - latencies.length < 5000, "the hub to relay");
  }
  await observer.done;
  print({
    result: {
      ms: nowMs() - start,
      relayed: latencies.length,
      stateHash: writer.replica.stateHash(),
    },
  });
  observer.close();
  await writer.close();
}

async function cold(expected: number, stateHash: string, store: string) {
  const dir = await Deno.makeTempDir({ prefix: "huskies-compare-cold-" });
  try {
    const node = await HuskiesNode.open({
      ...(store === "sqlite" ? { dataDir: join(dir, "node") } : {}),
      open: true,
    });
    const synced = Promise.withResolvers<void>();
    node.replica.onApplied(() => {
      if (node.replica.size === expected) synced.resolve();
    });
    print({ phase: "writing" });
    const start = nowMs();
    node.connect(url);
    await synced.promise;
    const ms = nowMs() - start;
    const bytes = await clientTcpBytes(Number(new URL(url).port));
    if (node.replica.stateHash() !== stateHash) {
      throw new Error("Cannot measure: cold sync diverged");
    }
    print({
      result: { ms, received: bytes.received, sent: bytes.sent, sockets: bytes.connections },
    });
    await node.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

if (mode === "fanout") await fanout(Number(rest[0]), Number(rest[1]), Number(rest[2]), rest[3]);
else if (mode === "load") await load(Number(rest[0]), rest[1]);
else if (mode === "cold") await cold(Number(rest[0]), rest[1], rest[2]);
else throw new Error(`Cannot measure: unknown mode ${mode}`);
Deno.exit(0);
