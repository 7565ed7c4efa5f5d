/**
 * Live latency of a spoke -> hub -> spoke path with the writer on Deno's
 * native WebSocket client (TCP_NODELAY off) against npm `ws` (sets
 * TCP_NODELAY on its `node:net` socket). The hub is a native relay in its own
 * process; the writer and `--subscribers` native subscribers share this
 * process, so send and arrival times come from one clock. Runs alternate.
 *
 * `--echo` makes the hub answer each of the writer's messages (two-way traffic).
 *
 * Usage: deno run -A scripts/nodelay_latency.ts [--json] [--runs 3] [--subscribers 10]
 *        [--rate 1000] [--messages 5000] [--echo]
 */
import { parseArgs } from "node:util";
import WS from "ws";
import {
  cpuMs,
  forEachStamp,
  JsonChild,
  median,
  nowMs,
  quantile,
  stampedValue,
} from "./compare/proc.ts";

const { values: flags } = parseArgs({
  args: Deno.args,
  options: {
    json: { type: "boolean", default: false },
    runs: { type: "string", default: "3" },
    subscribers: { type: "string", default: "10" },
    rate: { type: "string", default: "1000" },
    messages: { type: "string", default: "5000" },
    echo: { type: "boolean", default: false },
  },
});
const runs = Number(flags.runs);
const subscriberCount = Number(flags.subscribers);
const rate = Number(flags.rate);
const messages = Number(flags.messages);

type Client = "native" | "ws";

/** The writer's side of a connection, whichever client opened it. */
interface Writer {
  send(text: string): void;
  bufferedAmount(): number;
  close(): void;
}

async function openWriter(client: Client, url: string): Promise<Writer> {
  if (client === "native") {
    const socket = new WebSocket(url);
    await new Promise((resolve, reject) => {
      socket.onopen = resolve;
      socket.onerror = () => reject(new Error("Cannot open native writer"));
    });
    return {
      send: (text) => socket.send(text),
      bufferedAmount: () => socket.bufferedAmount,
      close: () => socket.close(),
    };
  }
  const socket = new WS(url);
  await new Promise((resolve, reject) => {
    socket.once("open", resolve);
    socket.once("error", reject);
  });
  return {
    send: (text) => socket.send(text),
    bufferedAmount: () => socket.bufferedAmount,
    close: () => socket.close(),
  };
}

async function openSubscribers(url: string, expected: number, latencies: number[]) {
  const done: Promise<void>[] = [];
  const sockets: WebSocket[] = [];
  for (let i = 0; i < subscriberCount; i++) {
    const socket = new WebSocket(url);
    const finished = Promise.withResolvers<void>();
    let seen = 0;
    socket.onmessage = (event) => {
      const arrived = nowMs();
      seen += forEachStamp(String(event.data), (sentAt) => latencies.push(arrived - sentAt));
      if (seen >= expected) finished.resolve();
    };
    await new Promise((resolve) => socket.onopen = resolve);
    sockets.push(socket);
    done.push(finished.promise);
  }
  return { sockets, done: Promise.all(done) };
}

async function latencyRun(client: Client, port: number) {
  const latencies: number[] = [];
  const subs = await openSubscribers(`ws://127.0.0.1:${port}/sub`, messages, latencies);
  const writer = await openWriter(client, `ws://127.0.0.1:${port}/pub`);
  const cpuBefore = cpuMs(Deno.pid);
  const start = nowMs();
  let sent = 0;
  while (sent < messages) {
    const due = Math.min(messages, Math.floor((nowMs() - start) * rate / 1000));
    for (; sent < due; sent++) writer.send(stampedValue(nowMs()));
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  await subs.done;
  const cpu = cpuMs(Deno.pid) - cpuBefore;
  writer.close();
  for (const socket of subs.sockets) socket.close();
  latencies.sort((a, b) => a - b);
  return {
    p50: quantile(latencies, 0.5),
    p99: quantile(latencies, 0.99),
    count: latencies.length,
    cpuMs: cpu,
  };
}

/** CPU time this process spends per message sent flat out (no subscribers). */
async function sendCost(client: Client, port: number, count = 50_000): Promise<number> {
  const writer = await openWriter(client, `ws://127.0.0.1:${port}/pub`);
  const value = "u".repeat(100); // unstamped: a later run's subscribers must not count it
  const before = cpuMs(Deno.pid);
  for (let i = 0; i < count; i++) {
    writer.send(value);
    if (writer.bufferedAmount() > 1 << 20) {
      while (writer.bufferedAmount() > 1 << 18) await new Promise((r) => setTimeout(r, 1));
    }
  }
  while (writer.bufferedAmount() > 0) await new Promise((r) => setTimeout(r, 1));
  const cost = (cpuMs(Deno.pid) - before) * 1000 / count;
  writer.close();
  return cost;
}

const hub = new JsonChild(
  new URL("./compare/relay_hub.ts", import.meta.url),
  flags.echo ? ["--echo"] : [],
);
try {
  const { port } = await hub.next<{ port: number }>();
  const results: Record<Client, { p50: number[]; p99: number[]; cpu: number[]; send: number[] }> = {
    native: { p50: [], p99: [], cpu: [], send: [] },
    ws: { p50: [], p99: [], cpu: [], send: [] },
  };
  for (let run = 0; run < runs; run++) {
    for (const client of run % 2 === 0 ? ["native", "ws"] as const : ["ws", "native"] as const) {
      const r = await latencyRun(client, port);
      if (r.count !== messages * subscriberCount) throw new Error(`lost messages: ${r.count}`);
      results[client].p50.push(r.p50);
      results[client].p99.push(r.p99);
      results[client].cpu.push(r.cpuMs);
      results[client].send.push(await sendCost(client, port));
    }
  }
  for (const client of ["native", "ws"] as const) {
    const r = results[client];
    const row = {
      client,
      p50_ms: median(r.p50),
      p99_ms: median(r.p99),
      clients_cpu_ms: median(r.cpu),
      send_cpu_us_per_msg: median(r.send),
      runs,
      echo: flags.echo,
      subscribers: subscriberCount,
      rate,
      messages,
    };
    if (flags.json) console.log(JSON.stringify(row));
    else {
      console.log(
        `${client.padEnd(7)} p50 ${row.p50_ms.toFixed(2)} ms  p99 ${row.p99_ms.toFixed(2)} ms  ` +
          `clients CPU ${row.clients_cpu_ms.toFixed(0)} ms  send ${
            row.send_cpu_us_per_msg.toFixed(2)
          } µs CPU/msg  (median of ${runs}; p50 runs ${r.p50.map((v) => v.toFixed(2)).join(", ")})`,
      );
    }
  }
} finally {
  await hub.stop();
}
Deno.exit(0);
