/**
 * HTTP adapter for pre-upgrade authentication (`preauth.ts`): the challenge
 * endpoint, the check a node runs in its `Deno.serve` handler before
 * `Deno.upgradeWebSocket`, and the client helper that fetches a challenge and
 * produces the upgrade URL and headers. Web-standard `Request`, `Response`
 * and `fetch` only.
 *
 * Wiring on the accepting side (inside the handler for the sync path):
 *
 * ```ts ignore
 * if (isChallengeRequest(request, SYNC_PATH)) return challengeResponse(preauth);
 * // Check the upgrade headers first: a token is redeemed by the check.
 * const admission = limiter.tryAdmit(address); // failed proofs count against the address
 * if (!admission.ok) return new Response(`${admission.reason}\n`, { status: 429 });
 * const check = checkUpgradeRequest(request, preauth);
 * // A pre-upgrade check ends here; an in-band handshake keeps its slot until it ends.
 * if (check.kind !== "absent") admission.release(check.kind === "accepted");
 * if (check.kind === "refused") return refusalResponse(check.refusal);
 * const { socket, response } = Deno.upgradeWebSocket(request);
 * if (check.kind === "accepted") {
 *   socket.onopen = () => socket.send(check.welcome); // then run the sync session
 * } // else ("absent", only with allowInBand): the in-band handshake, under the admission limits
 * return response;
 * ```
 *
 * @example The client side
 * ```ts ignore
 * const client = new PreauthClient({ identity, hubKey });
 * const upgrade = await preauthenticate("ws://127.0.0.1:8080/crdt-sync", client);
 * if ("close" in upgrade) throw new Error(upgrade.close.reason);
 * if ("inBand" in upgrade) return; // an older server: use ClientHandshake
 * const socket = new WebSocket(upgrade.url, { headers: upgrade.headers });
 * socket.onmessage = (event) => client.receive(event.data); // the first frame: welcome
 * ```
 * @module
 */
import { CloseCode } from "../protocol/close_codes.ts";
import type { PreauthCheck, PreauthClient, PreauthRefusal, PreauthServer } from "./preauth.ts";
import { type HandshakeClose, MAX_HANDSHAKE_FRAME_BYTES } from "./proof.ts";

/** Request header that carries the credential (Deno's `WebSocket` can set it). */
export const PREAUTH_HEADER = "x-huskies-auth";

/** Query parameter that carries the credential for clients that cannot set headers (browsers). */
export const PREAUTH_QUERY_PARAM = "huskies-auth";

/** Response header of a refusal: the matching close code. */
export const CLOSE_CODE_HEADER = "x-huskies-close";

/** What the challenge path adds to the sync path. */
export const CHALLENGE_PATH_SUFFIX = "/challenge";

/** Whether `request` is `GET <syncPath>/challenge`. */
export function isChallengeRequest(request: Request, syncPath: string): boolean {
  return request.method === "GET" &&
    new URL(request.url).pathname === syncPath + CHALLENGE_PATH_SUFFIX;
}

/** The answer to `GET …/challenge`: a fresh challenge as JSON, never cached. */
export function challengeResponse(server: PreauthServer): Response {
  return new Response(JSON.stringify(server.issue()), {
    headers: { "content-type": "application/json", "cache-control": "no-store" },
  });
}

/**
 * Checks an upgrade request's credential: from the `x-huskies-auth` header
 * or, when absent, the `huskies-auth` query parameter. Call it before
 * `Deno.upgradeWebSocket`.
 * @throws whatever the authoriser throws; answer 500 then.
 */
export function checkUpgradeRequest(request: Request, server: PreauthServer): PreauthCheck {
  const header = request.headers.get(PREAUTH_HEADER);
  if (header !== null) return server.check(header.trim());
  const query = new URL(request.url).searchParams.get(PREAUTH_QUERY_PARAM);
  return query === null ? server.check(undefined) : server.check(query, true);
}

/** The HTTP answer to a refused credential: status, fixed reason, close code header. */
export function refusalResponse(refusal: PreauthRefusal): Response {
  const headers: Record<string, string> = {
    "content-type": "text/plain; charset=utf-8",
    [CLOSE_CODE_HEADER]: String(refusal.code),
  };
  if (refusal.status === 429) headers["retry-after"] = "5";
  return new Response(`${refusal.reason}\n`, { status: refusal.status, headers });
}

/**
 * The close a client reports for an upgrade answered with HTTP `status`
 * instead of 101 (Deno's `WebSocket` shows only the status: "Invalid status
 * code: 403"). 428 means: fetch a new challenge and try again.
 */
export function closeForUpgradeStatus(status: number): HandshakeClose {
  switch (status) {
    case 400:
      return { code: CloseCode.PROTOCOL_ERROR, reason: "credential refused as malformed" };
    case 401:
      return { code: CloseCode.BAD_PROOF, reason: "bad proof" };
    case 403:
      return { code: CloseCode.NOT_TRUSTED, reason: "key not trusted or token refused" };
    case 428:
      return { code: CloseCode.HANDSHAKE_TIMEOUT, reason: "challenge expired" };
    case 429:
      return { code: CloseCode.RATE_LIMITED, reason: "too many attempts" };
    default:
      return { code: CloseCode.INTERNAL_ERROR, reason: `upgrade refused with HTTP ${status}` };
  }
}

/** The HTTP(S) URL of the challenge endpoint for a `ws:`/`wss:` sync URL. */
export function challengeUrl(syncUrl: string | URL): URL {
  const url = new URL(syncUrl);
  if (url.protocol === "ws:") url.protocol = "http:";
  else if (url.protocol === "wss:") url.protocol = "https:";
  url.pathname = url.pathname.replace(/\/$/, "") + CHALLENGE_PATH_SUFFIX;
  url.search = "";
  url.hash = "";
  return url;
}

/** Options for {@link preauthenticate}. */
export interface PreauthenticateOptions {
  /** `header` (Deno) or `query` (browsers; refuses tokens). @default {"header"} */
  form?: "header" | "query";
  /** The fetch to use. @default {globalThis.fetch} */
  fetch?: typeof fetch;
  /** Aborts the challenge request. */
  signal?: AbortSignal;
}

/** Result of {@link preauthenticate}. */
export type PreauthUpgrade =
  /** Open `new WebSocket(url, { headers })`; its first frame goes to `client.receive()`. */
  | { url: string; headers: Record<string, string> }
  /** The server has no challenge endpoint (HTTP 404): use the in-band handshake. */
  | { inBand: true }
  /** This attempt ends with this close (for example a pinned hub key mismatch, 4406). */
  | { close: HandshakeClose };

/**
 * Fetches a fresh challenge for `syncUrl` and returns the URL and headers of
 * the upgrade request that carries `client`'s proof, `inBand` when the server
 * does not support pre-authentication, or the close that ends the attempt.
 * @throws the fetch's network errors.
 */
export async function preauthenticate(
  syncUrl: string | URL,
  client: PreauthClient,
  options: PreauthenticateOptions = {},
): Promise<PreauthUpgrade> {
  const form = options.form ?? "header";
  if (form === "query" && client.hasToken) {
    throw new TypeError("Cannot pre-authenticate: a token may only be sent in the header form");
  }
  const doFetch = options.fetch ?? fetch;
  const response = await doFetch(challengeUrl(syncUrl), {
    signal: options.signal,
    headers: { accept: "application/json" },
  });
  if (!response.ok) {
    await response.body?.cancel();
    if (response.status === 404) return { inBand: true };
    return { close: closeForUpgradeStatus(response.status) };
  }
  const body = await readBounded(response, MAX_HANDSHAKE_FRAME_BYTES);
  const proof = body === undefined
    ? { close: { code: CloseCode.TOO_BIG, reason: "handshake frame too big" } }
    : client.prove(body);
  if ("close" in proof) return proof;
  const url = new URL(syncUrl);
  if (form === "query") {
    url.searchParams.set(PREAUTH_QUERY_PARAM, proof.credential);
    return { url: url.href, headers: {} };
  }
  return { url: url.href, headers: { [PREAUTH_HEADER]: proof.credential } };
}

/** The body as text, or `undefined` once it exceeds `limit` bytes (the rest is not read). */
async function readBounded(response: Response, limit: number): Promise<string | undefined> {
  if (!response.body) return "";
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of response.body) {
    size += chunk.length;
    if (size > limit) {
      await response.body.cancel().catch(() => {});
      return undefined;
    }
    chunks.push(chunk);
  }
  const all = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) (all.set(chunk, at), at += chunk.length);
  return new TextDecoder().decode(all);
}
