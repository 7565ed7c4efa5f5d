/**
 * A WebSocket with a pull-style inbox, so a case can wait for "the next
 * frame" or "the close" with a bounded timeout.
 * @module
 */

import { fromUtf8 } from "./bytes.ts";

/** A text frame received. */
export interface TextFrame {
  /** Kind. */
  kind: "text";
  /** The text. */
  text: string;
  /** The parsed JSON, or undefined when the text is not JSON. */
  json: unknown;
  /** Size in UTF-8 bytes. */
  bytes: number;
}

/** A binary frame received. */
export interface BinaryFrame {
  /** Kind. */
  kind: "binary";
  /** The bytes. */
  data: Uint8Array;
  /** Size in bytes. */
  bytes: number;
}

/** The socket closed. */
export interface CloseEvent {
  /** Kind. */
  kind: "close";
  /** Close code (a client's "1000 <code> <reason>" is read as that code). */
  code: number;
  /** Close reason. */
  reason: string;
}

/** Nothing arrived in time. */
export interface TimeoutEvent {
  /** Kind. */
  kind: "timeout";
}

/** What {@link Conn.next} can return. */
export type ConnEvent = TextFrame | BinaryFrame | CloseEvent | TimeoutEvent;

/** Why a dial failed. */
export class DialError extends Error {}

/** One WebSocket connection (either side) with an inbox. */
export class Conn {
  readonly #socket: WebSocket;
  readonly #inbox: (TextFrame | BinaryFrame)[] = [];
  #closed: CloseEvent | undefined;
  #wake: (() => void) | undefined;
  /** When the socket opened (ms since epoch). */
  readonly openedAt: number;

  /** Wraps an open socket; `peerIsClient` reads a client's "1000 <code> ..." close as `<code>`. */
  constructor(socket: WebSocket, peerIsClient = false) {
    this.#socket = socket;
    this.openedAt = Date.now();
    socket.binaryType = "arraybuffer";
    socket.onmessage = (event) => {
      if (typeof event.data === "string") {
        let json: unknown;
        try {
          json = JSON.parse(event.data);
        } catch {
          json = undefined;
        }
        const bytes = new TextEncoder().encode(event.data).length;
        this.#inbox.push({ kind: "text", text: event.data, json, bytes });
      } else {
        const data = new Uint8Array(event.data as ArrayBuffer);
        this.#inbox.push({ kind: "binary", data, bytes: data.length });
      }
      this.#notify();
    };
    socket.onclose = (event) => {
      let code = event.code;
      let reason = event.reason;
      const relayed = /^(\d{4}) (.*)$/s.exec(reason);
      if (peerIsClient && code === 1000 && relayed) {
        code = Number(relayed[1]);
        reason = relayed[2];
      }
      this.#closed = { kind: "close", code, reason };
      this.#notify();
    };
    socket.onerror = () => {};
  }

  /**
   * Dials `url` (with extra upgrade `headers`, such as a §3.10 credential);
   * fails with a {@link DialError} when the upgrade does not happen in time.
   */
  static dial(url: string, timeoutMs: number, headers?: Record<string, string>): Promise<Conn> {
    return new Promise((resolve, reject) => {
      let socket: WebSocket;
      try {
        socket = headers ? new WebSocket(url, { headers }) : new WebSocket(url);
      } catch (error) {
        reject(new DialError(`Cannot connect to ${url}: ${(error as Error).message}`));
        return;
      }
      const timer = setTimeout(() => {
        socket.onopen = socket.onclose = null;
        try {
          socket.close();
        } catch {
          // Not open yet.
        }
        reject(
          new DialError(`Cannot connect to ${url}: no WebSocket upgrade within ${timeoutMs} ms`),
        );
      }, timeoutMs);
      // Wrap before open so no early frame is missed.
      const conn = new Conn(socket);
      const original = socket.onclose;
      socket.onopen = () => {
        clearTimeout(timer);
        socket.onclose = original;
        resolve(conn);
      };
      socket.onclose = (event) => {
        clearTimeout(timer);
        reject(
          new DialError(
            `Cannot connect to ${url}: the WebSocket upgrade failed (code ${event.code}; ` +
              "peer down, wrong path, or over its admission limit of 30 handshakes per minute " +
              "per address: wait a minute)",
          ),
        );
      };
    });
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  /** The close, once it happened. */
  get closed(): CloseEvent | undefined {
    return this.#inbox.length === 0 ? this.#closed : undefined;
  }

  /** True once the socket closed (frames may still wait in the inbox). */
  get isClosed(): boolean {
    return this.#closed !== undefined;
  }

  /** The next frame, the close (after every frame was read), or a timeout. */
  async next(timeoutMs: number): Promise<ConnEvent> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const frame = this.#inbox.shift();
      if (frame) return frame;
      if (this.#closed) return this.#closed;
      const left = deadline - Date.now();
      if (left <= 0) return { kind: "timeout" };
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          this.#wake = undefined;
          resolve();
        }, left);
        this.#wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  /** Frames already received and not yet read (without waiting). */
  drain(): (TextFrame | BinaryFrame)[] {
    return this.#inbox.splice(0);
  }

  /** Sends a JSON object (as text), a string, or bytes; false when the socket is not open. */
  send(data: unknown): boolean {
    if (this.#socket.readyState !== WebSocket.OPEN) return false;
    if (data instanceof Uint8Array || typeof data === "string") this.#socket.send(data);
    else this.#socket.send(JSON.stringify(data));
    return true;
  }

  /** Waits for the peer to close (frames before it are discarded), bounded. */
  async waitClose(timeoutMs: number): Promise<CloseEvent | TimeoutEvent> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const event = await this.next(Math.max(0, deadline - Date.now()));
      if (event.kind === "close" || event.kind === "timeout") return event;
    }
  }

  /** Closes (1000 unless a code is given); never throws. */
  close(code = 1000, reason = "conformance suite done"): void {
    try {
      this.#socket.close(code, reason);
    } catch {
      // Already closed.
    }
  }
}

/** The text of a binary frame, or undefined when it is not UTF-8. */
export function binaryText(frame: BinaryFrame): string | undefined {
  try {
    return fromUtf8(frame.data);
  } catch {
    return undefined;
  }
}
