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

/** The host part of a `Host` header (`name`, `name:port`, `[v6]:port`), lower case (pure). */
export function hostName(header: string): string {
  const text = header.trim().toLowerCase();
  if (text.startsWith("[")) {
    const end = text.indexOf("]");
    return end > 0 ? text.slice(1, end) : text;
  }
  const colon = text.lastIndexOf(":");
  return colon >= 0 && text.indexOf(":") === colon ? text.slice(0, colon) : text;
}

function isIpLiteral(host: string): boolean {
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(host) || (host.includes(":") && /^[0-9a-f:.]+$/.test(host));
}

/**
 * Whether a request's `Host` names this node (pure). DNS rebinding points an
 * attacker's domain name at 127.0.0.1, so the browser sends that name: only
 * loopback names (`localhost`, `*.localhost`), IP literals and the names in
 * `publicHosts` are accepted. A request without `Host` (HTTP/1.0) passes.
 */
export function hostAllowed(header: string | null, publicHosts: readonly string[]): boolean {
  if (header === null) return true;
  const host = hostName(header);
  if (host === "localhost" || host.endsWith(".localhost") || isIpLiteral(host)) return true;
  return publicHosts.some((name) => name.toLowerCase() === host);
}

/**
 * Whether an `Origin` header is this node's own (pure): absent (same-origin
 * GET or not a browser), or naming the same host and port as `Host`, with an
 * allowed host name.
 */
export function originAllowed(
  origin: string | null,
  host: string | null,
  publicHosts: readonly string[],
): boolean {
  if (origin === null) return true;
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return false; // Includes "null", sent by sandboxed and file: pages.
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") return false;
  return host !== null && url.host === host.trim().toLowerCase() &&
    hostAllowed(url.host, publicHosts);
}
