/**
 * The status page's Server-Sent Events: every open stream gets a snapshot at
 * once, after each change (coalesced over 50 ms) and every second. At most
 * {@link MAX_EVENT_STREAMS} streams are served at once.
 * @module
 */
import { failure } from "./respond.ts";

/** Most status page event streams served at once. */
export const MAX_EVENT_STREAMS = 32;

/** The open event streams of one app. */
export class EventStreams {
  readonly #snapshot: () => string;
  readonly #streams = new Set<ReadableStreamDefaultController<Uint8Array>>();
  #ticker: ReturnType<typeof setInterval> | undefined;
  #pushScheduled = false;
  #closed = false;

  /** `snapshot` gives the JSON text each event carries. */
  constructor(snapshot: () => string) {
    this.#snapshot = snapshot;
  }

  /** A new stream, or 503 when shutting down or full. */
  open(): Response {
    if (this.#closed) return failure(503, "Cannot stream events: the node is shutting down");
    if (this.#streams.size >= MAX_EVENT_STREAMS) {
      return failure(503, `Cannot stream events: ${MAX_EVENT_STREAMS} streams are open already`);
    }
    let controller!: ReadableStreamDefaultController<Uint8Array>;
    const body = new ReadableStream<Uint8Array>({
      start: (c) => {
        controller = c;
        this.#streams.add(c);
        c.enqueue(this.#event(this.#snapshot()));
        this.#ticker ??= setInterval(() => this.push(), 1000);
      },
      cancel: () => this.#drop(controller),
    });
    return new Response(body, {
      headers: {
        "content-type": "text/event-stream; charset=utf-8",
        "cache-control": "no-store",
        "x-accel-buffering": "no",
      },
    });
  }

  #event(data: string): Uint8Array {
    return new TextEncoder().encode(`event: status\ndata: ${data}\n\n`);
  }

  #drop(controller: ReadableStreamDefaultController<Uint8Array>): void {
    this.#streams.delete(controller);
    if (this.#streams.size === 0 && this.#ticker !== undefined) {
      clearInterval(this.#ticker);
      this.#ticker = undefined;
    }
  }

  /** Pushes a snapshot soon (changes within 50 ms share one). */
  schedulePush(): void {
    if (this.#pushScheduled || this.#streams.size === 0) return;
    this.#pushScheduled = true;
    setTimeout(() => {
      this.#pushScheduled = false;
      this.push();
    }, 50);
  }

  /** Pushes a snapshot to every stream now. */
  push(): void {
    if (this.#closed || this.#streams.size === 0) return;
    const frame = this.#event(this.#snapshot());
    for (const controller of [...this.#streams]) {
      try {
        controller.enqueue(frame);
      } catch {
        this.#drop(controller);
      }
    }
  }

  /** Ends every stream and stops the timer. Safe to call twice. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#ticker !== undefined) clearInterval(this.#ticker);
    for (const controller of this.#streams) {
      try {
        controller.close();
      } catch {
        // Already closed by the client.
      }
    }
    this.#streams.clear();
  }
}
