/**
 * Standard process metrics for `/metrics`, measured by hand: CPU seconds,
 * resident memory, open file descriptors and sockets (Linux), and
 * event-loop lag. (npm `prom-client` was measured under Deno 2.9 and not
 * adopted: its event-loop lag relies on `monitorEventLoopDelay`, which
 * reported 1.4 ms max while the loop was blocked for 200 ms, and its handle
 * counts are always 0; see cli/USAGE.md.)
 * @module
 */
import process from "node:process";

/** One reading of the process counters. */
export interface ProcessSample {
  /** User plus system CPU time, seconds. */
  cpuSeconds: number;
  /** Resident set size, bytes. */
  residentBytes: number;
  /** Open file descriptors (Linux, and only when Deno runs with --allow-all: it guards /proc/self). */
  openFds?: number;
  /** Open sockets among them (Linux only). */
  openSockets?: number;
}

/** Most descriptors inspected per reading (a bound on the work of one scrape). */
const MAX_FDS_READ = 65_536;

/** Counts open descriptors and sockets from `/proc/self/fd`; `undefined` elsewhere. */
function countFds(): { openFds: number; openSockets: number } | undefined {
  if (Deno.build.os !== "linux") return undefined;
  try {
    let openFds = 0;
    let openSockets = 0;
    for (const entry of Deno.readDirSync("/proc/self/fd")) {
      if (++openFds > MAX_FDS_READ) break;
      try {
        if (Deno.readLinkSync(`/proc/self/fd/${entry.name}`).startsWith("socket:")) openSockets++;
      } catch {
        // Closed while we looked.
      }
    }
    // One descriptor is the directory being read.
    return { openFds: Math.max(0, openFds - 1), openSockets };
  } catch {
    return undefined; // No /proc, or no permission to read it.
  }
}

/** Reads the process counters now. */
export function sampleProcess(): ProcessSample {
  const cpu = process.cpuUsage();
  return {
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
    residentBytes: Deno.memoryUsage().rss,
    ...countFds(),
  };
}

/** How often {@link EventLoopLagMonitor} checks the loop, ms. */
export const LAG_INTERVAL_MS = 50;

/**
 * Measures event-loop lag: a timer due every {@link LAG_INTERVAL_MS} ms
 * notes how late it fires. Keeps the latest lag and the largest since the
 * last {@link EventLoopLagMonitor.take}. Its timer never keeps the process
 * alive.
 */
export class EventLoopLagMonitor {
  readonly #timer: ReturnType<typeof setInterval>;
  #due: number;
  #last = 0;
  #max = 0;

  /** Starts measuring. */
  constructor(intervalMs: number = LAG_INTERVAL_MS) {
    this.#due = performance.now() + intervalMs;
    this.#timer = setInterval(() => {
      const now = performance.now();
      this.#last = Math.max(0, now - this.#due);
      this.#max = Math.max(this.#max, this.#last);
      this.#due = now + intervalMs;
    }, intervalMs);
    // Deno timers are numbers; the node typings in scope call them Timeout.
    Deno.unrefTimer(this.#timer as unknown as number);
  }

  /** The latest lag and the largest since the previous call, seconds; resets the largest. */
  take(): { lastSeconds: number; maxSeconds: number } {
    const result = { lastSeconds: this.#last / 1000, maxSeconds: this.#max / 1000 };
    this.#max = this.#last;
    return result;
  }

  /** Stops measuring. */
  stop(): void {
    clearInterval(this.#timer);
  }
}
