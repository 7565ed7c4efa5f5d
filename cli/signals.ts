/**
 * How `huskies serve` reacts to SIGINT and SIGTERM. The first signal starts a
 * clean stop. A terminal's Ctrl+C reaches every process of the foreground
 * group, and a task runner (`deno task`, `npx`) forwards the same signal to
 * its child, so one keypress often arrives twice within milliseconds: signals
 * within {@link DUPLICATE_SIGNAL_WINDOW_MS} of the first are duplicates and
 * ignored. A signal after that window means the operator insists, and forces
 * the exit. {@link SignalGate} is pure (the clock is passed in).
 * @module
 */

/** Signals within this long after the first one are taken as copies of it, ms. */
export const DUPLICATE_SIGNAL_WINDOW_MS = 1_000;

/** What to do with a signal. */
export type SignalAction = "stop" | "ignore" | "force";

/** Decides what each stop signal means (pure). */
export class SignalGate {
  readonly #windowMs: number;
  #firstAt: number | undefined;

  /** Creates a gate; `windowMs` is how long duplicates are ignored. */
  constructor(windowMs: number = DUPLICATE_SIGNAL_WINDOW_MS) {
    this.#windowMs = windowMs;
  }

  /** Classifies a signal received at `now` (ms). */
  receive(now: number): SignalAction {
    if (this.#firstAt === undefined) {
      this.#firstAt = now;
      return "stop";
    }
    return now - this.#firstAt < this.#windowMs ? "ignore" : "force";
  }
}

/** The signals that stop `serve` on this platform. */
const STOP_SIGNALS: readonly Deno.Signal[] = Deno.build.os === "windows"
  ? ["SIGINT", "SIGBREAK"]
  : ["SIGINT", "SIGTERM"];

/** Callbacks of {@link listenForStop}. */
export interface StopHandlers {
  /** A signal arrived after the duplicate window: the operator wants out now. */
  force(signal: Deno.Signal): void;
  /** A duplicate was ignored (for a debug log line). */
  ignored?(signal: Deno.Signal): void;
}

/**
 * Listens for SIGINT/SIGTERM and resolves with the first one; later signals
 * go through a {@link SignalGate}. Returns the promise and a function that
 * removes the listeners.
 */
export function listenForStop(
  handlers: StopHandlers,
  gate: SignalGate = new SignalGate(),
): { signal: Promise<Deno.Signal>; dispose(): void } {
  const { promise, resolve } = Promise.withResolvers<Deno.Signal>();
  const listeners: [Deno.Signal, () => void][] = [];
  for (const signal of STOP_SIGNALS) {
    const listener = () => {
      const action = gate.receive(Date.now());
      if (action === "stop") resolve(signal);
      else if (action === "ignore") handlers.ignored?.(signal);
      else handlers.force(signal);
    };
    try {
      Deno.addSignalListener(signal, listener);
      listeners.push([signal, listener]);
    } catch {
      // Not available on this platform.
    }
  }
  return {
    signal: promise,
    dispose() {
      for (const [signal, listener] of listeners) Deno.removeSignalListener(signal, listener);
    },
  };
}
