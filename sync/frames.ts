/**
 * The sync frames exchanged after the handshake: pure encoding, decoding and
 * chunking, no sockets. PROTOCOL.md describes each frame.
 * @module
 */
import { type ClockHeads, parseClock, parseHeads, type VectorClock } from "../crdt/clock.ts";
import { frameLength, utf8Length } from "../protocol/bytes.ts";
import { encodedSize, encodeOperation, type Operation, parseOperation } from "../crdt/operation.ts";
import type { ForkProof } from "../crdt/store.ts";
import { ObjectSlot } from "../crdt/object_slot.ts";
import { COMPACT_BULK_FORM, CompactFormError, decodeCompactBulk } from "./compact_bulk.ts";

/** Version of the binary live-operation envelope `{"v":1,"op":{...}}`. */
export const LIVE_ENVELOPE_VERSION = 1;

/**
 * A decoded `clock` frame; `compactBulk`: its `accept` lists the compact bulk
 * form (§6.9), so the catch-up answering it is sent in `cbulk` frames.
 */
export type ClockFrame = {
  type: "clock";
  clock: VectorClock;
  heads: ClockHeads;
  compactBulk: boolean;
};

/** Most names a clock's `accept` may list, and the longest name (§6.9). */
const MAX_ACCEPT = { names: 16, length: 64 } as const;

/** The forms this node lists in its clocks' `accept` (unless told not to). */
const ACCEPTED_FORMS: readonly string[] = [COMPACT_BULK_FORM];

/** A decoded text frame. */
export type SyncFrame =
  | ClockFrame
  /** `invalid`: elements that are not valid operations (dropped and counted, §6.4). */
  /** `compact`: it came as a `cbulk` frame (§6.9), rebuilt into the same operations. */
  | { type: "bulk"; ops: Operation[]; invalid: number; legacyStrings: boolean; compact?: true }
  | { type: "ready" }
  /** `proof` is absent when one of its operations is not valid (counted as invalid). */
  | { type: "fork"; proof?: ForkProof }
  | { type: "ping"; clock?: VectorClock }
  | { type: "pong" }
  | { type: "unknown"; name: string };

/** A frame that breaks the protocol; the session closes with 1002 (the message is fixed text). */
export class ProtocolError extends Error {
  /** Creates the error; `message` names the problem. */
  constructor(message: string) {
    super(message);
    this.name = "ProtocolError";
  }
}

function parseJsonObject(text: string, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new ProtocolError(`${what} is not valid JSON`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new ProtocolError(`${what} is not a JSON object`);
  }
  return value as Record<string, unknown>;
}

/**
 * An element of `bulk.ops` (or a live or fork operation): `undefined` when it
 * is not a valid operation (its shapes, the 64 KiB limit), which the session
 * drops and counts; an element that is neither an object nor a string breaks
 * the frame grammar.
 */
function parseOp(value: unknown): Operation | undefined {
  if (typeof value !== "string" && (typeof value !== "object" || value === null)) {
    throw new ProtocolError("operation is neither an object nor a string");
  }
  try {
    return parseOperation(typeof value === "string" ? JSON.parse(value) : value);
  } catch {
    return undefined;
  }
}

/** A clock's `accept` list: absent reads as empty; anything but a short list of names is refused. */
function parseAccept(value: unknown): readonly string[] {
  if (value === undefined) return [];
  if (
    !Array.isArray(value) || value.length > MAX_ACCEPT.names ||
    !value.every((name) => typeof name === "string" && name.length <= MAX_ACCEPT.length)
  ) throw new ProtocolError("clock.accept is not a list of form names");
  return value;
}

/** Decodes a text frame. Unknown `type` values decode as `unknown` (to be ignored). */
export function decodeTextFrame(text: string): SyncFrame {
  const frame = parseJsonObject(text, "text frame");
  try {
    switch (frame.type) {
      case "clock":
        return {
          type: "clock",
          clock: parseClock(frame.clock),
          heads: frame.heads === undefined ? {} : parseHeads(frame.heads),
          compactBulk: parseAccept(frame.accept).includes(COMPACT_BULK_FORM),
        };
      case "bulk": {
        if (!Array.isArray(frame.ops)) throw new ProtocolError("bulk.ops is not an array");
        const legacyStrings = frame.ops.length > 0 && typeof frame.ops[0] === "string";
        const ops: Operation[] = [];
        for (const element of frame.ops) {
          const op = parseOp(element);
          if (op) ops.push(op);
        }
        return { type: "bulk", ops, invalid: frame.ops.length - ops.length, legacyStrings };
      }
      case "cbulk":
        return {
          type: "bulk",
          ...decodeCompactBulk(frame.runs),
          legacyStrings: false,
          compact: true,
        };
      case "ping":
        return frame.clock === undefined
          ? { type: "ping" }
          : { type: "ping", clock: parseClock(frame.clock) };
      case "ready":
      case "pong":
        return { type: frame.type };
      case "fork": {
        const p = frame.proof as Record<string, unknown> | null;
        if (typeof p !== "object" || p === null) throw new ProtocolError("fork.proof is missing");
        const a = parseOp(p.a);
        const b = parseOp(p.b);
        if (!a || !b) return { type: "fork" };
        return { type: "fork", proof: { author: a.author, seq: a.seq, a, b } };
      }
      default:
        return { type: "unknown", name: String(frame.type) };
    }
  } catch (error) {
    if (error instanceof ProtocolError) throw error;
    if (error instanceof CompactFormError) throw new ProtocolError(error.message);
    // The parser's message may quote the peer's data: close with a fixed description.
    throw new ProtocolError(`malformed ${frame.type as string} frame`);
  }
}

const decoder = new TextDecoder("utf-8", { fatal: true });

/**
 * Decodes a binary live-operation frame: its operation, or `undefined` when
 * that is not a valid operation (dropped and counted). An unknown envelope
 * version is refused.
 */
export function decodeBinaryFrame(bytes: Uint8Array): Operation | undefined {
  let text: string;
  try {
    text = decoder.decode(bytes);
  } catch {
    throw new ProtocolError("binary frame is not UTF-8");
  }
  const envelope = parseJsonObject(text, "binary frame");
  if (envelope.v !== LIVE_ENVELOPE_VERSION) {
    throw new ProtocolError("unsupported live envelope version");
  }
  return parseOp(envelope.op);
}

/**
 * A frame from the peer, decoded before it is handled (so that its
 * signatures can be checked meanwhile, see `session_runner.ts`). `size` is
 * its length in bytes; a frame over the limit is not decoded, and a decoding
 * error is kept for when the frame's turn comes.
 */
export type InboundFrame =
  | { kind: "text"; size: number; frame: SyncFrame }
  | { kind: "binary"; size: number; op: Operation | undefined }
  | { kind: "too-big"; size: number }
  | { kind: "broken"; size: number; error: unknown };

/** Decodes a frame from the peer of at most `maxFrameBytes`. */
export function decodeInbound(data: string | Uint8Array, maxFrameBytes: number): InboundFrame {
  const size = frameLength(data);
  if (size > maxFrameBytes) return { kind: "too-big", size };
  try {
    return typeof data === "string"
      ? { kind: "text", size, frame: decodeTextFrame(data) }
      : { kind: "binary", size, op: decodeBinaryFrame(data) };
  } catch (error) {
    return { kind: "broken", size, error };
  }
}

/**
 * The operations whose signatures handling `inbound` checks, and whether it
 * amortises them over chain runs (bulk frames do, PROTOCOL.md §2.5): none but a bulk's
 * are worth checking ahead.
 */
export function inboundOps(
  inbound: InboundFrame,
): { ops: readonly Operation[]; amortise: boolean } {
  return inbound.kind === "text" && inbound.frame.type === "bulk"
    ? { ops: inbound.frame.ops, amortise: true }
    : { ops: [], amortise: false };
}

/** Each operation's binary live frame, once encoded. */
const binaryCache = new ObjectSlot<Uint8Array>("huskies-sync.binaryFrame");

/** Encodes one operation as a binary live frame (cached per operation; do not mutate). */
export function encodeBinaryFrame(op: Operation): Uint8Array {
  let bytes = binaryCache.get(op);
  if (bytes === undefined) {
    bytes = new TextEncoder().encode(
      `{"v":${LIVE_ENVELOPE_VERSION},"op":${encodeOperation(op)}}`,
    );
    binaryCache.set(op, bytes);
  }
  return bytes;
}

/**
 * Encodes a clock frame, with heads and, with `compactBulk`, the forms we
 * accept (§6.9); older peers ignore both.
 */
export function encodeClockFrame(
  clock: VectorClock,
  heads: ClockHeads,
  compactBulk = true,
): string {
  return JSON.stringify(
    compactBulk
      ? { type: "clock", clock, heads, accept: ACCEPTED_FORMS }
      : { type: "clock", clock, heads },
  );
}

/** The `ready` frame. */
export const READY_FRAME = '{"type":"ready"}';
/** The heartbeat request (as a legacy peer sends it: without a clock). */
export const PING_FRAME = '{"type":"ping"}';

/** A heartbeat carrying the sender's clock, so the peer knows what it holds now. */
export function encodePingFrame(clock: VectorClock): string {
  return JSON.stringify({ type: "ping", clock });
}

/**
 * The heartbeat to send: with `clock` (none toward or as a legacy peer), or
 * without one when the clock is too big for a frame.
 */
export function pingFrame(clock: VectorClock | undefined, maxFrameBytes: number): string {
  if (clock === undefined) return PING_FRAME;
  const frame = encodePingFrame(clock);
  return utf8Length(frame) <= maxFrameBytes ? frame : PING_FRAME;
}

/** The heartbeat answer. */
export const PONG_FRAME = '{"type":"pong"}';

/** Encodes a fork-proof frame. */
export function encodeForkFrame(proof: ForkProof): string {
  return `{"type":"fork","proof":{"a":${encodeOperation(proof.a)},"b":${
    encodeOperation(proof.b)
  }}}`;
}

/** A frame ready for the transport (text or binary) with its size on the wire. */
export interface OutFrame {
  /** The frame. */
  readonly data: string | Uint8Array;
  /** Its bytes on the wire (UTF-8 for text), counted when it was built. */
  readonly bytes: number;
}

const liveCache = new WeakMap<readonly Operation[], { maxBytes: number; frames: OutFrame[] }>();

/**
 * The frames that carry live operations: one operation as a binary frame,
 * more as `bulk` frames of at most `maxBytes`, each with its size. Cached per
 * `ops` array, so a hub that hands the same batch to every peer encodes it
 * once and every peer sends the same frames (mutate neither `ops` nor the
 * result).
 */
export function liveFrames(ops: readonly Operation[], maxBytes: number): readonly OutFrame[] {
  const cached = liveCache.get(ops);
  if (cached !== undefined && cached.maxBytes === maxBytes) return cached.frames;
  let frames: OutFrame[];
  if (ops.length === 1) {
    const data = encodeBinaryFrame(ops[0]);
    frames = [{ data, bytes: data.byteLength }];
  } else frames = [...sizedBulkFrames(ops, maxBytes)];
  liveCache.set(ops, { maxBytes, frames });
  return frames;
}

const BULK_HEAD = '{"type":"bulk","ops":[';
const BULK_TAIL = "]}";

/**
 * Splits operations into `bulk` frames of at most `maxBytes` bytes each (an
 * operation is never split; one larger than the limit cannot occur because
 * operations are capped far below it), each with its size, summed from the
 * operations' cached sizes. With `legacyStrings`, each element is the
 * operation's JSON as a string, as legacy peers send them.
 */
export function* sizedBulkFrames(
  ops: readonly Operation[],
  maxBytes: number,
  legacyStrings = false,
): Generator<OutFrame & { readonly data: string }> {
  const empty = BULK_HEAD.length + BULK_TAIL.length;
  let parts: string[] = [];
  let size = empty;
  for (const op of ops) {
    let encoded = encodeOperation(op);
    let bytes = encodedSize(op);
    if (legacyStrings) {
      encoded = JSON.stringify(encoded);
      bytes = utf8Length(encoded);
    }
    if (parts.length > 0 && size + bytes + 1 > maxBytes) {
      yield { data: BULK_HEAD + parts.join(",") + BULK_TAIL, bytes: size };
      parts = [];
      size = empty;
    }
    size += bytes + (parts.length > 0 ? 1 : 0);
    parts.push(encoded);
  }
  if (parts.length > 0) yield { data: BULK_HEAD + parts.join(",") + BULK_TAIL, bytes: size };
}

/** {@link sizedBulkFrames} without the sizes. */
export function* bulkFrames(
  ops: readonly Operation[],
  maxBytes: number,
  legacyStrings = false,
): Generator<string> {
  for (const frame of sizedBulkFrames(ops, maxBytes, legacyStrings)) yield frame.data;
}
