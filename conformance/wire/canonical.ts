/**
 * Canonical JSON (PROTOCOL.md §2.3): members sorted by key in UTF-16 code
 * unit order, no whitespace, strings escaped as JSON.stringify does, safe
 * integers only.
 * @module
 */

/** Canonical JSON text of `value`; throws on anything the protocol cannot hash. */
export function canonicalJson(value: unknown): string {
  if (value === null) return "null";
  switch (typeof value) {
    case "boolean":
      return value ? "true" : "false";
    case "string":
      return JSON.stringify(value);
    case "number":
      if (!Number.isSafeInteger(value) || Object.is(value, -0)) {
        throw new TypeError(`Cannot encode canonically: ${value} is not a safe integer`);
      }
      return String(value);
    case "object": {
      if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
      const record = value as Record<string, unknown>;
      const keys = Object.keys(record).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
      return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(record[k])}`).join(",")}}`;
    }
    default:
      throw new TypeError(`Cannot encode canonically: ${typeof value} values are not JSON`);
  }
}
