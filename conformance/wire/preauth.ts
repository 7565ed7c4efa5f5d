/**
 * Authentication before the upgrade (PROTOCOL.md §3.10), written from the
 * spec: the challenge request, the credential, and an upgrade that carries
 * it in the `x-huskies-auth` header.
 * @module
 */

import { randomHex } from "./bytes.ts";
import type { KeyPair } from "./ed25519.ts";
import { PREAUTH_DOMAIN, signTranscript, type TranscriptParts } from "./handshake.ts";
import { type RawResponse, upgradeHeaders } from "./http.ts";

/** The request header that carries the credential. */
export const CREDENTIAL_HEADER = "x-huskies-auth";
/** The refusal's close code header. */
export const CLOSE_HEADER = "x-huskies-close";

/** The `http(s)://…/crdt-sync/challenge` URL of a `ws(s)://…/crdt-sync` URL. */
export function challengeUrl(syncUrl: string): string {
  const url = new URL(syncUrl);
  url.protocol = url.protocol === "wss:" ? "https:" : "http:";
  url.pathname = url.pathname.replace(/\/$/, "") + "/challenge";
  url.search = "";
  return url.href;
}

/** `GET …/challenge`: status, headers and the body parsed as JSON (undefined if it is not). */
export async function fetchChallenge(
  syncUrl: string,
  timeoutMs: number,
): Promise<{ status: number; headers: Headers; body: unknown }> {
  const response = await fetch(challengeUrl(syncUrl), { signal: AbortSignal.timeout(timeoutMs) });
  const text = await response.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  return { status: response.status, headers: response.headers, body };
}

/** A credential (§3.10 step 2) and the transcript parts it binds. */
export interface Credential {
  /** `hpa1.<key>.<server challenge>.<client challenge>.<sig>[.<token>]`. */
  text: string;
  /** What both signatures cover. */
  parts: TranscriptParts;
}

/** The credential of `key` for a server's challenge (and key). */
export function credential(
  key: KeyPair,
  serverChallenge: string,
  serverKey: string,
  options: { clientChallenge?: string; token?: string } = {},
): Credential {
  const parts: TranscriptParts = {
    serverChallenge,
    clientChallenge: options.clientChallenge ?? randomHex(32),
    serverKey,
    clientKey: key.id,
  };
  const sig = signTranscript(key, "client", parts, PREAUTH_DOMAIN);
  const fields = ["hpa1", key.id, serverChallenge, parts.clientChallenge, sig];
  if (options.token !== undefined) fields.push(options.token);
  return { text: fields.join("."), parts };
}

/** Upgrade headers carrying `credential` (for {@link rawGet} or `new WebSocket(url, { headers })`). */
export function credentialHeaders(credential: string): Record<string, string> {
  return { ...upgradeHeaders(), [CREDENTIAL_HEADER]: credential };
}

/** The close code a refusal names in its `x-huskies-close` header (NaN when absent). */
export function refusalCode(response: RawResponse): number {
  return Number(response.headers.get(CLOSE_HEADER));
}
