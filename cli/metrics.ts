/**
 * Prometheus metrics (text format 0.0.4) and the session bookkeeping behind
 * them. {@link SessionTracker} samples live sessions so that byte and
 * operation totals survive the sessions that produced them, and measures
 * catch-up time; {@link renderMetrics} is a pure function of a snapshot.
 *
 * Catch-up duration is the time from a session's authentication until both
 * sides have finished catch-up (the session state turns `live`). Sessions are
 * sampled every {@link SAMPLE_INTERVAL_MS} ms, so each value is late by at
 * most that much (read `huskies_catchup_duration_seconds` with that in mind).
 * @module
 */
import { type NodeStatus, WRITE_GATE_STATES } from "../sync/node.ts";
import type { SessionStats } from "../sync/session.ts";
import type { ProcessSample } from "./process_metrics.ts";

/** How often `huskies serve` samples sessions, ms. */
export const SAMPLE_INTERVAL_MS = 100;

/** Upper bounds of the catch-up histogram buckets, seconds. */
export const CATCHUP_BUCKETS = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300] as const;
/** Buckets of the local write latency histogram, seconds. */
export const WRITE_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1] as const;
/** Buckets of the applied batch size histograms, operations. */
export const BATCH_OPS_BUCKETS = [1, 2, 5, 10, 50, 100, 500, 1000, 5000] as const;
/** Buckets of the applied batch size histograms, bytes. */
export const BATCH_BYTES_BUCKETS = [512, 1024, 4096, 16_384, 65_536, 262_144, 1_048_576] as const;

/** Histograms fed by the HTTP app from what the node reports. */
export interface ApplyHistograms {
  /** Seconds an admin write (`item put/move/delete`) took: sign, store durably, apply. */
  localWrite: Histogram;
  /** Operations per applied batch (one received frame's worth, or one local commit), by origin. */
  batchOps: { local: Histogram; peer: Histogram };
  /** Wire (JSON) bytes per applied batch, by origin. */
  batchBytes: { local: Histogram; peer: Histogram };
}

/** Empty {@link ApplyHistograms}. */
export function applyHistograms(): ApplyHistograms {
  return {
    localWrite: new Histogram(WRITE_BUCKETS),
    batchOps: { local: new Histogram(BATCH_OPS_BUCKETS), peer: new Histogram(BATCH_OPS_BUCKETS) },
    batchBytes: {
      local: new Histogram(BATCH_BYTES_BUCKETS),
      peer: new Histogram(BATCH_BYTES_BUCKETS),
    },
  };
}

/** Something with session counters (a `SyncSession`). */
export interface StatsSource {
  /** A snapshot of the session's counters; still answers after the session closed. */
  stats(): SessionStats;
}

/** Byte and operation totals over every session since start. */
export interface TrafficTotals {
  /** Frame bytes received. */
  bytesIn: number;
  /** Frame bytes sent. */
  bytesOut: number;
  /** Operations received. */
  opsIn: number;
  /** Operations sent. */
  opsOut: number;
  /** Sessions that were authenticated. */
  sessions: number;
}

/** A cumulative histogram (pure). */
export class Histogram {
  /** Bucket upper bounds, ascending. */
  readonly bounds: readonly number[];
  readonly #counts: number[];
  #sum = 0;
  #count = 0;

  /** Creates an empty histogram with the given bucket bounds. */
  constructor(bounds: readonly number[]) {
    this.bounds = bounds;
    this.#counts = bounds.map(() => 0);
  }

  /** Records one value. */
  observe(value: number): void {
    this.#sum += value;
    this.#count++;
    for (let i = 0; i < this.bounds.length; i++) if (value <= this.bounds[i]) this.#counts[i]++;
  }

  /** Cumulative counts per bucket, the sum and the count. */
  snapshot(): { buckets: { le: number; count: number }[]; sum: number; count: number } {
    return {
      buckets: this.bounds.map((le, i) => ({ le, count: this.#counts[i] })),
      sum: this.#sum,
      count: this.#count,
    };
  }
}

/** A live session as shown by status: its counters plus the measured catch-up time. */
export interface PeerView extends SessionStats {
  /** Time from authentication to `live`, ms (accurate to the sample interval). */
  catchupMs?: number;
}

interface Tracked {
  last: SessionStats;
  catchupMs?: number;
}

/** A peer whose last session has ended. */
export interface DepartedPeer {
  /** The peer's node id. */
  peer: string;
  /** Direction of its last session. */
  direction: "inbound" | "outbound";
  /** When its last session was last seen open (ms since the epoch). */
  lastSeen: number;
}

/** How many departed peers are remembered (the most recent ones). */
export const DEPARTED_PEERS_KEPT = 32;

/**
 * Keeps totals across sessions and measures catch-up. Call
 * {@link SessionTracker.sample} with the node's live sessions regularly.
 */
export class SessionTracker {
  readonly #tracked = new Map<StatsSource, Tracked>();
  readonly #closed: TrafficTotals = { bytesIn: 0, bytesOut: 0, opsIn: 0, opsOut: 0, sessions: 0 };
  readonly #departed = new Map<string, DepartedPeer>();
  #lastSample = 0;
  /** Catch-up durations, seconds. */
  readonly catchup = new Histogram(CATCHUP_BUCKETS);

  /** Records the current sessions; sessions gone since the last call are folded into the totals. */
  sample(sessions: readonly StatsSource[], now: number = Date.now()): void {
    const current = new Set(sessions);
    for (const [source, tracked] of this.#tracked) {
      if (current.has(source)) continue;
      const final = source.stats();
      this.#departed.delete(final.peer);
      this.#departed.set(final.peer, {
        peer: final.peer,
        direction: final.direction,
        lastSeen: this.#lastSample || tracked.last.since,
      });
      if (this.#departed.size > DEPARTED_PEERS_KEPT) {
        this.#departed.delete(this.#departed.keys().next().value!);
      }
      this.#closed.bytesIn += final.bytesIn;
      this.#closed.bytesOut += final.bytesOut;
      this.#closed.opsIn += final.opsIn;
      this.#closed.opsOut += final.opsOut;
      this.#tracked.delete(source);
    }
    this.#lastSample = now;
    for (const source of sessions) {
      const stats = source.stats();
      this.#departed.delete(stats.peer);
      let tracked = this.#tracked.get(source);
      if (!tracked) {
        tracked = { last: stats };
        this.#tracked.set(source, tracked);
        this.#closed.sessions++;
      }
      tracked.last = stats;
      if (tracked.catchupMs === undefined && stats.state === "live") {
        const liveAt = (stats as SessionStats & { liveAt?: number }).liveAt;
        tracked.catchupMs = Math.max(0, (liveAt ?? now) - stats.since);
        this.catchup.observe(tracked.catchupMs / 1000);
      }
    }
  }

  /** Live sessions with their measured catch-up time, in sampling order. */
  peers(): PeerView[] {
    return [...this.#tracked.values()].map(({ last, catchupMs }) =>
      catchupMs === undefined ? { ...last } : { ...last, catchupMs }
    );
  }

  /** Peers whose sessions all ended (and that have not come back), most recent last. */
  departed(): DepartedPeer[] {
    return [...this.#departed.values()];
  }

  /** Totals over closed sessions plus the live sessions' current counters. */
  totals(): TrafficTotals {
    const totals = { ...this.#closed };
    for (const { last } of this.#tracked.values()) {
      totals.bytesIn += last.bytesIn;
      totals.bytesOut += last.bytesOut;
      totals.opsIn += last.opsIn;
      totals.opsOut += last.opsOut;
    }
    return totals;
  }
}

/** What {@link renderMetrics} needs. */
export interface MetricsInput {
  /** The node's status. */
  status: Pick<
    NodeStatus,
    | "nodeId"
    | "operations"
    | "stateHash"
    | "pending"
    | "forks"
    | "counters"
    | "rendezvous"
    | "writeGate"
  >;
  /** Live sessions. */
  peers: readonly PeerView[];
  /** Traffic totals. */
  totals: TrafficTotals;
  /** Catch-up histogram. */
  catchup: Histogram;
  /** Write latency and applied batch sizes. */
  apply?: ApplyHistograms;
  /** Process counters. */
  process?: ProcessSample;
  /** Event-loop lag: latest and largest since the previous scrape, seconds. */
  lag?: { lastSeconds: number; maxSeconds: number };
  /** CLI version. */
  version: string;
  /** Process start, ms since the epoch. */
  startedAt: number;
  /**
   * Include node and peer ids (`huskies_info{node_id}`, the per-peer
   * families). Off for clients that may not learn them. @default true
   */
  ids?: boolean;
}

/** Escapes a label value for the text format (pure). */
export function escapeLabel(value: string): string {
  return value.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll("\n", "\\n");
}

function labels(pairs: Record<string, string>): string {
  const body = Object.entries(pairs).map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(",");
  return body ? `{${body}}` : "";
}

function formatNumber(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return String(value);
}

/** Renders every metric in the Prometheus text format 0.0.4 (pure). */
export function renderMetrics(input: MetricsInput): string {
  const out: string[] = [];
  const family = (
    name: string,
    type: "gauge" | "counter" | "histogram",
    help: string,
    samples: [Record<string, string>, number][],
  ) => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [l, v] of samples) out.push(`${name}${labels(l)} ${formatNumber(v)}`);
  };
  const { status, peers, totals } = input;
  const ids = input.ids ?? true;
  family("huskies_info", "gauge", "Node identity and version (always 1).", [
    [ids ? { node_id: status.nodeId, version: input.version } : { version: input.version }, 1],
  ]);
  family(
    "huskies_state_info",
    "gauge",
    "Hash of the node's visible state, equal on converged nodes (always 1).",
    [[{ state_hash: status.stateHash }, 1]],
  );
  family(
    "huskies_start_time_seconds",
    "gauge",
    "Start time of the node, seconds since the epoch.",
    [
      [{}, Math.floor(input.startedAt / 1000)],
    ],
  );
  const peerSamples: [Record<string, string>, number][] = [];
  for (const direction of ["inbound", "outbound"]) {
    for (const state of ["syncing", "live"]) {
      const n = peers.filter((p) => p.direction === direction && p.state === state).length;
      peerSamples.push([{ direction, state }, n]);
    }
  }
  family(
    "huskies_peers",
    "gauge",
    "Authenticated peer sessions by direction and state.",
    peerSamples,
  );
  family("huskies_operations", "gauge", "Operations held in the log.", [[{}, status.operations]]);
  family(
    "huskies_operations_applied_total",
    "counter",
    "Operations applied since start (local and received).",
    [[{}, status.counters.applied]],
  );
  family(
    "huskies_operations_rejected_total",
    "counter",
    "Received operations refused since start, by reason.",
    [
      [{ reason: "invalid" }, status.counters.invalid],
      [{ reason: "unauthorized" }, status.counters.unauthorized],
    ],
  );
  family("huskies_sync_received_bytes_total", "counter", "Sync frame bytes received from peers.", [
    [{}, totals.bytesIn],
  ]);
  family("huskies_sync_sent_bytes_total", "counter", "Sync frame bytes sent to peers.", [
    [{}, totals.bytesOut],
  ]);
  family("huskies_sync_received_operations_total", "counter", "Operations received from peers.", [
    [{}, totals.opsIn],
  ]);
  family("huskies_sync_sent_operations_total", "counter", "Operations sent to peers.", [
    [{}, totals.opsOut],
  ]);
  family("huskies_sessions_total", "counter", "Peer sessions authenticated since start.", [
    [{}, totals.sessions],
  ]);
  family(
    "huskies_outbound_queue_operations",
    "gauge",
    "Operations queued for peers and not yet sent, over all sessions.",
    [[{}, peers.reduce((sum, p) => sum + p.queuedOps, 0)]],
  );
  family(
    "huskies_pending_operations",
    "gauge",
    "Operations buffered while waiting for their dependencies.",
    [[{}, status.pending.count]],
  );
  family("huskies_pending_bytes", "gauge", "Bytes held by the pending buffer.", [
    [{}, status.pending.bytes],
  ]);
  family(
    "huskies_forks_detected",
    "gauge",
    "Authors caught signing two operations at one position.",
    [
      [{}, status.forks.length],
    ],
  );
  family(
    "huskies_write_gate",
    "gauge",
    "1 for the write gate's state: open (writes are signed), starting, lost-history, claim or " +
      "own-key-forked.",
    WRITE_GATE_STATES.map((state) => [{ state }, status.writeGate.state === state ? 1 : 0]),
  );
  family(
    "huskies_peer_clock_lag_operations",
    "gauge",
    "Operations this node holds that the peer is not known to hold.",
    ids ? peers.map((p) => [{ peer: p.peer, direction: p.direction }, p.clockLag]) : [],
  );
  const rendezvous: [Record<string, string>, number][] = [];
  for (const state of ["connecting", "connected", "waiting", "stopped"]) {
    rendezvous.push([{ state }, status.rendezvous.filter((r) => r.state === state).length]);
  }
  family(
    "huskies_rendezvous_clients",
    "gauge",
    "Outbound rendezvous clients by state.",
    rendezvous,
  );
  const histogram = (
    name: string,
    help: string,
    series: [Record<string, string>, Histogram][],
  ) => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} histogram`);
    for (const [extra, h] of series) {
      const snap = h.snapshot();
      for (const { le, count } of snap.buckets) {
        out.push(`${name}_bucket${labels({ ...extra, le: formatNumber(le) })} ${count}`);
      }
      out.push(`${name}_bucket${labels({ ...extra, le: "+Inf" })} ${snap.count}`);
      out.push(`${name}_sum${labels(extra)} ${formatNumber(snap.sum)}`);
      out.push(`${name}_count${labels(extra)} ${snap.count}`);
    }
  };
  histogram(
    "huskies_catchup_duration_seconds",
    "Time from peer authentication until catch-up finished in both directions " +
      `(sampled every ${SAMPLE_INTERVAL_MS} ms).`,
    [[{}, input.catchup]],
  );
  if (ids) {
    family(
      "huskies_peer_catchup_duration_seconds",
      "gauge",
      "Catch-up time of each live session (absent while it is still catching up).",
      peers.filter((p) => p.catchupMs !== undefined).map((p) => [
        { peer: p.peer, direction: p.direction },
        p.catchupMs! / 1000,
      ]),
    );
  }
  if (input.apply) {
    const { localWrite, batchOps, batchBytes } = input.apply;
    histogram(
      "huskies_local_write_duration_seconds",
      "Time an admin write took to sign, store durably and apply.",
      [[{}, localWrite]],
    );
    histogram(
      "huskies_applied_batch_operations",
      "Operations applied together: one received frame's worth (origin=peer) or one local commit.",
      [[{ origin: "local" }, batchOps.local], [{ origin: "peer" }, batchOps.peer]],
    );
    histogram(
      "huskies_applied_batch_bytes",
      "Wire (JSON) size of the operations applied together, by origin.",
      [[{ origin: "local" }, batchBytes.local], [{ origin: "peer" }, batchBytes.peer]],
    );
  }
  if (input.process) {
    const p = input.process;
    family("process_cpu_seconds_total", "counter", "User and system CPU time, seconds.", [
      [{}, p.cpuSeconds],
    ]);
    family("process_resident_memory_bytes", "gauge", "Resident memory size, bytes.", [
      [{}, p.residentBytes],
    ]);
    family("process_start_time_seconds", "gauge", "Start time, seconds since the epoch.", [
      [{}, Math.floor(input.startedAt / 1000)],
    ]);
    if (p.openFds !== undefined) {
      family("process_open_fds", "gauge", "Open file descriptors.", [[{}, p.openFds]]);
    }
    if (p.openSockets !== undefined) {
      family("huskies_open_sockets", "gauge", "Open sockets (TCP and Unix) of the process.", [
        [{}, p.openSockets],
      ]);
    }
  }
  if (input.lag) {
    family(
      "huskies_event_loop_lag_seconds",
      "gauge",
      "How late a 50 ms timer fired last time.",
      [[{}, input.lag.lastSeconds]],
    );
    family(
      "huskies_event_loop_lag_max_seconds",
      "gauge",
      "Largest event-loop lag since the previous scrape.",
      [[{}, input.lag.maxSeconds]],
    );
  }
  return out.join("\n") + "\n";
}
