/**
 * Hex and byte helpers shared by every module, plus the checks that guard
 * hex-encoded identifiers at the boundary.
 * @module
 */

/** Lowercase hex digits only (the length is checked first, which is cheaper than a counted regex). */
const LOWER_HEX = /^[0-9a-f]*$/;

/** Lowercase hex of `bytes`. */
export function toHex(bytes: Uint8Array): string {
  return bytes.toHex();
}

/** Bytes of a lowercase or uppercase hex string; throws `SyntaxError` on bad input. */
export function fromHex(hex: string): Uint8Array {
  return Uint8Array.fromHex(hex);
}

/** True when `value` is 64 lowercase hex characters (a node id or operation id). */
export function isHex64(value: unknown): value is string {
  return typeof value === "string" && value.length === 64 && LOWER_HEX.test(value);
}

/** True when `value` is 128 lowercase hex characters (an Ed25519 signature). */
export function isHex128(value: unknown): value is string {
  return typeof value === "string" && value.length === 128 && LOWER_HEX.test(value);
}

/** Concatenates byte arrays. */
export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  let length = 0;
  for (const part of parts) length += part.length;
  const out = new Uint8Array(length);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** UTF-8 bytes of a string. */
export function utf8(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}

const utf8Encoder = new TextEncoder();
/** Scratch space for {@link utf8Length}: room for the UTF-8 of any 64 Ki code units. */
const scratch = new Uint8Array(3 * 65536);

/**
 * UTF-8 byte length of a string as `TextEncoder` (and so a WebSocket text
 * frame) encodes it: a lone surrogate counts as U+FFFD, 3 bytes. Counted by
 * the runtime's encoder into a fixed scratch buffer, 64 Ki code units at a
 * time (a surrogate pair is never split), without allocating.
 */
export function utf8Length(text: string): number {
  if (text.length <= 65536) return utf8Encoder.encodeInto(text, scratch).written;
  let bytes = 0;
  for (let start = 0; start < text.length;) {
    let end = Math.min(text.length, start + 65536);
    const last = text.charCodeAt(end - 1);
    if (end < text.length && last >= 0xd800 && last <= 0xdbff) end--;
    bytes += utf8Encoder.encodeInto(text.slice(start, end), scratch).written;
    start = end;
  }
  return bytes;
}

/** Bytes of a WebSocket frame: its UTF-8 length when text. */
export function frameLength(data: string | Uint8Array): number {
  return typeof data === "string" ? utf8Length(data) : data.byteLength;
}
