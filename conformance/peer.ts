/**
 * The suite as a client of the peer under test: the handshake, then a sync
 * session it drives frame by frame (clock, probes of what the peer holds,
 * live operations, pings).
 * @module
 */

import { randomHex } from "./wire/bytes.ts";
import type { KeyPair } from "./wire/ed25519.ts";
import {
  authMessage,
  challengeProblem,
  type TranscriptParts,
  verifyTranscript,
} from "./wire/handshake.ts";
import type { Op } from "./wire/operation.ts";
import { CBULK, cbulkFrame, cbulkOps } from "./wire/compact.ts";
import { binaryText, Conn, type ConnEvent, type TextFrame } from "./wire/socket.ts";
import { brief, CaseFailure, expect } from "./check.ts";

/** Default sync frame limit (§1). */
export const FRAME_LIMIT = 1024 * 1024;

/** A connection that finished the handshake as client. */
export interface Handshaken {
  /** The socket. */
  conn: Conn;
  /** The transcript values. */
  parts: TranscriptParts;
  /** The `auth` frame sent, as text. */
  authText: string;
  /** The scope granted. */
  scope: string;
  /** The challenge frame received. */
  challenge: Record<string, unknown>;
}

/** Describes an event for a failure message. */
export function describe(event: ConnEvent): string {
  switch (event.kind) {
    case "close":
      return `close ${event.code} ${JSON.stringify(event.reason)}`;
    case "timeout":
      return "nothing (timed out)";
    case "text":
      return `text frame ${brief(event.text)}`;
    case "binary":
      return `binary frame of ${event.bytes} bytes`;
  }
}

/** Reads the `challenge` frame; fails the case unless it is well formed. */
export async function readChallenge(
  conn: Conn,
  timeoutMs: number,
): Promise<Record<string, unknown>> {
  const event = await conn.next(timeoutMs);
  expect(event.kind === "text", "a text challenge frame first", describe(event));
  const frame = (event as TextFrame).json;
  const problem = challengeProblem(frame);
  expect(
    problem === undefined,
    "a well-formed challenge (§3.3.1)",
    `${problem}: ${brief((event as TextFrame).text)}`,
  );
  return frame as Record<string, unknown>;
}

/** Options for {@link handshake}. */
export interface HandshakeOptions {
  /** Join token `<id>.<secret>` to present. */
  token?: string;
  /** Bound for each step, ms. */
  timeoutMs: number;
}

/** Dials `url` and authenticates as `key`; fails the case when refused or the welcome is wrong. */
export async function handshake(
  url: string,
  key: KeyPair,
  options: HandshakeOptions,
): Promise<Handshaken> {
  const conn = await Conn.dial(url, options.timeoutMs);
  try {
    const challenge = await readChallenge(conn, options.timeoutMs);
    const clientChallenge = randomHex(32);
    const auth = authMessage(
      key,
      challenge.challenge as string,
      challenge.key as string,
      clientChallenge,
      options.token,
    );
    const authText = JSON.stringify(auth);
    conn.send(authText);
    const event = await conn.next(options.timeoutMs);
    expect(event.kind === "text", "a welcome frame", describe(event));
    const welcome = (event as TextFrame).json as Record<string, unknown> | undefined;
    expect(welcome?.type === "welcome", "a welcome frame", describe(event));
    const parts: TranscriptParts = {
      serverChallenge: challenge.challenge as string,
      clientChallenge,
      serverKey: challenge.key as string,
      clientKey: key.id,
    };
    expect(
      welcome!.scope === "write" || welcome!.scope === "read",
      'welcome.scope "write" or "read"',
      brief(welcome!.scope),
    );
    expect(
      verifyTranscript(parts.serverKey, "server", parts, welcome!.sig as string),
      'welcome.sig valid over transcript("server") by the challenge key (§3.4)',
      verifyTranscript(parts.serverKey, "client", parts, welcome!.sig as string)
        ? 'a signature over transcript("client") (the wrong role)'
        : `an invalid signature ${brief(welcome!.sig)}`,
    );
    return { conn, parts, authText, scope: welcome!.scope as string, challenge };
  } catch (error) {
    conn.close();
    throw error;
  }
}

/** A fork proof as received. */
export interface ForkProof {
  /** One operation. */
  a: Op;
  /** The other operation at the same author and seq. */
  b: Op;
}

/** One item of what the peer sent in answer to a clock. */
export type Served =
  | { kind: "op"; op: Op; frame: number; via: "bulk" | "cbulk" | "binary"; asString: boolean }
  | { kind: "fork"; proof: ForkProof; frame: number };

/** What a probe collected. */
export interface ProbeResult {
  /** Operations and proofs, in arrival order. */
  served: Served[];
  /** Sizes of the frames, bytes, in order, with their type. */
  frames: { type: string; bytes: number }[];
}

/** Parses the operations of a `bulk` frame or a binary live frame; fails the case when malformed. */
export function framedOps(
  frame: TextFrame | { kind: "binary"; data: Uint8Array; bytes: number },
): { ops: Op[]; strings: boolean[] } | undefined {
  if (frame.kind === "binary") {
    const text = binaryText(frame);
    let envelope: unknown;
    try {
      envelope = JSON.parse(text ?? "");
    } catch {
      envelope = undefined;
    }
    const e = envelope as { v?: unknown; op?: unknown } | undefined;
    expect(
      e && e.v === 1 && typeof e.op === "object",
      'a binary frame {"v":1,"op":…} (§6.5)',
      brief(text ?? "non-UTF-8 bytes"),
    );
    return { ops: [e!.op as Op], strings: [false] };
  }
  const json = frame.json as { type?: unknown; ops?: unknown } | undefined;
  if (json?.type !== "bulk") return undefined;
  expect(Array.isArray(json.ops), "bulk.ops to be an array", brief(frame.text));
  const ops: Op[] = [];
  const strings: boolean[] = [];
  for (const element of json.ops as unknown[]) {
    if (typeof element === "string") {
      ops.push(JSON.parse(element));
      strings.push(true);
    } else {
      ops.push(element as Op);
      strings.push(false);
    }
  }
  return { ops, strings };
}

/** Options for {@link SyncPeer.start}. */
export interface StartOptions {
  /** Do not send `ready` yet (the case sends it with {@link SyncPeer.sendReady}). */
  holdReady?: boolean;
  /** Bound for each wait, ms. */
  timeoutMs: number;
  /** Authors to claim 0 for in our first clock, so the peer's initial delta carries them. */
  ask?: string[];
  /** The `accept` list our clocks carry (§6.9); none when absent. */
  accept?: string[];
}

/** A sync session the suite drives, after the handshake. */
export class SyncPeer {
  /** The handshake this session started with. */
  readonly hs: Handshaken;
  /** The peer's first `clock` frame. */
  peerClock: Record<string, number> = {};
  /** The peer's first `heads`, when sent. */
  peerHeads: Record<string, string> | undefined;
  /** The peer's first clock's `accept` (§6.9), empty when absent. */
  peerAccept: unknown[] = [];
  /** Operations the peer served in its first delta. */
  initial: ProbeResult = { served: [], frames: [] };
  /** Per author, the highest seq this session saw or sent. */
  readonly #known = new Map<string, number>();
  readonly timeoutMs: number;
  #readySent = false;
  #accept: string[] | undefined;

  private constructor(hs: Handshaken, timeoutMs: number, accept?: string[]) {
    this.hs = hs;
    this.timeoutMs = timeoutMs;
    this.#accept = accept;
  }

  /** A clock frame claiming `clock`, with our `accept` list when we have one. */
  #clock(clock: Record<string, number>): Record<string, unknown> {
    return this.#accept ? { type: "clock", clock, accept: this.#accept } : { type: "clock", clock };
  }

  /** The socket. */
  get conn(): Conn {
    return this.hs.conn;
  }

  /**
   * Reads the peer's clock (which must be the first sync frame), answers with
   * the same clock (the suite claims to hold what the peer holds, so the
   * peer's delta is empty), reads the peer's delta up to `ready`, then sends
   * `ready` unless held.
   */
  static async start(hs: Handshaken, options: StartOptions): Promise<SyncPeer> {
    const peer = new SyncPeer(hs, options.timeoutMs, options.accept);
    const event = await hs.conn.next(options.timeoutMs);
    const json = event.kind === "text" ? (event.json as Record<string, unknown>) : undefined;
    expect(
      json?.type === "clock",
      "a clock frame first after the handshake (§6.2)",
      describe(event),
    );
    const problem = clockProblem(json);
    expect(problem === undefined, "a well-formed clock frame (§6.1)", `${problem}: ${brief(json)}`);
    peer.peerClock = json!.clock as Record<string, number>;
    peer.peerHeads = json!.heads as Record<string, string> | undefined;
    peer.peerAccept = Array.isArray(json!.accept) ? json!.accept : [];
    for (const [author, count] of Object.entries(peer.peerClock)) peer.#known.set(author, count);
    const clock = { ...peer.peerClock };
    for (const author of options.ask ?? []) clock[author] = 0;
    hs.conn.send(peer.#clock(clock));
    peer.initial = await peer.#collectUntilReady();
    if (!options.holdReady) peer.sendReady();
    return peer;
  }

  /** Sends `ready` (once). */
  sendReady(): void {
    if (this.#readySent) return;
    this.#readySent = true;
    this.conn.send({ type: "ready" });
  }

  /** Sends each operation as its own binary live frame. */
  sendLive(ops: Op[]): void {
    for (const op of ops) {
      this.#note(op);
      this.conn.send(new TextEncoder().encode(JSON.stringify({ v: 1, op })));
    }
  }

  /** Sends operations as `bulk` frames no larger than the frame limit. */
  sendBulk(ops: Op[], asStrings = false): void {
    for (const frame of bulkFrames(ops, FRAME_LIMIT, asStrings)) this.conn.send(frame);
    for (const op of ops) this.#note(op);
  }

  /** Sends operations as one `cbulk` frame (§6.9). */
  sendCompact(ops: Op[]): void {
    this.conn.send(cbulkFrame(ops));
    for (const op of ops) this.#note(op);
  }

  #note(op: Op): void {
    if ((this.#known.get(op.author) ?? 0) < op.seq) this.#known.set(op.author, op.seq);
  }

  /**
   * Asks the peer what it holds of `authors`: sends a clock claiming every
   * other author as known and these at 0, and collects the answer up to
   * `ready`.
   */
  async probe(authors: string[]): Promise<ProbeResult> {
    this.conn.drain();
    const clock: Record<string, number> = Object.fromEntries(this.#known);
    for (const author of authors) clock[author] = 0;
    this.conn.send(this.#clock(clock));
    return await this.#collectUntilReady();
  }

  /** Operations of `authors` the peer holds (applied), in the order it served them. */
  async held(authors: string[]): Promise<Op[]> {
    const result = await this.probe(authors);
    return appliedOps(result).filter((op) => authors.includes(op.author));
  }

  /** Probes until `done` holds for the held operations of `authors`, bounded by the timeout. */
  async heldWhen(authors: string[], done: (ops: Op[]) => boolean, what: string): Promise<Op[]> {
    const deadline = Date.now() + this.timeoutMs;
    let ops: Op[] = [];
    for (;;) {
      ops = await this.held(authors);
      if (done(ops)) return ops;
      if (Date.now() > deadline) {
        throw new CaseFailure(what, `the peer holds ${describeOps(ops)}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  async #collectUntilReady(): Promise<ProbeResult> {
    const result: ProbeResult = { served: [], frames: [] };
    for (;;) {
      const event = await this.conn.next(this.timeoutMs);
      if (event.kind === "close" || event.kind === "timeout") {
        throw new CaseFailure("the peer's delta ending with ready (§6.2)", describe(event));
      }
      const index = result.frames.length;
      if (event.kind === "binary") {
        result.frames.push({ type: "binary", bytes: event.bytes });
        for (const op of framedOps(event)!.ops) {
          this.#note(op);
          result.served.push({ kind: "op", op, frame: index, via: "binary", asString: false });
        }
        continue;
      }
      const json = event.json as Record<string, unknown> | undefined;
      const type = typeof json?.type === "string" ? json.type : "?";
      result.frames.push({ type, bytes: event.bytes });
      if (type === "ready") return result;
      if (type === "bulk") {
        const { ops, strings } = framedOps(event)!;
        ops.forEach((op, i) => {
          this.#note(op);
          result.served.push({ kind: "op", op, frame: index, via: "bulk", asString: strings[i] });
        });
      } else if (type === CBULK) {
        let ops: Op[] = [];
        try {
          ops = cbulkOps(json!);
        } catch (error) {
          throw new CaseFailure("a cbulk frame as §6.9 describes", (error as Error).message);
        }
        for (const op of ops) {
          this.#note(op);
          result.served.push({ kind: "op", op, frame: index, via: "cbulk", asString: false });
        }
      } else if (type === "fork") {
        result.served.push({ kind: "fork", proof: json!.proof as ForkProof, frame: index });
      }
    }
  }

  /**
   * Sends `ping` and returns every frame that arrived before the `pong`;
   * fails the case when no pong comes.
   */
  async ping(): Promise<(TextFrame | { kind: "binary"; data: Uint8Array; bytes: number })[]> {
    this.conn.send({ type: "ping" });
    return await pingBarrier(this.conn, this.timeoutMs);
  }

  /** Closes the session. */
  close(): void {
    this.conn.close();
  }
}

/** Waits for a `pong`, returning the frames before it; fails the case without one. */
async function pingBarrier(
  conn: Conn,
  timeoutMs: number,
): Promise<(TextFrame | { kind: "binary"; data: Uint8Array; bytes: number })[]> {
  const before: (TextFrame | { kind: "binary"; data: Uint8Array; bytes: number })[] = [];
  for (;;) {
    const event = await conn.next(timeoutMs);
    if (event.kind === "close" || event.kind === "timeout") {
      throw new CaseFailure('{"type":"pong"} in answer to {"type":"ping"} (§6.4)', describe(event));
    }
    if (event.kind === "text" && (event.json as { type?: unknown })?.type === "pong") return before;
    before.push(event);
  }
}

/** What is wrong with a clock frame, or undefined. */
export function clockProblem(frame: Record<string, unknown> | undefined): string | undefined {
  const clock = frame?.clock;
  if (typeof clock !== "object" || clock === null || Array.isArray(clock)) {
    return "clock is not an object";
  }
  for (const [author, count] of Object.entries(clock)) {
    if (!/^[0-9a-f]{64}$/.test(author)) return `clock key ${brief(author, 20)} is not hex64`;
    if (!Number.isSafeInteger(count) || (count as number) < 0) {
      return `clock[${author.slice(0, 8)}…] is not a count`;
    }
  }
  const accept = frame!.accept;
  if (
    accept !== undefined && (!Array.isArray(accept) || accept.length > 16 ||
      !accept.every((name) => typeof name === "string" && name.length <= 64))
  ) return "accept is not a list of at most 16 names (§6.9)";
  const heads = frame!.heads;
  if (heads !== undefined) {
    if (typeof heads !== "object" || heads === null || Array.isArray(heads)) {
      return "heads is not an object";
    }
    for (const id of Object.values(heads)) {
      if (!/^[0-9a-f]{64}$/.test(String(id))) return "a head is not hex64";
    }
  }
  return undefined;
}

/** The operations of a probe that came before any fork proof (the catch-up delta proper). */
export function appliedOps(result: ProbeResult): Op[] {
  const ops: Op[] = [];
  for (const item of result.served) {
    if (item.kind === "fork") break;
    ops.push(item.op);
  }
  return ops;
}

/** Short description of operations, for failure messages. */
export function describeOps(ops: Op[]): string {
  if (ops.length === 0) return "no operations";
  return ops.map((op) => `${op.author.slice(0, 6)}#${op.seq}`).join(", ");
}

/** Splits operations into `bulk` frame texts of at most `limit` UTF-8 bytes. */
export function bulkFrames(ops: Op[], limit: number, asStrings = false): string[] {
  const frames: string[] = [];
  const head = '{"type":"bulk","ops":[';
  let parts: string[] = [];
  let size = head.length + 2;
  for (const op of ops) {
    const text = asStrings ? JSON.stringify(JSON.stringify(op)) : JSON.stringify(op);
    const bytes = new TextEncoder().encode(text).length + 1;
    if (parts.length > 0 && size + bytes > limit) {
      frames.push(head + parts.join(",") + "]}");
      parts = [];
      size = head.length + 2;
    }
    parts.push(text);
    size += bytes;
  }
  if (parts.length > 0) frames.push(head + parts.join(",") + "]}");
  return frames;
}
