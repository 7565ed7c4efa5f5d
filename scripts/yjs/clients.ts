/**
 * The Yjs client side of scripts/compare_yjs.ts, in its own process. Same
 * modes and output as compare/huskies_clients.ts, against the y-websocket
 * server:
 *
 * - `fanout <url> <subscribers> <rate> <updates>`: counting subscribers (native
 *   WebSocket; they answer the sync handshake like a provider and then only
 *   count stamps), then a writer `Y.Doc` sets `rate` values/s in a `Y.Map`.
 * - `load <url> <updates>`: a counting subscriber watches while the writer sets
 *   `updates` distinct keys within a window of 5,000 unconfirmed updates.
 * - `cold <url> <expected>`: a fresh `Y.Doc` syncs the whole document.
 *
 * The writer and the cold client speak y-websocket's sync protocol over npm
 * `ws`, as y-websocket's provider does under Node (`WebSocketPolyfill: ws`).
 * @module
 */
import WS from "ws";
import * as Y from "yjs";
import * as syncProtocol from "y-protocols/sync";
import * as encoding from "lib0/encoding";
import * as decoding from "lib0/decoding";
import {
  clientTcpBytes,
  fanoutResult,
  forEachStamp,
  nowMs,
  stampedValue,
} from "../compare/proc.ts";

const MESSAGE_SYNC = 0;
const [mode, url, ...rest] = Deno.args;
const print = (value: unknown) => console.log(JSON.stringify(value));
const tick = () => new Promise((resolve) => setTimeout(resolve, 1));

/** A message carrying sync step 1 for `doc` (its state vector). */
function syncStep1(doc: Y.Doc): Uint8Array {
  const encoder = encoding.createEncoder();
  encoding.writeVarUint(encoder, MESSAGE_SYNC);
  syncProtocol.writeSyncStep1(encoder, doc);
  return encoding.toUint8Array(encoder);
}

/** Handles one server message for `doc`; returns the reply to send, if any. */
function receive(doc: Y.Doc, data: Uint8Array, origin: unknown): Uint8Array | undefined {
  const decoder = decoding.createDecoder(data);
  if (decoding.readVarUint(decoder) !== MESSAGE_SYNC) return undefined; // awareness: unused
  const encoder = encoding.createEncoder();
  encoding.writeVarUint(encoder, MESSAGE_SYNC);
  syncProtocol.readSyncMessage(decoder, encoder, doc, origin);
  return encoding.length(encoder) > 1 ? encoding.toUint8Array(encoder) : undefined;
}

/**
 * Largest message the cold client takes: y-websocket sends the whole document
 * as one message, which past about 900k of these updates is over `ws`'s
 * default limit of 100 MiB (the socket is then closed with 1009).
 */
const COLD_MAX_PAYLOAD = 2 ** 30;

/** A doc kept in sync with the server over `ws`, the way y-websocket's provider does it. */
async function connectProvider(doc: Y.Doc, maxPayload?: number): Promise<WS> {
  const socket = new WS(url, maxPayload === undefined ? {} : { maxPayload });
  socket.binaryType = "arraybuffer";
  socket.on("message", (data: ArrayBuffer) => {
    const reply = receive(doc, new Uint8Array(data), socket);
    if (reply) socket.send(reply);
  });
  doc.on("update", (update: Uint8Array, origin: unknown) => {
    if (origin === socket) return;
    const encoder = encoding.createEncoder();
    encoding.writeVarUint(encoder, MESSAGE_SYNC);
    syncProtocol.writeUpdate(encoder, update);
    socket.send(encoding.toUint8Array(encoder));
  });
  await new Promise((resolve, reject) => {
    socket.once("open", resolve);
    socket.once("error", reject);
  });
  socket.send(syncStep1(doc));
  return socket;
}

/** A subscriber that answers the handshake from an empty doc and counts stamps. */
async function connectCounter(expected: number, latencies: number[]) {
  const socket = new WebSocket(url);
  socket.binaryType = "arraybuffer";
  const doc = new Y.Doc();
  const done = Promise.withResolvers<void>();
  const first = Promise.withResolvers<void>();
  let seen = 0;
  let handshaken = false;
  socket.onmessage = (event) => {
    const arrived = nowMs();
    const data = new Uint8Array(event.data as ArrayBuffer);
    first.resolve();
    if (!handshaken) {
      // The server's sync step 1: answer it (an empty doc has nothing to add).
      handshaken = true;
      const reply = receive(doc, data, socket);
      if (reply) socket.send(reply);
      return;
    }
    seen += forEachStamp(data, (sentAt) => latencies.push(arrived - sentAt));
    if (seen >= expected) done.resolve();
  };
  socket.onclose = (event) => {
    const error = new Error(`Cannot stay connected: closed ${event.code} ${event.reason}`);
    first.reject(error);
    if (seen < expected) done.reject(error);
  };
  await new Promise((resolve) => socket.onopen = resolve);
  socket.send(syncStep1(doc));
  await first.promise;
  return { done: done.promise, close: () => socket.close() };
}

async function fanout(subscribers: number, rate: number, updates: number) {
  const latencies: number[] = [];
  const counters = [];
  for (let i = 0; i < subscribers; i++) counters.push(await connectCounter(updates, latencies));
  const doc = new Y.Doc();
  const map = doc.getMap("items");
  const writer = await connectProvider(doc);
  print({ phase: "writing" });
  const start = nowMs();
  let made = 0;
  while (made < updates) {
    const due = Math.min(updates, Math.floor((nowMs() - start) * rate / 1000));
    for (; made < due; made++) map.set(`F-${made % 100}`, stampedValue(nowMs()));
    await tick();
  }
  await Promise.all(counters.map((counter) => counter.done));
  print({ result: fanoutResult(latencies, nowMs() - start) });
  for (const counter of counters) counter.close();
  writer.close();
}

async function load(updates: number) {
  const latencies: number[] = [];
  const observer = await connectCounter(updates, latencies);
  const doc = new Y.Doc();
  const map = doc.getMap("items");
  const writer = await connectProvider(doc);
  print({ phase: "writing" });
  const start = nowMs();
  for (let made = 0; made < updates;) {
    for (const end = Math.min(updates, made + 100); made < end; made++) {
      map.set(`k-${made}`, stampedValue(nowMs()));
    }
    const deadline = Date.now() + 60_000;
    while (made - latencies.length >= 5000) {
      if (Date.now() > deadline) throw new Error("Cannot measure: the server stopped relaying");
      await tick();
    }
  }
  await observer.done;
  print({ result: { ms: nowMs() - start, relayed: latencies.length } });
  observer.close();
  writer.close();
}

async function cold(expected: number) {
  const doc = new Y.Doc();
  const map = doc.getMap("items");
  const synced = Promise.withResolvers<void>();
  map.observe(() => {
    if (map.size === expected) synced.resolve();
  });
  print({ phase: "writing" });
  const start = nowMs();
  const socket = await connectProvider(doc, COLD_MAX_PAYLOAD);
  socket.on("close", (code: number) => {
    synced.reject(new Error(`Cannot measure: the cold sync's socket closed (${code})`));
  });
  await synced.promise;
  const ms = nowMs() - start;
  const bytes = await clientTcpBytes(Number(new URL(url).port));
  if (!String(map.get(`k-${expected - 1}`)).startsWith("t=")) {
    throw new Error("Cannot measure: cold sync lost the last value");
  }
  print({ result: { ms, received: bytes.received, sent: bytes.sent, sockets: bytes.connections } });
  socket.close();
}

if (mode === "fanout") await fanout(Number(rest[0]), Number(rest[1]), Number(rest[2]));
else if (mode === "load") await load(Number(rest[0]));
else if (mode === "cold") await cold(Number(rest[0]));
else throw new Error(`Cannot measure: unknown mode ${mode}`);
Deno.exit(0);
