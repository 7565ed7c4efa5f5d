/**
 * A raw HTTP/1.1 request over TCP, for upgrade requests a WebSocket API
 * cannot send (malformed ones) or whose refusal status it hides (429).
 * @module
 */

import { random } from "./bytes.ts";

/** The status line and headers of a response. */
export interface RawResponse {
  /** HTTP status code. */
  status: number;
  /** Header names in lowercase. */
  headers: Map<string, string>;
}

/** Headers of a well-formed WebSocket upgrade request. */
export function upgradeHeaders(): Record<string, string> {
  return {
    Upgrade: "websocket",
    Connection: "Upgrade",
    "Sec-WebSocket-Key": btoa(String.fromCharCode(...random(16))),
    "Sec-WebSocket-Version": "13",
  };
}

/** Sends `GET <path>` of a `ws://` or `wss://` URL with `headers`; reads the response head. */
export async function rawGet(
  url: string,
  headers: Record<string, string>,
  timeoutMs: number,
): Promise<RawResponse> {
  const target = new URL(url);
  const secure = target.protocol === "wss:";
  const port = Number(target.port || (secure ? 443 : 80));
  const hostname = target.hostname.replace(/^\[|\]$/g, "");
  const conn = secure
    ? await Deno.connectTls({ hostname, port })
    : await Deno.connect({ hostname, port });
  const timer = setTimeout(() => conn.close(), timeoutMs);
  try {
    const lines = [`GET ${target.pathname}${target.search} HTTP/1.1`, `Host: ${target.host}`];
    for (const [name, value] of Object.entries(headers)) lines.push(`${name}: ${value}`);
    await conn.write(new TextEncoder().encode(lines.join("\r\n") + "\r\n\r\n"));
    let text = "";
    const buffer = new Uint8Array(4096);
    while (!text.includes("\r\n\r\n")) {
      const n = await conn.read(buffer);
      if (n === null) break;
      text += new TextDecoder().decode(buffer.subarray(0, n));
      if (text.length > 65536) break;
    }
    const [head] = text.split("\r\n\r\n");
    const [statusLine, ...headerLines] = head.split("\r\n");
    const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1] ?? 0);
    const parsed = new Map<string, string>();
    for (const line of headerLines) {
      const colon = line.indexOf(":");
      if (colon > 0) {
        parsed.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
      }
    }
    return { status, headers: parsed };
  } finally {
    clearTimeout(timer);
    try {
      conn.close();
    } catch {
      // Closed by the timer.
    }
  }
}
