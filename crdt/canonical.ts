/**
 * The canonical JSON encoding that operation ids and state hashes are computed
 * over. It is JSON with object keys sorted by UTF-16 code units, no
 * whitespace, strings escaped exactly as ECMAScript `JSON.stringify` does, and
 * numbers restricted to safe integers (so every runtime prints them the same).
 * PROTOCOL.md documents it for other implementations.
 * @module
 */

/** A JSON value whose numbers are all safe integers. */
export type JsonValue =
  | null
  | boolean
  | number
  | string
  | JsonValue[]
  | { [key: string]: JsonValue };

/** Limits applied when checking a JSON value that came from outside. */
export interface JsonLimits {
  /** Deepest nesting of arrays and objects. @default 16 */
  maxDepth?: number;
  /** Longest string, in UTF-16 code units. @default 65536 */
  maxStringLength?: number;
  /** Most entries in one array or object. @default 1024 */
  maxEntries?: number;
}

/**
 * Checks that `value` is a JSON value this protocol can encode canonically.
 * Returns `undefined` when it is, or a message naming the problem.
 */
export function checkJsonValue(
  value: unknown,
  limits: JsonLimits = {},
  where = "value",
): string | undefined {
  const maxDepth = limits.maxDepth ?? 16;
  const maxString = limits.maxStringLength ?? 65536;
  const maxEntries = limits.maxEntries ?? 1024;
  const visit = (v: unknown, depth: number, at: string): string | undefined => {
    if (v === null || typeof v === "boolean") return undefined;
    if (typeof v === "number") {
      return Number.isSafeInteger(v) && !Object.is(v, -0)
        ? undefined
        : `${at} must be a safe integer, got ${v}`;
    }
    if (typeof v === "string") {
      return v.length <= maxString ? undefined : `${at} is longer than ${maxString} characters`;
    }
    if (depth >= maxDepth) return `${at} is nested deeper than ${maxDepth} levels`;
    if (Array.isArray(v)) {
      if (v.length > maxEntries) return `${at} has more than ${maxEntries} entries`;
      for (let i = 0; i < v.length; i++) {
        const problem = visit(v[i], depth + 1, `${at}[${i}]`);
        if (problem) return problem;
      }
      return undefined;
    }
    if (typeof v === "object" && Object.getPrototypeOf(v) === Object.prototype) {
      const keys = Object.keys(v);
      if (keys.length > maxEntries) return `${at} has more than ${maxEntries} keys`;
      for (const key of keys) {
        if (key.length > maxString) return `${at} has a key longer than ${maxString} characters`;
        const problem = visit((v as Record<string, unknown>)[key], depth + 1, `${at}.${key}`);
        if (problem) return problem;
      }
      return undefined;
    }
    return `${at} is not a JSON value`;
  };
  return visit(value, 0, where);
}

/**
 * Encodes a JSON value canonically: sorted keys, no whitespace.
 * The caller must have checked the value with {@link checkJsonValue}.
 *
 * @example
 * ```ts
 * import { canonicalJson } from "./canonical.ts";
 * canonicalJson({ b: 1, a: [true, null] }); // '{"a":[true,null],"b":1}'
 * ```
 */
export function canonicalJson(value: JsonValue): string {
  // Fast path: when every object's own key order is already sorted, the native
  // serializer writes exactly the canonical form. (Integer-like keys, which
  // engines enumerate first, fail the check and take the slow path.)
  return keysSorted(value) ? JSON.stringify(value) : sortedJson(value);
}

/**
 * Returns `value` with every object's keys in canonical order (a copy only
 * where needed), so that later canonical encodings take the fast path.
 */
export function withSortedKeys<T extends JsonValue>(value: T): T {
  return keysSorted(value) ? value : JSON.parse(sortedJson(value));
}

/**
 * True when every object in `value` already lists its keys in canonical
 * order, so that `JSON.stringify(value)` is its canonical encoding.
 */
export function keysSorted(value: JsonValue): boolean {
  if (value === null || typeof value !== "object") return true;
  if (Array.isArray(value)) {
    for (const item of value) if (!keysSorted(item)) return false;
    return true;
  }
  let previous: string | undefined;
  for (const key in value) {
    if (previous !== undefined && !(previous < key)) return false;
    if (!keysSorted(value[key])) return false;
    previous = key;
  }
  return true;
}

function sortedJson(value: JsonValue): string {
  if (value === null || typeof value !== "object") return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(sortedJson).join(",")}]`;
  const keys = Object.keys(value).sort();
  let out = "{";
  for (let i = 0; i < keys.length; i++) {
    if (i > 0) out += ",";
    out += JSON.stringify(keys[i]) + ":" + sortedJson(value[keys[i]]);
  }
  return out + "}";
}
