/**
 * Hex and byte helpers shared by every module, plus the checks that guard
 * hex-encoded identifiers at the boundary.
 * @module
 */

const HEX64 = /^[0-9a-f]{64}$/;
const HEX128 = /^[0-9a-f]{128}$/;

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
  return typeof value === "string" && HEX64.test(value);
}

/** True when `value` is 128 lowercase hex characters (an Ed25519 signature). */
export function isHex128(value: unknown): value is string {
  return typeof value === "string" && HEX128.test(value);
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

// deno-lint-ignore no-control-regex
const ASCII = /^[\x00-\x7f]*$/;

/**
 * UTF-8 byte length of a string, without encoding it. ASCII text (JSON
 * frames nearly always are) is checked by the regular-expression engine and
 * counts its length; only other text is counted character by character.
 */
export function utf8Length(text: string): number {
  if (ASCII.test(text)) return text.length;
  let bytes = text.length;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x80) continue;
    if (code < 0x800) bytes += 1;
    else if (code >= 0xd800 && code <= 0xdbff && i + 1 < text.length) {
      bytes += 2; // a surrogate pair: 2 units, 4 bytes
      i++;
    } else bytes += 2;
  }
  return bytes;
}
