/**
 * A deterministic simulated network of REAL nodes: every simulated node is a
 * {@link HuskiesNode} (in-memory or flaky store, the real handshake, hub
 * forwarding, sessions with keepalive and live batching, and rendezvous
 * clients doing the reconnects with their backoff), running on virtual
 * timers over simulated links. Nothing here re-implements node behaviour:
 * the network only carries frames, drops links, partitions and crashes.
 *
 * - Time is virtual. Every frame, close, dial and timer of every node is an
 *   event in a priority queue ordered by (time, sequence number); a run takes
 *   as long as its CPU work. Between events the loop lets microtasks run
 *   (the rendezvous loop and dials are promises).
 * - Within one connection each direction is FIFO (as a WebSocket is); frames
 *   on different links interleave by their random delays.
 * - Faults: a link drop ends the connection at once (both nodes see 1006,
 *   frames in flight are lost); a partition keeps a set of links down (dials
 *   fail) for a while; a silent partition stops forwarding without a word,
 *   as a dead router does (frames and dials wait, as TCP retransmits, until
 *   a retransmission after the heal); a restart crashes a node (its
 *   connections drop, it closes) and reopens it later from a store holding
 *   what was persisted.
 * - Every random choice comes from one seeded generator, so a seed replays a
 *   run exactly.
 * @module
 */
import type { Identity } from "../crdt/identity.ts";
import type { PendingLimits } from "../crdt/log.ts";
import type { Operation } from "../crdt/operation.ts";
import type { Pipeline } from "../crdt/pipeline.ts";
import type { Replica } from "../crdt/replica.ts";
import { type ForkProof, MemoryStore } from "../crdt/store.ts";
import type { BackoffOptions } from "../sync/backoff.ts";
import type { Channel, DialResult } from "../sync/channel.ts";
import { bulkFrames } from "../sync/frames.ts";
import type { Logger, LogLevel } from "../sync/logger.ts";
import { HuskiesNode, type NodeOptions } from "../sync/node.ts";
import type { RendezvousClient } from "../sync/rendezvous_client.ts";
import type { SessionLimits } from "../sync/session.ts";
import type { PeerSession } from "../sync/session_runner.ts";
import type { TimerHandle, Timers } from "../sync/timers.ts";
import { EventQueue, Rng, type SimEvent } from "./sim_random.ts";
import { FlakyStore } from "./flaky_store.ts";
import { type Connection, SimChannel, type SimConnection } from "./sim_channel.ts";

export { mulberry32, Rng } from "./sim_random.ts";
export { DISK_ERROR, FlakyStore } from "./flaky_store.ts";
export type { SimConnection } from "./sim_channel.ts";

/** An inclusive range of virtual milliseconds. */
export interface DelayRange {
  /** Shortest, ms. */
  min: number;
  /** Longest, ms. */
  max: number;
}

/** Options for a {@link SimNetwork}. */
export interface SimOptions {
  /** Seed of every random choice the network makes. */
  seed: number;
  /** Delay of one frame (and of a dial) on a link, in virtual ms. @default 1 to 40 */
  frameDelay?: DelayRange;
  /** Reconnect backoff of every rendezvous client. @default 20 ms doubling to 300 ms */
  backoff?: Omit<BackoffOptions, "random">;
  /** A session this long counts as healthy and resets a client's backoff, ms. @default 100 */
  healthyAfterMs?: number;
  /**
   * First TCP retransmission timeout (doubling) for frames held by a silent
   * partition, ms; dials retry after 1 s, then doubling. @default 200
   */
  retransmitMs?: number;
  /** Limits given to every node's sessions (keepalive and live batching stay on). */
  sessionLimits?: SessionLimits;
  /** Events after which a run gives up. @default 2,000,000 */
  maxEvents?: number;
  /** Keep a trace of the last events, for failure reports. @default 0 (off) */
  traceLength?: number;
  /** Bounds of every replica's pending buffer. @default the replica's defaults */
  pending?: PendingLimits;
  /** Share of store appends that fail (see {@link FlakyStore}). @default 0 */
  storeFailureRate?: number;
}

/** Close code the network reports when a link breaks (as browsers report an abnormal close). */
export const LINK_DROPPED = 1006;

/** Log messages that are a node's normal reaction to the network's faults. */
const FAULT_REACTIONS = [
  "rendezvous connection lost; retrying",
  "rendezvous dial failed; retrying",
];

/** One simulated node: a real {@link HuskiesNode} and its "disk". */
export class SimNode {
  /** Name in reports (node ids can repeat when a test forks an identity). */
  readonly name: string;
  /** The signing identity. */
  readonly identity: Identity;
  /** Options every incarnation of the node opens with. */
  readonly options: NodeOptions;
  /** The current node (replaced on every restart). */
  node!: HuskiesNode;
  /** The current store (replaced, pre-filled, on every restart). */
  store!: MemoryStore;
  /** False while the node is down (between a crash and its restart). */
  up = true;
  /** Number of restarts so far. */
  restarts = 0;
  /** Bumped on every crash, so a stale "come back up" event does nothing. */
  epoch = 0;
  /** While down: what its store held when it crashed. */
  persisted: { ops: Operation[]; forks: ForkProof[] } = { ops: [], forks: [] };

  /** Created through {@link SimNetwork.addNode}. */
  constructor(name: string, identity: Identity, options: NodeOptions) {
    this.name = name;
    this.identity = identity;
    this.options = options;
  }

  /** The current replica. */
  get replica(): Replica {
    return this.node.replica;
  }

  /** The current pipeline (its clock is the network's virtual time). */
  get pipeline(): Pipeline {
    return this.node.pipeline;
  }

  /** The node id (hex public key). */
  get nodeId(): string {
    return this.identity.nodeId;
  }
}

/** A link between two nodes; `a` dials (its rendezvous client), `b` accepts. */
export class SimLink {
  /** Its number (also its URL: `sim://link/<id>`). */
  readonly id: number;
  /** The dialling node. */
  readonly a: SimNode;
  /** The accepting node. */
  readonly b: SimNode;
  /** Partitions currently holding this link down. */
  readonly blockedBy: Set<number> = new Set();
  /** Until when (virtual ms) a silent partition swallows this link's traffic. */
  silentUntil = 0;
  /** The current connection, if any. */
  connection?: SimConnection;
  /** The dialling node's rendezvous client for this link, once started. */
  client?: RendezvousClient;
  /** Counters; `upMs` is virtual time spent connected (up to the last close). */
  readonly counts: { connects: number; drops: number; upMs: number } = {
    connects: 0,
    drops: 0,
    upMs: 0,
  };
  /** When the current connection opened. */
  connectedAt = 0;

  /** Created through {@link SimNetwork.addLink}. */
  constructor(id: number, a: SimNode, b: SimNode) {
    this.id = id;
    this.a = a;
    this.b = b;
  }

  /** The URL the dialling node connects to. */
  get url(): string {
    return `sim://link/${this.id}`;
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

/** A close that the network did not cause (a protocol error, an internal error, ...). */
export interface UnexpectedClose {
  /** Virtual time. */
  time: number;
  /** The link's name. */
  link: string;
  /** The node that closed. */
  closer: string;
  /** Close code. */
  code: number;
  /** Close reason. */
  reason: string;
}

/** The simulated network. *
 * @example Two real nodes on a lossy simulated link converge
 * ```ts
 * import assert from "node:assert/strict";
 * import { SimNetwork, testIdentity } from "@huskies/sync/testing";
 *
 * const net = new SimNetwork({ seed: 7 });
 * try {
 *   const a = await net.addNode("a", testIdentity(1));
 *   const b = await net.addNode("b", testIdentity(2));
 *   const link = net.addLink(a, b);
 *   net.connect(link); // a dials b over the simulated link, on virtual time
 *   a.pipeline.put("S-1", { stage: "qa" });
 *   net.drop(link); // the link breaks; a's client reconnects with backoff
 *   await net.runUntilQuiescent();
 *   assert.deepEqual(net.divergence(), []);
 *   assert.equal(b.pipeline.get("S-1")?.stage, "qa");
 * } finally {
 *   await net.close();
 * }
 * ```
 */
export class SimNetwork {
  /** The seed this network was created with. */
  readonly seed: number;
  /** Every random choice of the run. */
  readonly rng: Rng;
  /** Nodes in the order added. */
  readonly nodes: SimNode[] = [];
  /** Links in the order added. */
  readonly links: SimLink[] = [];
  /** Closes started by a node rather than by the network. */
  readonly unexpectedCloses: UnexpectedClose[] = [];
  /** Warnings and errors logged by nodes (minus their normal reactions to faults). */
  readonly logs: { time: number; node: string; level: LogLevel; message: string }[] = [];
  /** Counters of the run. */
  readonly stats = {
    events: 0,
    framesSent: 0,
    framesDelivered: 0,
    framesLost: 0,
    duplicatesInjected: 0,
    dials: 0,
    connects: 0,
    drops: 0,
    partitions: 0,
    restarts: 0,
  };
  /** Virtual timers shared by every node. */
  readonly timers: Timers;
  #now = 0;
  #seq = 0;
  #activity = 0;
  /** Events other than node timers (frames, closes, dials, scheduled actions) still queued. */
  #networkEvents = 0;
  #connectionIds = 0;
  #partitionIds = 0;
  readonly #activePartitions = new Set<number>();
  readonly #queue = new EventQueue();
  readonly #frameDelay: DelayRange;
  readonly #backoff: Omit<BackoffOptions, "random">;
  readonly #healthyAfterMs: number;
  readonly #retransmitMs: number;
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
    this.#backoff = options.backoff ?? { initialMs: 20, maxMs: 300 };
    this.#healthyAfterMs = options.healthyAfterMs ?? 100;
    this.#retransmitMs = options.retransmitMs ?? 200;
    this.#limits = { ...options.sessionLimits };
    this.#maxEvents = options.maxEvents ?? 2_000_000;
    this.#traceLength = options.traceLength ?? 0;
    this.#pending = options.pending;
    this.#storeFailureRate = options.storeFailureRate ?? 0;
    this.timers = {
      now: () => this.#now,
      setTimeout: (callback, delayMs) => this.#push(delayMs, callback, true),
      clearTimeout: (handle: TimerHandle) => {
        if (handle && typeof handle === "object") (handle as SimEvent).cancelled = true;
      },
    };
  }

  /** Virtual time in ms. */
  get now(): number {
    return this.#now;
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

  #push(delay: number, run: () => void, timer: boolean): SimEvent {
    this.#activity++;
    if (!timer) this.#networkEvents++;
    const event: SimEvent = {
      time: this.#now + Math.max(0, delay),
      seq: this.#seq++,
      run,
      timer,
      cancelled: false,
    };
    this.#queue.push(event);
    return event;
  }

  /** Runs `run` after `delay` virtual ms. */
  schedule(delay: number, run: () => void): void {
    this.#push(delay, run, false);
  }

  #delay(range: DelayRange): number {
    return this.rng.int(range.min, range.max);
  }

  /**
   * Adds a node with its own empty store (a {@link MemoryStore}, or a
   * {@link FlakyStore} when stores are set to fail) and opens it. With
   * `legacy`, the node speaks the legacy (v1) protocol; with `mesh`, it opens in that mesh.
   */
  async addNode(
    name: string,
    identity: Identity,
    options: { legacy?: boolean; mesh?: string } = {},
  ): Promise<SimNode> {
    const node: SimNode = new SimNode(name, identity, {
      ...this.#limits,
      identity,
      open: true,
      timers: this.timers,
      dialer: (url, signal): Promise<DialResult> => this.#dial(node, url, signal),
      legacy: options.legacy,
      mesh: options.mesh,
      pending: this.#pending,
      logger: this.#logger(name),
      verifyWorkers: 0, // Worker threads answer in real time: a seed would not replay
    });
    this.nodes.push(node);
    await this.#open(node, [], []);
    return node;
  }

  async #open(
    node: SimNode,
    ops: readonly Operation[],
    forks: readonly ForkProof[],
  ): Promise<void> {
    const rate = this.#storeFailureRate;
    const store = rate > 0 ? new FlakyStore(() => this.rng.chance(rate)) : new MemoryStore();
    store.append(ops);
    for (const proof of forks) store.saveFork(proof);
    if (store instanceof FlakyStore) store.arm();
    node.store = store;
    node.node = await HuskiesNode.open({ ...node.options, store });
  }

  /** Adds a link (not yet dialled; see {@link connect}). */
  addLink(a: SimNode, b: SimNode): SimLink {
    const link = new SimLink(this.links.length + 1, a, b);
    this.links.push(link);
    return link;
  }

  /** Links that touch `node`. */
  linksOf(node: SimNode): SimLink[] {
    return this.links.filter((link) => link.a === node || link.b === node);
  }

  /** True when a dial on the link can reach the accepting node now. */
  canConnect(link: SimLink): boolean {
    return link.blockedBy.size === 0 && link.a.up && link.b.up;
  }

  /**
   * Starts the dialling node's rendezvous client for `link` (it dials at
   * once and reconnects on its own). Returns false when it already runs or
   * the dialling node is down.
   */
  connect(link: SimLink): boolean {
    if (!link.a.up || (link.client && link.client.info().state !== "stopped")) return false;
    link.client = link.a.node.connect(link.url, {
      ...this.#backoff,
      healthyAfterMs: this.#healthyAfterMs,
      random: () => this.rng.float(),
    });
    return true;
  }

  #dial(from: SimNode, url: string, signal: AbortSignal): Promise<DialResult> {
    const link = this.links.find((l) => l.url === url && l.a === from);
    const { promise, resolve } = Promise.withResolvers<DialResult>();
    if (link === undefined) {
      resolve({ ok: false, code: LINK_DROPPED, reason: "no such link" });
      return promise;
    }
    this.stats.dials++;
    // Through a silent partition, the connection opens on the first SYN retry after the heal.
    const delay = this.#afterSilence(link, this.#delay(this.#frameDelay), 1000);
    const event = this.#push(delay, () => {
      signal.removeEventListener("abort", onAbort);
      if (!this.canConnect(link)) {
        resolve({ ok: false, code: LINK_DROPPED, reason: "unreachable" });
        return;
      }
      resolve({ ok: true, channel: this.#open_connection(link) });
    }, false);
    // An abandoned dial is no longer on the way.
    const onAbort = () => {
      if (!event.timer) (event.timer = true, this.#networkEvents--);
      event.cancelled = true;
      resolve({ ok: false, code: 1000, reason: "client stopping" });
    };
    signal.addEventListener("abort", onAbort, { once: true });
    if (signal.aborted) onAbort();
    return promise;
  }

  /** Opens a connection on `link`: the accepting node starts its handshake; returns the dialler's end. */
  #open_connection(link: SimLink): Channel {
    // One connection per link: a new one supersedes what is left of the last (its ends see 1006).
    if (link.connection?.alive) this.#end(link, link.connection, LINK_DROPPED, "superseded");
    const id = ++this.#connectionIds;
    const connection: Connection = {
      id,
      alive: true,
      ends: undefined as unknown as [SimChannel, SimChannel],
      lastArrival: [0, 0],
      inFlight: 0,
      frames: new Set(),
      closedBy: new Set(),
    };
    const get = () => connection;
    (connection as { ends: [SimChannel, SimChannel] }).ends = [
      new SimChannel(this, link, 0, get),
      new SimChannel(this, link, 1, get),
    ];
    link.connection = connection;
    link.connectedAt = this.#now;
    link.counts.connects++;
    this.stats.connects++;
    this.#note(`connect ${link.name} #${id}`);
    link.b.node.accept(connection.ends[1], { remote: link.url }).catch(() => {});
    return connection.ends[0];
  }

  #logger(name: string): Logger {
    return {
      log: (level, message, fields) => {
        if ((level === "warn" || level === "error") && !FAULT_REACTIONS.includes(message)) {
          const detail = fields ? ` ${JSON.stringify(fields)}` : "";
          this.logs.push({ time: this.#now, node: name, level, message: message + detail });
        }
      },
    };
  }

  /** Carries one frame of `connection` from `side` to the other end (what a channel's send does). */
  transmit(
    link: SimLink,
    connection: SimConnection,
    side: 0 | 1,
    data: string | Uint8Array,
  ): void {
    if (!connection.alive) throw new Error("Cannot send: the connection is closed");
    this.stats.framesSent++;
    const copy = typeof data === "string" ? data : data.slice();
    const arrival = Math.max(
      this.#now + this.#afterSilence(link, this.#delay(this.#frameDelay), this.#retransmitMs),
      connection.lastArrival[side],
    );
    connection.lastArrival[side] = arrival;
    // A heartbeat changes no state: like a node's timer, it does not keep the network busy.
    const heartbeat = isHeartbeat(copy);
    if (!heartbeat) connection.inFlight++;
    const own = connection as Connection;
    const target = own.ends[1 - side];
    const event = this.#push(arrival - this.#now, () => {
      own.frames.delete(event);
      if (!heartbeat) connection.inFlight--;
      this.stats.framesDelivered++;
      if (this.#traceLength > 0) {
        const from = side === 0 ? link.a.name : link.b.name;
        const to = side === 0 ? link.b.name : link.a.name;
        this.#note(`${from}->${to} #${connection.id} ${describeFrame(copy)}`);
      }
      target.deliver(copy);
    }, heartbeat);
    own.frames.add(event);
  }

  /** A node closed its end: the peer sees the close after the frames already sent. */
  closeFrom(
    link: SimLink,
    connection: SimConnection,
    side: 0 | 1,
    code: number,
    reason: string,
  ): void {
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
    const own = connection as Connection;
    own.closedBy.add(side);
    // Both ends closed: nothing is left to carry (what was on the way is abandoned).
    if (own.closedBy.size === 2) {
      this.#end(link, connection, code, reason);
      return;
    }
    const arrival = Math.max(
      this.#now + this.#delay(this.#frameDelay),
      connection.lastArrival[side],
    );
    connection.lastArrival[side] = arrival;
    const event = this.#push(arrival - this.#now, () => {
      own.frames.delete(event);
      if (connection.alive) this.#end(link, connection, code, reason);
    }, false);
    own.frames.add(event);
  }

  /** Ends a connection: both ends see the close; frames in flight are lost. */
  #end(link: SimLink, connection: SimConnection, code: number, reason: string): void {
    connection.alive = false;
    // Frames still on the way are lost with the connection (and no longer keep the network busy).
    const own = connection as Connection;
    for (const event of own.frames) {
      event.cancelled = true;
      if (!event.timer) (event.timer = true, this.#networkEvents--);
      this.stats.framesLost++;
    }
    own.frames.clear();
    connection.inFlight = 0;
    if (link.connection === connection) link.connection = undefined;
    link.counts.upMs += this.#now - link.connectedAt;
    for (const end of (connection as Connection).ends) end.end(code, reason);
  }

  /** Breaks the link's connection now (if any); its client redials after its backoff. */
  drop(link: SimLink, reason = "link dropped"): boolean {
    const connection = link.connection;
    if (!connection?.alive) return false;
    link.counts.drops++;
    this.stats.drops++;
    this.#note(`drop ${link.name} #${connection.id}`);
    this.#end(link, connection, LINK_DROPPED, reason);
    return true;
  }

  /**
   * Takes `link` out of the network for good: its client stops, its
   * connection drops, and quiescence and divergence no longer look at it
   * (for a node a mesh refuses: its links never connect).
   */
  async removeLink(link: SimLink): Promise<void> {
    const index = this.links.indexOf(link);
    if (index >= 0) this.links.splice(index, 1);
    const stopping = link.client?.stop();
    this.drop(link, "link removed");
    await stopping;
  }

  /**
   * The delay of something sent now on `link` that would take `delay`: through
   * a silent partition, the first retransmission (after `rto`, doubling) that
   * goes out after the heal.
   */
  #afterSilence(link: SimLink, delay: number, rto: number): number {
    if (this.#now >= link.silentUntil) return delay;
    let wait = rto;
    for (let step = rto; this.#now + wait < link.silentUntil; step *= 2) wait += step * 2;
    return wait + delay;
  }

  /**
   * Stops forwarding on `links` for `duration` virtual ms without closing
   * anything, as a dead router does: frames and dials wait (see
   * {@link SimOptions.retransmitMs}); nodes notice only through their
   * heartbeat.
   */
  silentPartition(links: readonly SimLink[], duration: number): void {
    this.stats.partitions++;
    this.#note(`silent partition ${links.map((l) => l.name).join(" ")} for ${duration}`);
    for (const link of links) link.silentUntil = Math.max(link.silentUntil, this.#now + duration);
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
    for (const link of this.links) link.blockedBy.delete(id);
  }

  /**
   * Crashes `node` now: its connections drop (frames in flight are lost), it
   * closes, and after `downtime` virtual ms it reopens from what its store
   * persisted and dials its links again.
   */
  restart(node: SimNode, downtime: number): boolean {
    if (!node.up) return false;
    node.up = false;
    this.stats.restarts++;
    this.#note(`crash ${node.name}`);
    for (const link of this.linksOf(node)) this.drop(link, "peer crashed");
    const ops = [...node.store.load()];
    const forks = [...node.store.loadForks()];
    node.persisted = { ops, forks };
    const old = node.node;
    old.close("crashed").catch(() => {});
    node.epoch++;
    const epoch = node.epoch;
    this.schedule(downtime, () => {
      if (node.epoch === epoch && !node.up) this.#bringUp(node, ops, forks);
    });
    return true;
  }

  #bringUp(node: SimNode, ops: readonly Operation[], forks: readonly ForkProof[]): void {
    this.#networkEvents++; // the reopening counts as pending work until it is done
    this.#open(node, ops, forks).then(() => {
      node.up = true;
      node.restarts++;
      this.#note(`restart ${node.name}`);
      for (const link of this.links) if (link.a === node) this.connect(link);
    }).finally(() => this.#networkEvents--);
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
    if (!event.timer) this.#networkEvents--;
    if (event.cancelled) return;
    if (++this.stats.events > this.#maxEvents) {
      throw new Error(`simulation did not settle within ${this.#maxEvents} events`);
    }
    this.#now = event.time;
    event.run();
    await this.settle();
  }

  /**
   * True when nothing is in flight or scheduled but node timers, every link
   * carries a connection whose two sessions are live with nothing queued.
   */
  isQuiescent(): boolean {
    return this.#networkEvents === 0 && this.#linkProblems([], 1).length === 0;
  }

  /** Adds (up to `limit`) what keeps links from being connected, live and drained. */
  #linkProblems(problems: string[], limit: number): string[] {
    const inFlight = this.framesInFlight();
    if (inFlight > 0) problems.push(`${inFlight} frames still in flight`);
    const index = new Map<SimNode, Map<string, PeerSession[]>>();
    const sessionsOn = (link: SimLink, node: SimNode) => {
      let byRemote = index.get(node);
      if (byRemote === undefined) {
        index.set(node, byRemote = new Map());
        for (const session of node.up ? node.node.sessions() : []) {
          const list = byRemote.get(session.remote) ?? [];
          list.push(session);
          byRemote.set(session.remote, list);
        }
      }
      const peer = node === link.a ? link.b.nodeId : link.a.nodeId;
      return (byRemote.get(link.url) ?? []).filter((s) => s.peer === peer);
    };
    for (const link of this.links) {
      if (problems.length >= limit) return problems;
      if (!link.connected) {
        problems.push(`link ${link.name} is not connected`);
        continue;
      }
      for (const node of [link.a, link.b]) {
        const sessions = sessionsOn(link, node);
        if (sessions.length !== 1) {
          problems.push(`${node.name} has ${sessions.length} sessions on ${link.name}`);
        }
        for (const stats of sessions.map((s) => s.stats())) {
          if (stats.state !== "live") problems.push(`a session on ${link.name} is ${stats.state}`);
          if (stats.queuedOps > 0) {
            problems.push(`a session on ${link.name} still queues ${stats.queuedOps} operations`);
          }
        }
      }
    }
    return problems;
  }

  /**
   * Runs until {@link isQuiescent} (node timers such as keepalives keep
   * running). Gives up after `limitMs` virtual ms. Returns the time taken.
   */
  async runUntilQuiescent(limitMs = 600_000): Promise<number> {
    const start = this.#now;
    await this.settle();
    while (!this.isQuiescent()) {
      if (this.#queue.size === 0) break;
      if (this.#now - start > limitMs) {
        throw new Error(`simulation did not settle within ${limitMs} virtual ms`);
      }
      await this.#step();
    }
    return this.#now - start;
  }

  /**
   * The end of a run: heals every partition, brings every node up, makes
   * sure every link's client runs, and runs until quiescent.
   */
  async healAndSettle(): Promise<void> {
    for (const id of [...this.#activePartitions]) this.#heal(id);
    for (const node of this.nodes) {
      if (!node.up) {
        node.epoch++;
        this.#bringUp(node, node.persisted.ops, node.persisted.forks);
      }
    }
    await this.settle();
    for (const link of this.links) this.connect(link);
    await this.runUntilQuiescent();
  }

  /** Frames in flight on every link. */
  framesInFlight(): number {
    let total = 0;
    for (const link of this.links) total += link.connection?.inFlight ?? 0;
    return total;
  }

  /** The sessions of `node` that run over `link`. */
  sessionsOn(link: SimLink, node: SimNode): PeerSession[] {
    if (!node.up) return [];
    const peer = node === link.a ? link.b.nodeId : link.a.nodeId;
    return node.node.sessions().filter((s) => s.remote === link.url && s.peer === peer);
  }

  /**
   * Everything that differs between the nodes (`nodes`, default all) or
   * stops the run from being quiescent; empty when they converged.
   */
  divergence(nodes: readonly SimNode[] = this.nodes): string[] {
    const problems: string[] = [];
    this.#linkProblems(problems, Infinity);
    const [first, ...rest] = nodes;
    if (first === undefined) return problems;
    for (const node of nodes) {
      if (!node.up) {
        problems.push(`${node.name} is down`);
        continue;
      }
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
   * Delivers over `link` a bulk frame of operations that one end holds,
   * picked at random and in random order, as though that node had sent them
   * again (after the frames already in flight). Models the same operations
   * arriving again by another path. Only on a link whose sessions are live.
   * Returns the count sent.
   */
  injectDuplicates(link: SimLink, fromA: boolean, count: number): number {
    const connection = link.connection;
    if (!connection?.alive) return 0;
    const from = fromA ? link.a : link.b;
    const to = fromA ? link.b : link.a;
    const live = (node: SimNode) => this.sessionsOn(link, node).some((s) => s.isLive);
    if (!live(from) || !live(to)) return 0;
    const held = from.replica.operations();
    if (held.length === 0) return 0;
    const ops: Operation[] = this.rng.sample(held, Math.min(count, held.length));
    for (const frame of bulkFrames(ops, this.#limits.maxFrameBytes ?? 1024 * 1024)) {
      this.transmit(link, connection, fromA ? 0 : 1, frame);
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
      `lost=${s.framesLost} dups=${s.duplicatesInjected} dials=${s.dials} connects=${s.connects} ` +
      `drops=${s.drops} partitions=${s.partitions} restarts=${s.restarts} ` +
      `closes=${this.unexpectedCloses.length} uptime=${this.uptime()}%`;
  }

  /** Closes every node (ends their timers); the network is unusable afterwards. */
  async close(): Promise<void> {
    for (const link of this.links) this.drop(link, "network closed");
    await Promise.all(this.nodes.filter((n) => n.up).map((n) => n.node.close()));
  }
}

/**
 * A clock as a string with sorted authors (short ids), for comparing and printing.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { canonicalClock } from "@huskies/sync/testing";
 *
 * assert.equal(canonicalClock({ ["b".repeat(64)]: 2, ["a".repeat(64)]: 1 }), "aaaaaaaa:1,bbbbbbbb:2");
 * assert.equal(canonicalClock({}), "{}");
 * ```
 */
export function canonicalClock(clock: Record<string, number>): string {
  const authors = Object.keys(clock).sort();
  if (authors.length === 0) return "{}";
  return authors.map((author) => `${author.slice(0, 8)}:${clock[author]}`).join(",");
}

function isHeartbeat(data: string | Uint8Array): boolean {
  return typeof data === "string" &&
    (data.startsWith('{"type":"ping"') || data === '{"type":"pong"}');
}

function describeFrame(data: string | Uint8Array): string {
  if (typeof data !== "string") return "live op";
  const type = /"type":"(\w+)"/.exec(data)?.[1] ?? "?";
  if (type === "bulk") return `bulk(${data.split('"sig"').length - 1} ops)`;
  return type;
}
