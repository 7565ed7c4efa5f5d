/**
 * A client WebSocket connection over npm `ws`, whose `node:net` socket has
 * TCP_NODELAY set (Deno's native client WebSocket leaves it off, so small live
 * frames wait on delayed ACKs). It exposes what a node's dial path needs:
 * text and binary sends, close with code and reason, the bytes still
 * buffered, extra upgrade headers, and dial failures as clear reasons.
 * The server side stays native `Deno.serve` + `Deno.upgradeWebSocket`.
 * @module
 */
import type WebSocket from "ws";
import { frameLength } from "../protocol/bytes.ts";

/** The environment variables npm `ws` reads when it loads (it needs env access to them). */
export const WS_ENV_VARIABLES = ["WS_NO_BUFFER_UTIL", "WS_NO_UTF_8_VALIDATE"] as const;

let wsModule: Promise<typeof WebSocket> | undefined;

/**
 * npm `ws`, loaded on first use rather than when this module loads: `ws`
 * reads environment variables as it loads, which needs `--allow-env`, and a
 * node that never dials with it must run without.
 */
function loadWs(): Promise<typeof WebSocket> {
  wsModule ??= import("ws").then((module) => module.default);
  return wsModule;
}

/** The close code reported when the connection ended without a close frame (a failed dial too). */
export const ABNORMAL_CLOSE = 1006;

/** The close code for a message over the size limit. */
const TOO_BIG = 1009;

/** Why a dial failed. */
export type DialFailureKind =
  | "refused"
  | "name-not-resolved"
  | "http-status"
  | "tls"
  | "timeout"
  | "other";

/** A dial failure: its kind, the HTTP status when the upgrade was answered, and a reason to log. */
export interface DialFailure {
  /** What went wrong. */
  kind: DialFailureKind;
  /** The HTTP status the server answered the upgrade with (kind `http-status`). */
  status?: number;
  /** A sentence naming the cause, e.g. `connection refused by 127.0.0.1:3001`. */
  reason: string;
}

/** Options for {@link WsClientConnection.open}. */
export interface WsClientOptions {
  /** Extra headers sent with the upgrade request. */
  headers?: Record<string, string>;
  /** Largest message accepted; a bigger one closes the connection with 1009. @default 1 MiB */
  maxPayloadBytes?: number;
  /** Time allowed for TCP connect, TLS and the upgrade. @default 10 000 ms */
  connectTimeoutMs?: number;
}

interface NodeError {
  code?: unknown;
  message?: unknown;
}

const TLS_CODE = /^(ERR_SSL_|ERR_TLS_|CERT_|UNABLE_TO_|DEPTH_ZERO_|SELF_SIGNED_)/;

/**
 * Maps an error `ws` reported while dialling `url` to a {@link DialFailure}.
 * Pure: it reads only the error's `code` and `message`.
 */
export function describeDialFailure(url: string, error: unknown): DialFailure {
  const { code, message } = (error ?? {}) as NodeError;
  const text = typeof message === "string" ? message : String(error);
  const where = new URL(url).host;
  if (code === "ECONNREFUSED") return { kind: "refused", reason: `connection refused by ${where}` };
  if (code === "ENOTFOUND" || code === "EAI_AGAIN" || code === "EAI_NONAME") {
    return { kind: "name-not-resolved", reason: `host name ${new URL(url).hostname} not resolved` };
  }
  const status = text.match(/^Unexpected server response: (\d{3})$/);
  if (status) {
    return {
      kind: "http-status",
      status: Number(status[1]),
      reason: `${where} answered the WebSocket upgrade with HTTP ${status[1]}`,
    };
  }
  if (
    (typeof code === "string" && TLS_CODE.test(code)) || /certificate|\bTLS\b|\bSSL\b/i.test(text)
  ) {
    return { kind: "tls", reason: `TLS with ${where} failed: ${text}` };
  }
  if (code === "ETIMEDOUT" || text === "Opening handshake has timed out") {
    return { kind: "timeout", reason: `${where} did not complete the connection in time` };
  }
  return { kind: "other", reason: `connection to ${where} failed: ${text}` };
}

/**
 * One client connection. Set the handlers as soon as {@link open} resolves;
 * they fire from later event-loop turns. `onclose` fires exactly once, whether the
 * connection closed cleanly, broke, or never opened (then with 1006 and
 * {@link failure} set). A message over the size limit closes it with 1009.
 *
 * @example
 * ```ts ignore
 * const connection = await WsClientConnection.open("ws://127.0.0.1:3001/crdt-sync");
 * connection.onopen = () => connection.send("hello");
 * connection.onmessage = (data) => console.log(data);
 * connection.onclose = (code, reason) => console.log(code, reason, connection.failure);
 * ```
 */
export class WsClientConnection {
  /** Called once the upgrade succeeded. */
  onopen: () => void = () => {};
  /** Called for each message: text frames as strings, binary frames as bytes. */
  onmessage: (data: string | Uint8Array) => void = () => {};
  /** Called once when the connection is over, with the close code and reason. */
  onclose: (code: number, reason: string) => void = () => {};

  readonly #socket: WebSocket;
  readonly #ws: typeof WebSocket;
  readonly #url: string;
  #failure?: DialFailure;
  /** Set when this end broke an open connection (a frame it refused); reported by `onclose`. */
  #brokenBy?: { code: number; reason: string };
  #opened = false;
  /** Bytes sent whose write has not completed yet. */
  #unwritten = 0;

  private constructor(ws: typeof WebSocket, url: string, options: WsClientOptions) {
    this.#url = url;
    this.#ws = ws;
    this.#socket = new ws(url, {
      headers: options.headers,
      maxPayload: options.maxPayloadBytes ?? 1024 * 1024,
      handshakeTimeout: options.connectTimeoutMs ?? 10_000,
      perMessageDeflate: false,
    });
    this.#socket.on("open", () => {
      this.#opened = true;
      this.onopen();
    });
    this.#socket.on("message", (data: Uint8Array, isBinary: boolean) => {
      const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
      this.onmessage(isBinary ? bytes : new TextDecoder().decode(bytes));
    });
    this.#socket.on("error", (error: unknown) => {
      if (!this.#opened) {
        this.#failure ??= describeDialFailure(this.#url, error);
      } else if ((error as NodeError).code === "WS_ERR_UNSUPPORTED_MESSAGE_LENGTH") {
        this.#brokenBy ??= { code: TOO_BIG, reason: "message over the size limit" };
      } else {
        this.#brokenBy ??= { code: ABNORMAL_CLOSE, reason: String((error as NodeError).message) };
      }
    });
    this.#socket.on("close", (code: number, reason: Uint8Array) => {
      const text = new TextDecoder().decode(reason);
      if (this.#brokenBy && code === ABNORMAL_CLOSE) {
        this.onclose(this.#brokenBy.code, this.#brokenBy.reason);
      } else this.onclose(code, this.#failure && !text ? this.#failure.reason : text);
    });
  }

  /**
   * Starts dialling `url` (`ws://` or `wss://`; rejects with a TypeError for
   * any other URL). Loading `ws` the first time needs env access to
   * {@link WS_ENV_VARIABLES}.
   */
  static async open(url: string, options: WsClientOptions = {}): Promise<WsClientConnection> {
    const protocol = new URL(url).protocol;
    if (protocol !== "ws:" && protocol !== "wss:") {
      throw new TypeError(`Cannot connect to ${url}: the URL must start with ws:// or wss://`);
    }
    return new WsClientConnection(await loadWs(), url, options);
  }

  /** Why the dial failed, once it has; undefined while connecting or after a successful open. */
  get failure(): DialFailure | undefined {
    return this.#failure;
  }

  /** True between `onopen` and the start of closing. */
  get isOpen(): boolean {
    return this.#socket.readyState === this.#ws.OPEN;
  }

  /**
   * Bytes accepted by {@link send} but not yet handed to the kernel. `ws`
   * alone reports 0 right after a send (its socket takes the bytes at once),
   * so frames whose write has not completed are counted here too, as Deno's
   * client counts them: a session batches while they are pending.
   */
  get bufferedAmount(): number {
    return this.#socket.bufferedAmount + this.#unwritten;
  }

  /** Sends a text frame (string) or a binary frame (bytes); throws unless open. */
  send(data: string | Uint8Array): void {
    if (!this.isOpen) throw new Error(`Cannot send to ${this.#url}: the connection is not open`);
    const bytes = frameLength(data);
    this.#unwritten += bytes;
    this.#socket.send(data, { binary: typeof data !== "string" }, () => {
      this.#unwritten -= bytes;
    });
  }

  /**
   * Starts the closing handshake with `code` (1000 or 3000-4999, as a client
   * may send) and `reason` (at most 123 UTF-8 bytes). Before the connection
   * opened, it abandons the dial instead. Closing twice does nothing.
   */
  close(code = 1000, reason = ""): void {
    if (code !== 1000 && (code < 3000 || code > 4999)) {
      throw new RangeError(`Cannot close: a client may not send close code ${code}`);
    }
    if (new TextEncoder().encode(reason).length > 123) {
      throw new RangeError("Cannot close: the reason is longer than 123 bytes");
    }
    const state = this.#socket.readyState;
    if (state === this.#ws.CONNECTING) {
      this.#failure ??= { kind: "other", reason: "dial abandoned before the connection opened" };
      this.#socket.terminate();
    } else if (state === this.#ws.OPEN) {
      this.#socket.close(code, reason);
    }
  }
}
