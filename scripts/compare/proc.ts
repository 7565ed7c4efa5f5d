/**
 * Process and socket readings for the benchmark harnesses (Linux only): CPU
 * time and RSS from /proc, TCP byte counters from `ss`, and a child process
 * that speaks one JSON object per stdout line.
 * @module
 */
import type { Mutation } from "../../crdt/operation.ts";

/** Clock ticks per second of /proc/<pid>/stat times (USER_HZ, 100 on Linux). */
const TICKS_PER_SECOND = 100;

/** User + system CPU time of process `pid` so far, in milliseconds. */
export function cpuMs(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  // Fields after the command name, which is in parentheses and may hold spaces.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  return (utime + stime) * 1000 / TICKS_PER_SECOND;
}

/** Resident set size of process `pid` now, in bytes. */
export function rssBytes(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const match = status.match(/^VmRSS:\s+(\d+) kB/m);
  if (!match) throw new Error(`Cannot read RSS: no VmRSS for process ${pid}`);
  return Number(match[1]) * 1024;
}

/**
 * Bytes the kernel counted on this machine's established TCP connections whose
 * remote port is `remotePort` (the client ends of connections to a server on
 * that port), from `ss -tin`: `received` is TCP payload that arrived at those
 * ends, `sent` what they sent and had acknowledged.
 */
export async function clientTcpBytes(
  remotePort: number,
): Promise<{ received: number; sent: number; connections: number }> {
  const { stdout, success } = await new Deno.Command("ss", {
    args: ["-tinH", "state", "established", `( dport = :${remotePort} )`],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  if (!success) throw new Error("Cannot read socket counters: ss failed");
  const text = new TextDecoder().decode(stdout);
  const values = (name: string) =>
    [...text.matchAll(new RegExp(`\\b${name}:(\\d+)`, "g"))].map((m) => Number(m[1]));
  const sum = (name: string) => values(name).reduce((s, v) => s + v, 0);
  return {
    received: sum("bytes_received"),
    sent: sum("bytes_acked"),
    connections: text.split("\n").filter((line) => /^\S/.test(line)).length,
  };
}

/** Value at quantile `q` (0..1) of `sorted` (ascending). */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

/** What a fan-out run prints: deliveries and their latency p50, p99 and max (sorts `latencies`). */
export function fanoutResult(latencies: number[], wallMs: number): {
  deliveries: number;
  p50: number;
  p99: number;
  max: number;
  wallMs: number;
} {
  latencies.sort((a, b) => a - b);
  return {
    deliveries: latencies.length,
    p50: quantile(latencies, 0.5),
    p99: quantile(latencies, 0.99),
    max: quantile(latencies, 1),
    wallMs,
  };
}

/** Median of `values`. */
export function median(values: readonly number[]): number {
  return quantile([...values].sort((a, b) => a - b), 0.5);
}

/** A child Deno process running one of these scripts, talking JSON lines on stdout. */
export class JsonChild {
  readonly #child: Deno.ChildProcess;
  readonly #lines: ReadableStreamDefaultReader<string>;
  #buffer = "";

  /** Starts `deno run -A ...denoFlags <script> ...args`; stderr is passed through. */
  constructor(script: URL, args: string[], denoFlags: string[] = []) {
    this.#child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", ...denoFlags, script.pathname, ...args],
      stdin: "null",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    this.#lines = this.#child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  }

  /** The child's process id. */
  get pid(): number {
    return this.#child.pid;
  }

  /** Reads the next JSON line the child prints; throws if it exits first. */
  async next<T = Record<string, unknown>>(): Promise<T> {
    while (!this.#buffer.includes("\n")) {
      const { value, done } = await this.#lines.read();
      if (done) throw new Error(`child ${this.#child.pid} exited before its next line`);
      this.#buffer += value;
    }
    const at = this.#buffer.indexOf("\n");
    const line = this.#buffer.slice(0, at);
    this.#buffer = this.#buffer.slice(at + 1);
    return JSON.parse(line) as T;
  }

  /**
   * Waits up to `ms` for the child to exit by itself (so its own clean-up
   * runs), then stops it like {@link stop}.
   */
  async finish(ms = 10_000): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const exited = await Promise.race([
      this.#child.status.then(() => true),
      new Promise<boolean>((resolve) => timer = setTimeout(() => resolve(false), ms)),
    ]);
    clearTimeout(timer);
    if (!exited) await this.stop();
    else await this.#lines.cancel().catch(() => {});
  }

  /** Stops the child (SIGTERM) and waits for it. */
  async stop(): Promise<void> {
    try {
      this.#child.kill("SIGTERM");
    } catch {
      // already gone
    }
    await this.#child.status;
    await this.#lines.cancel().catch(() => {});
  }
}

/** The marker a benchmark value carries: `t=<sent at, µs since epoch>;`, padded to 100 bytes. */
export function stampedValue(nowMs: number, size = 100): string {
  const stamp = `t=${Math.round(nowMs * 1000)};`;
  return stamp + "x".repeat(Math.max(0, size - stamp.length));
}

const STAMP_DIGITS = 16;

/**
 * Calls `onStamp` with the send time (ms since the epoch) of every stamp in a
 * frame, text or bytes, without decoding it; returns how many it found. Cheap
 * on purpose: the subscribers share one process and must not be the bottleneck.
 */
export function forEachStamp(
  data: string | Uint8Array,
  onStamp: (sentAtMs: number) => void,
): number {
  let found = 0;
  if (typeof data === "string") {
    for (let at = data.indexOf("t="); at >= 0; at = data.indexOf("t=", at + 2)) {
      const end = at + 2 + STAMP_DIGITS;
      if (data.charCodeAt(end) !== 59 /* ; */) continue;
      const micros = Number(data.slice(at + 2, end));
      if (Number.isInteger(micros)) {
        onStamp(micros / 1000);
        found++;
      }
    }
    return found;
  }
  for (let at = data.indexOf(116 /* t */); at >= 0; at = data.indexOf(116, at + 1)) {
    const end = at + 2 + STAMP_DIGITS;
    if (data[at + 1] !== 61 /* = */ || data[end] !== 59 /* ; */) continue;
    let micros = 0;
    let digits = 0;
    for (let i = at + 2; i < end; i++, digits++) {
      const digit = data[i] - 48;
      if (digit < 0 || digit > 9) break;
      micros = micros * 10 + digit;
    }
    if (digits === STAMP_DIGITS) {
      onStamp(micros / 1000);
      found++;
    }
  }
  return found;
}

/** The current time in milliseconds since the epoch, sub-millisecond precision. */
export const nowMs = (): number => performance.timeOrigin + performance.now();

/** Yields to the event loop for about a millisecond. */
export const tick = (): Promise<unknown> => new Promise((resolve) => setTimeout(resolve, 1));

/**
 * Commits `updates` stamped 100-byte values through `replica` at `rate` per
 * second from `start` (ms on {@link nowMs}), over 100 items: the writer of
 * the fan-out workloads.
 */
export async function writeAtRate(
  replica: { commit(mutations: Mutation[]): unknown },
  updates: number,
  rate: number,
  start: number,
): Promise<void> {
  let made = 0;
  while (made < updates) {
    const due = Math.min(updates, Math.floor((nowMs() - start) * rate / 1000));
    for (; made < due; made++) {
      replica.commit([{
        type: "update",
        path: ["items", `F-${made % 100}`],
        fields: { value: stampedValue(nowMs()) },
      }]);
    }
    await tick();
  }
}
