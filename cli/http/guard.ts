/**
 * Who may use an HTTP route: loopback checks, the admin bearer token, and
 * URL redaction for display. All pure.
 * @module
 */
import { Buffer } from "node:buffer";
import { createHash, timingSafeEqual } from "node:crypto";

/**
 * True for loopback addresses: 127.0.0.0/8, ::1, and IPv4-mapped 127.x (pure).
 */
export function isLoopback(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, "").toLowerCase();
  if (host === "::1" || host === "0:0:0:0:0:0:0:1") return true;
  const v4 = host.startsWith("::ffff:") ? host.slice(7) : host;
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(v4);
}

/** Compares a presented bearer secret with the expected one in constant time (pure). */
export function bearerMatches(header: string | null, expected: string): boolean {
  const presented = /^Bearer\s+(\S+)\s*$/i.exec(header ?? "")?.[1] ?? "";
  const a = createHash("sha256").update(presented).digest();
  const b = createHash("sha256").update(expected).digest();
  return timingSafeEqual(Buffer.from(a), Buffer.from(b)) && presented.length > 0;
}

/** Removes user name and password from a URL for display (pure). */
export function redactUrl(text: string): string {
  try {
    const url = new URL(text);
    if (!url.username && !url.password) return text;
    url.username = "";
    url.password = "";
    return url.toString();
  } catch {
    return text;
  }
}
