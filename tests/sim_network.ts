/**
 * A deterministic simulated network for sync tests: many nodes, each a real
 * {@link Replica} with real {@link SyncSession}s, joined by in-memory links.
 *
 * - Time is virtual. Every frame, close notice and scheduled action is an
 *   event in a priority queue ordered by (time, sequence number); nothing
 *   waits on a real timer, so a run takes as long as its CPU work.
 * - Within one connection each direction is FIFO (as a WebSocket is); frames
 *   on different links interleave by their random delays.
 * - Faults: a link drop ends the connection at once (both sessions see a
 *   close, frames in flight are lost); a partition keeps a set of links down
 *   for a while; a restart crashes a node (its connections drop, the replica
 *   is closed) and reopens it later from a store holding what was persisted.
 *   Dropped links reconnect after a random back-off, as the real node does.
 * - Every random choice comes from one seeded generator, so a seed replays a
 *   run exactly.
 * - Between events the loop lets microtasks run, because sessions flush live
 *   operations in a microtask and send catch-up from an async function.
 *
 * Each node does the hub fan-out exactly as `sync/node.ts` does: operations
 * applied from one session are queued for every other session of the node,
 * fork proofs are passed on the same way, and newly quarantined operations of
 * forked authors are queued for every session.
 * @module
 */
import type { Identity } from "../crdt/identity.ts";
import type { Operation } from "../crdt/operation.ts";
import { Pipeline } from "../crdt/pipeline.ts";
import type { PendingLimits } from "../crdt/log.ts";
import { Replica } from "../crdt/replica.ts";
import { type ForkProof, MemoryStore } from "../crdt/store.ts";
import { bulkFrames } from "../sync/frames.ts";
import type { Logger, LogLevel } from "../sync/logger.ts";
import { type Channel, type SessionLimits, SyncSession } from "../sync/session.ts";

/** A seeded 32-bit generator (mulberry32) returning floats in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Random choices drawn from one seeded {@link mulberry32} stream. */
export class Rng {
  readonly #next: () => number;

  /** Creates a generator; the same seed gives the same sequence. */
  constructor(seed: number) {
    this.#next = mulberry32(seed);
  }

  /** A float in [0, 1). */
  float(): number {
    return this.#next();
  }

  /** An integer in [min, max] (both inclusive). */
  int(min: number, max: number): number {
    return min + Math.floor(this.#next() * (max - min + 1));
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return this.#next() < p;
  }

  /** One element of a non-empty array. */
  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new RangeError("Cannot pick from an empty array");
    return items[Math.floor(this.#next() * items.length)];
  }

  /** A shuffled copy (Fisher-Yates). */
  shuffle<T>(items: readonly T[]): T[] {
    const out = [...items];
    for (let i = out.length - 1; i > 0; i--) {
      const j = Math.floor(this.#next() * (i + 1));
      [out[i], out[j]] = [out[j], out[i]];
    }
    return out;
  }

  /** Up to `count` distinct elements in random order. */
  sample<T>(items: readonly T[], count: number): T[] {
    return this.shuffle(items).slice(0, count);
  }
}

interface SimEvent {
  time: number;
  seq: number;
  run: () => void;
}

/** A binary min-heap of events ordered by (time, seq). */
class EventQueue {
  readonly #heap: SimEvent[] = [];

  get size(): number {
    return this.#heap.length;
  }

  peek(): SimEvent | undefined {
    return this.#heap[0];
  }

  push(event: SimEvent): void {
    const heap = this.#heap;
    heap.push(event);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(heap[i], heap[parent])) break;
      [heap[i], heap[parent]] = [heap[parent], heap[i]];
      i = parent;
    }
  }

  pop(): SimEvent | undefined {
    const heap = this.#heap;
    const top = heap[0];
    const last = heap.pop();
    if (heap.length > 0 && last !== undefined) {
      heap[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < heap.length && before(heap[l], heap[m])) m = l;
        if (r < heap.length && before(heap[r], heap[m])) m = r;
        if (m === i) break;
        [heap[i], heap[m]] = [heap[m], heap[i]];
        i = m;
      }
    }
    return top;
  }
}

function before(a: SimEvent, b: SimEvent): boolean {
  return a.time < b.time || (a.time === b.time && a.seq < b.seq);
}

/** The error a {@link FlakyStore} throws. */
export const DISK_ERROR = "simulated disk error";

/**
 * A {@link MemoryStore} whose `append` sometimes fails as a disk can: it
 * throws and stores nothing. Failures start once the store is armed.
 */
export class FlakyStore extends MemoryStore {
  readonly #fails: () => boolean;
  #armed = false;

  /** `fails` is asked once per non-empty append. */
  constructor(fails: () => boolean) {
    super();
    this.#fails = fails;
  }

  /** Lets appends fail from now on. */
  arm(): void {
    this.#armed = true;
  }

  /** Appends, unless this append is chosen to fail. */
  override append(ops: readonly Operation[]): void {
    if (this.#armed && ops.length > 0 && this.#fails()) throw new Error(DISK_ERROR);
    super.append(ops);
  }
}

/** Makes a node's store, holding `ops` and `forks` (what survived a crash). */
export type StoreFactory = (ops: readonly Operation[], forks: readonly ForkProof[]) => MemoryStore;

/** An inclusive range of virtual milliseconds. */
export interface DelayRange {
  min: number;
  max: number;
}

/** Options for a {@link SimNetwork}. */
export interface SimOptions {
  /** Seed of every random choice the network makes. */
  seed: number;
  /** Delay of one frame on a link, in virtual ms. @default 1 to 40 */
  frameDelay?: DelayRange;
  /** Wait before a dropped link is dialled again, in virtual ms. @default 20 to 300 */
  reconnectDelay?: DelayRange;
  /** Limits given to every session (keepalive and live batching are always off). */
  sessionLimits?: SessionLimits;
  /** Events after which {@link SimNetwork.runUntilQuiescent} gives up. @default 2,000,000 */
  maxEvents?: number;
  /** Keep a trace of the last events, for failure reports. @default 0 (off) */
  traceLength?: number;
  /** Bounds of every replica's pending buffer. @default the replica's defaults */
  pending?: PendingLimits;
  /** Share of store appends that fail (see {@link FlakyStore}). @default 0 */
  storeFailureRate?: number;
}

/** Close code the harness reports when a link breaks (as browsers report an abnormal close). */
export const LINK_DROPPED = 1006;

/** One simulated node: a replica, its pipeline, its live sessions and its "disk". */
export class SimNode {
  /** Name in reports (node ids can repeat when a test forks an identity). */
  readonly name: string;
  /** The signing identity. */
  readonly identity: Identity;
  /** The current replica (replaced on every restart). */
  replica: Replica;
  /** A pipeline over {@link replica} whose clock is the network's virtual time. */
  pipeline: Pipeline;
  /** The current store (replaced, pre-filled, on every restart). */
  store: MemoryStore;
  /** Sessions currently open, as `sync/node.ts` keeps them. */
  readonly sessions = new Set<SyncSession>();
  /** False while the node is down (between a crash and its restart). */
  up = true;
  /** Number of restarts so far. */
  restarts = 0;
  /** Bumped on every crash, so a stale "come back up" event does nothing. */
  epoch = 0;
  readonly #pending?: PendingLimits;
  readonly #makeStore: StoreFactory;

  /** Created through {@link SimNetwork.addNode}. */
  constructor(
    name: string,
    identity: Identity,
    makeStore: StoreFactory,
    now: () => number,
    pending?: PendingLimits,
  ) {
    this.name = name;
    this.identity = identity;
    this.#makeStore = makeStore;
    const store = this.store = makeStore([], []);
    this.#pending = pending;
    this.replica = Replica.open({ identity, store, pending });
    this.pipeline = new Pipeline(this.replica, now);
    this.#wire();
  }

  /** The node id (hex public key). */
  get nodeId(): string {
    return this.identity.nodeId;
  }

  /** The hub fan-out of `sync/node.ts`: pass on what one session brought to all others. */
  #wire(): void {
    this.replica.onApplied((ops, origin) => {
      for (const session of this.sessions) if (session !== origin) session.enqueue(ops);
    });
    this.replica.onFork((proof, origin) => {
      for (const session of this.sessions) if (session !== origin) session.sendForkProof(proof);
    });
    this.replica.onQuarantined((ops) => {
      for (const session of this.sessions) session.enqueue(ops, true);
    });
  }

  /** Closes the replica and keeps what its store persisted. Sessions must already be closed. */
  crash(): void {
    const ops = [...this.store.load()];
    const forks = this.store.loadForks();
    this.replica.close();
    this.store = this.#makeStore(ops, forks);
    this.up = false;
    this.epoch++;
  }

  /** Opens a new replica from the persisted store. */
  reopen(now: () => number): void {
    this.replica = Replica.open({
      identity: this.identity,
      store: this.store,
      pending: this.#pending,
    });
    this.pipeline = new Pipeline(this.replica, now);
    this.#wire();
    this.up = true;
    this.restarts++;
  }
}

interface Connection {
  readonly id: number;
  alive: boolean;
  /** [session of link.a, session of link.b]. */
  readonly sessions: [SyncSession, SyncSession];
  /** Arrival time of the last frame sent in each direction (0: a to b, 1: b to a). */
  readonly lastArrival: [number, number];
  /** Frames still in flight. */
  inFlight: number;
}

/** A link between two nodes; `a` dials (`outbound`), `b` accepts (`inbound`). */
export class SimLink {
  /** The dialling node. */
  readonly a: SimNode;
  /** The accepting node. */
  readonly b: SimNode;
  /** Partitions currently holding this link down. */
  readonly blockedBy = new Set<number>();
  /** The current connection, if any. */
  connection?: Connection;
  /** Counters; `upMs` is virtual time spent connected (up to the last close). */
  readonly counts = { connects: 0, drops: 0, upMs: 0 };
  /** When the current connection opened. */
  connectedAt = 0;
  /** True while a reconnect is scheduled. */
  reconnectScheduled = false;

  /** Which end, if any, speaks the legacy (v1) protocol. */
  readonly legacy?: "a" | "b";

  /** Created through {@link SimNetwork.addLink}. */
  constructor(a: SimNode, b: SimNode, legacy?: "a" | "b") {
    this.a = a;
    this.b = b;
    this.legacy = legacy;
  }

  /** "a<->b". */
  get name(): string {
    return `${this.a.name}<->${this.b.name}`;
  }

  /** True when a connection is open. */
  get connected(): boolean {
    return this.connection?.alive === true;
  }
}

/** A close that the harness did not cause (a protocol error, an internal error, ...). */
export interface UnexpectedClose {
  time: number;
  link: string;
  closer: string;
  code: number;
  reason: string;
}

/** The simulated network. */
export class SimNetwork {
  /** The seed this network was created with. */
  readonly seed: number;
  /** Every random choice of the run. */
  readonly rng: Rng;
  /** Nodes in the order added. */
  readonly nodes: SimNode[] = [];
  /** Links in the order added. */
  readonly links: SimLink[] = [];
  /** Closes started by a session rather than by the harness. */
  readonly unexpectedCloses: UnexpectedClose[] = [];
  /** Warnings and errors logged by sessions. */
  readonly logs: { time: number; node: string; level: LogLevel; message: string }[] = [];
  /** Counters of the run. */
  readonly stats = {
    events: 0,
    framesSent: 0,
    framesDelivered: 0,
    framesLost: 0,
    duplicatesInjected: 0,
    connects: 0,
    drops: 0,
    partitions: 0,
    restarts: 0,
  };
  #now = 0;
  #seq = 0;
  #activity = 0;
  #connectionIds = 0;
  #partitionIds = 0;
  readonly #activePartitions = new Set<number>();
  readonly #queue = new EventQueue();
  readonly #frameDelay: DelayRange;
  readonly #reconnectDelay: DelayRange;
  readonly #limits: SessionLimits;
  readonly #maxEvents: number;
  readonly #traceLength: number;
  readonly #trace: string[] = [];
  readonly #pending?: PendingLimits;
  readonly #storeFailureRate: number;

  /** Creates an empty network. */
  constructor(options: SimOptions) {
    this.seed = options.seed;
    this.rng = new Rng(options.seed);
    this.#frameDelay = options.frameDelay ?? { min: 1, max: 40 };
    this.#reconnectDelay = options.reconnectDelay ?? { min: 20, max: 300 };
    // Virtual time: no keepalive, and no live batching window (it waits on a real timer).
    this.#limits = {
      ...options.sessionLimits,
      pingIntervalMs: 0,
      pongTimeoutMs: 0,
      liveBatchMs: 0,
    };
    this.#maxEvents = options.maxEvents ?? 2_000_000;
    this.#traceLength = options.traceLength ?? 0;
    this.#pending = options.pending;
    this.#storeFailureRate = options.storeFailureRate ?? 0;
  }

  /** Virtual time in ms. */
  get now(): number {
    return this.#now;
  }

  /** Events waiting to run. */
  get queued(): number {
    return this.#queue.size;
  }

  /** The last traced events (see {@link SimOptions.traceLength}). */
  trace(): string[] {
    return [...this.#trace];
  }

  #note(line: string): void {
    if (this.#traceLength === 0) return;
    this.#trace.push(`t=${this.#now} ${line}`);
    if (this.#trace.length > this.#traceLength) this.#trace.shift();
  }

  /**
   * Adds a node with its own empty store: a {@link MemoryStore}, or a
   * {@link FlakyStore} when stores are set to fail. On a restart the node
   * reopens from a new store of the same kind, pre-filled with what it held.
   */
  addNode(name: string, identity: Identity): SimNode {
    const node = new SimNode(
      name,
      identity,
      (ops, forks) => {
        const rate = this.#storeFailureRate;
        const store = rate > 0 ? new FlakyStore(() => this.rng.chance(rate)) : new MemoryStore();
        store.append(ops);
        for (const proof of forks) store.saveFork(proof);
        if (store instanceof FlakyStore) store.arm();
        return store;
      },
      () => this.#now,
      this.#pending,
    );
    this.nodes.push(node);
    return node;
  }

  /**
   * Adds a link (not yet connected; see {@link connect}). With `legacy`, that
   * end's session acts as a legacy (v1) peer.
   */
  addLink(a: SimNode, b: SimNode, options: { legacy?: "a" | "b" } = {}): SimLink {
    const link = new SimLink(a, b, options.legacy);
    this.links.push(link);
    return link;
  }

  /** Links that touch `node`. */
  linksOf(node: SimNode): SimLink[] {
    return this.links.filter((link) => link.a === node || link.b === node);
  }

  /** Runs `run` after `delay` virtual ms. */
  schedule(delay: number, run: () => void): void {
    this.#activity++;
    this.#queue.push({ time: this.#now + Math.max(0, delay), seq: this.#seq++, run });
  }

  #delay(range: DelayRange): number {
    return this.rng.int(range.min, range.max);
  }

  /** True when the link may carry a connection now. */
  canConnect(link: SimLink): boolean {
    return link.blockedBy.size === 0 && link.a.up && link.b.up && !link.connected;
  }

  /**
   * Opens a connection on `link` now, if it can: two sessions, each starting
   * with its clock. Returns false when the link is down or already connected.
   */
  connect(link: SimLink): boolean {
    if (!this.canConnect(link)) return false;
    const id = ++this.#connectionIds;
    const sessions: SyncSession[] = [];
    const connection: Connection = {
      id,
      alive: true,
      sessions: undefined as unknown as [SyncSession, SyncSession],
      lastArrival: [0, 0],
      inFlight: 0,
    };
    for (const side of [0, 1] as const) {
      const self = side === 0 ? link.a : link.b;
      const other = side === 0 ? link.b : link.a;
      const channel: Channel = {
        send: (data) => this.#send(link, connection, side, data),
        close: (code, reason) => this.#closeFrom(link, connection, side, code, reason),
        get bufferedAmount() {
          return 0;
        },
      };
      const session = new SyncSession({
        ...this.#limits,
        replica: self.replica,
        channel,
        peer: other.nodeId,
        direction: side === 0 ? "outbound" : "inbound",
        legacy: link.legacy === (side === 0 ? "a" : "b"),
        logger: this.#logger(self),
        onClose: (s) => {
          self.sessions.delete(s);
        },
      });
      sessions.push(session);
    }
    (connection as { sessions: [SyncSession, SyncSession] }).sessions = [sessions[0], sessions[1]];
    link.connection = connection;
    link.connectedAt = this.#now;
    link.counts.connects++;
    this.stats.connects++;
    link.a.sessions.add(sessions[0]);
    link.b.sessions.add(sessions[1]);
    this.#note(`connect ${link.name} #${id}`);
    sessions[0].start();
    sessions[1].start();
    return true;
  }

  #logger(node: SimNode): Logger {
    return {
      log: (level, message, fields) => {
        if (level === "warn" || level === "error") {
          const detail = fields ? ` ${JSON.stringify(fields)}` : "";
          this.logs.push({ time: this.#now, node: node.name, level, message: message + detail });
        }
      },
    };
  }

  #send(link: SimLink, connection: Connection, side: 0 | 1, data: string | Uint8Array): void {
    if (!connection.alive) return; // a socket that is gone swallows the frame
    this.#activity++;
    this.stats.framesSent++;
    const copy = typeof data === "string" ? data : data.slice();
    const arrival = Math.max(
      this.#now + this.#delay(this.#frameDelay),
      connection.lastArrival[side],
    );
    connection.lastArrival[side] = arrival;
    connection.inFlight++;
    const target = connection.sessions[1 - side];
    this.#queue.push({
      time: arrival,
      seq: this.#seq++,
      run: () => {
        connection.inFlight--;
        if (!connection.alive) {
          this.stats.framesLost++;
          return;
        }
        this.stats.framesDelivered++;
        if (this.#traceLength > 0) {
          const from = side === 0 ? link.a.name : link.b.name;
          const to = side === 0 ? link.b.name : link.a.name;
          this.#note(`${from}->${to} #${connection.id} ${describeFrame(copy)}`);
        }
        target.receive(copy);
      },
    });
  }

  /** A session closed its channel: the peer sees the close after the frames already sent. */
  #closeFrom(link: SimLink, connection: Connection, side: 0 | 1, code: number, reason: string) {
    if (!connection.alive) return;
    const closer = side === 0 ? link.a : link.b;
    this.unexpectedCloses.push({
      time: this.#now,
      link: link.name,
      closer: closer.name,
      code,
      reason,
    });
    this.#note(`close by ${closer.name} on ${link.name} #${connection.id}: ${code} ${reason}`);
    const arrival = Math.max(
      this.#now + this.#delay(this.#frameDelay),
      connection.lastArrival[side],
    );
    connection.lastArrival[side] = arrival;
    this.#activity++;
    this.#queue.push({
      time: arrival,
      seq: this.#seq++,
      run: () => {
        if (!connection.alive) return;
        this.#end(link, connection, code, reason);
      },
    });
  }

  /** Ends a connection: both sessions see the close; frames in flight are lost. */
  #end(link: SimLink, connection: Connection, code: number, reason: string): void {
    connection.alive = false;
    if (link.connection === connection) link.connection = undefined;
    link.counts.upMs += this.#now - link.connectedAt;
    for (const session of connection.sessions) session.closed(code, reason);
    this.#scheduleReconnect(link);
  }

  #scheduleReconnect(link: SimLink): void {
    if (link.reconnectScheduled || !link.a.up || !link.b.up || link.blockedBy.size > 0) return;
    link.reconnectScheduled = true;
    this.schedule(this.#delay(this.#reconnectDelay), () => {
      link.reconnectScheduled = false;
      this.connect(link);
    });
  }

  /** Breaks the link's connection now (if any); it reconnects after a back-off. */
  drop(link: SimLink, reason = "link dropped"): boolean {
    const connection = link.connection;
    if (!connection?.alive) return false;
    link.counts.drops++;
    this.stats.drops++;
    this.#note(`drop ${link.name} #${connection.id}`);
    this.#end(link, connection, LINK_DROPPED, reason);
    return true;
  }

  /** Holds `links` down for `duration` virtual ms (partitions may overlap). */
  partition(links: readonly SimLink[], duration: number): void {
    const id = ++this.#partitionIds;
    this.#activePartitions.add(id);
    this.stats.partitions++;
    this.#note(`partition #${id} ${links.map((l) => l.name).join(" ")} for ${duration}`);
    for (const link of links) link.blockedBy.add(id);
    for (const link of links) this.drop(link, "partitioned");
    this.schedule(duration, () => this.#heal(id));
  }

  #heal(id: number): void {
    if (!this.#activePartitions.delete(id)) return;
    this.#note(`heal partition #${id}`);
    for (const link of this.links) {
      if (link.blockedBy.delete(id)) this.#scheduleReconnect(link);
    }
  }

  /**
   * Crashes `node` now: its connections drop (frames in flight are lost), its
   * replica closes, and after `downtime` virtual ms it reopens from what its
   * store persisted and redials its links.
   */
  restart(node: SimNode, downtime: number): boolean {
    if (!node.up) return false;
    node.up = false;
    this.stats.restarts++;
    this.#note(`crash ${node.name}`);
    for (const link of this.linksOf(node)) this.drop(link, "peer crashed");
    for (const session of [...node.sessions]) session.closed(LINK_DROPPED, "node crashed");
    node.crash();
    const epoch = node.epoch;
    this.schedule(downtime, () => {
      if (node.epoch === epoch && !node.up) this.#bringUp(node);
    });
    return true;
  }

  #bringUp(node: SimNode): void {
    node.reopen(() => this.#now);
    this.#note(`restart ${node.name}`);
    for (const link of this.linksOf(node)) this.#scheduleReconnect(link);
  }

  /** Lets microtasks run until a round of them starts no new frame or event. */
  async settle(ticks = 32): Promise<void> {
    for (;;) {
      const before = this.#activity;
      for (let i = 0; i < ticks; i++) await Promise.resolve();
      if (this.#activity === before) return;
    }
  }

  /** Runs every event due up to virtual time `time`, then sets the clock to `time`. */
  async runUntil(time: number): Promise<void> {
    await this.settle();
    for (;;) {
      const next = this.#queue.peek();
      if (next === undefined || next.time > time) break;
      await this.#step();
    }
    if (time > this.#now) this.#now = time;
  }

  /** Runs `duration` virtual ms. */
  runFor(duration: number): Promise<void> {
    return this.runUntil(this.#now + duration);
  }

  async #step(): Promise<void> {
    const event = this.#queue.pop()!;
    if (++this.stats.events > this.#maxEvents) {
      throw new Error(`simulation did not settle within ${this.#maxEvents} events`);
    }
    this.#now = event.time;
    event.run();
    await this.settle();
  }

  /** Runs until no event is left and microtasks have settled. Returns the time taken. */
  async runUntilQuiescent(): Promise<number> {
    const start = this.#now;
    for (;;) {
      await this.settle();
      if (this.#queue.size === 0) {
        await this.settle(256); // a generous last round, in case some work is slow to surface
        if (this.#queue.size === 0) return this.#now - start;
      }
      while (this.#queue.size > 0) await this.#step();
    }
  }

  /**
   * The end of a run: heals every partition, brings every node up, connects
   * every link and runs until quiescent.
   */
  async healAndSettle(): Promise<void> {
    for (const id of [...this.#activePartitions]) this.#heal(id);
    for (const node of this.nodes) {
      if (!node.up) this.#bringUp(node);
    }
    for (const link of this.links) this.connect(link);
    await this.runUntilQuiescent();
    // A close may have landed during the run; dial again until every link holds.
    for (let round = 0; round < 10 && this.links.some((l) => !l.connected); round++) {
      for (const link of this.links) this.connect(link);
      await this.runUntilQuiescent();
    }
  }

  /** Frames in flight on every link. */
  framesInFlight(): number {
    let total = 0;
    for (const link of this.links) total += link.connection?.inFlight ?? 0;
    return total;
  }

  /**
   * Everything that differs between the nodes (`nodes`, default all) or
   * stops the run from being quiescent; empty when they converged.
   */
  divergence(nodes: readonly SimNode[] = this.nodes): string[] {
    const problems: string[] = [];
    if (this.#queue.size > 0) problems.push(`${this.#queue.size} events still queued`);
    const inFlight = this.framesInFlight();
    if (inFlight > 0) problems.push(`${inFlight} frames still in flight`);
    for (const link of this.links) {
      if (!link.connected) problems.push(`link ${link.name} is not connected`);
      for (const session of link.connection?.sessions ?? []) {
        const stats = session.stats();
        if (stats.state !== "live") problems.push(`a session on ${link.name} is ${stats.state}`);
        if (stats.queuedOps > 0) {
          problems.push(`a session on ${link.name} still queues ${stats.queuedOps} operations`);
        }
      }
    }
    const [first, ...rest] = nodes;
    if (first === undefined) return problems;
    for (const node of nodes) {
      if (!node.up) problems.push(`${node.name} is down`);
      const pending = node.replica.pendingSize().count;
      if (pending > 0) problems.push(`${node.name} holds ${pending} pending operations`);
    }
    const hash = first.replica.stateHash();
    const clock = canonicalClock(first.replica.clock());
    for (const node of rest) {
      if (node.replica.stateHash() !== hash) {
        problems.push(`${node.name} state hash differs from ${first.name}'s`);
      }
      const other = canonicalClock(node.replica.clock());
      if (other !== clock) {
        problems.push(`${node.name} clock ${other} differs from ${first.name}'s ${clock}`);
      }
    }
    return problems;
  }

  /**
   * Delivers to `to` a bulk frame of operations that `from` holds, picked at
   * random and in random order, as though `from` had sent them again over
   * their connection (after the frames already in flight). Models the same
   * operations arriving again by another path. Returns the count sent.
   */
  injectDuplicates(link: SimLink, fromA: boolean, count: number): number {
    const connection = link.connection;
    if (!connection?.alive) return 0;
    const from = fromA ? link.a : link.b;
    const held = from.replica.operations();
    if (held.length === 0) return 0;
    const ops: Operation[] = this.rng.sample(held, Math.min(count, held.length));
    for (const frame of bulkFrames(ops, this.#limits.maxFrameBytes ?? 1024 * 1024)) {
      this.#send(link, connection, fromA ? 0 : 1, frame);
    }
    this.stats.duplicatesInjected += ops.length;
    return ops.length;
  }

  /** Share of link-time spent connected so far, in percent. */
  uptime(): number {
    if (this.#now === 0 || this.links.length === 0) return 100;
    let up = 0;
    for (const link of this.links) {
      up += link.counts.upMs + (link.connected ? this.#now - link.connectedAt : 0);
    }
    return Math.round((100 * up) / (this.#now * this.links.length));
  }

  /** A one-line summary of the counters, for reports. */
  summary(): string {
    const s = this.stats;
    return `t=${this.#now}ms events=${s.events} frames=${s.framesSent} delivered=${s.framesDelivered} ` +
      `lost=${s.framesLost} dups=${s.duplicatesInjected} connects=${s.connects} drops=${s.drops} ` +
      `partitions=${s.partitions} restarts=${s.restarts} closes=${this.unexpectedCloses.length} ` +
      `uptime=${this.uptime()}%`;
  }
}

/** A clock as a string with sorted authors (short ids), for comparing and printing. */
export function canonicalClock(clock: Record<string, number>): string {
  const authors = Object.keys(clock).sort();
  if (authors.length === 0) return "{}";
  return authors.map((author) => `${author.slice(0, 8)}:${clock[author]}`).join(",");
}

function describeFrame(data: string | Uint8Array): string {
  if (typeof data !== "string") return "live op";
  const type = /"type":"(\w+)"/.exec(data)?.[1] ?? "?";
  if (type === "bulk") return `bulk(${data.split('"sig"').length - 1} ops)`;
  return type;
}
