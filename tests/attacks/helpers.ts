/**
 * Helpers for the attack suite (`deno task attacks`): real nodes on real
 * sockets, attacked by hand-written clients. Every attack is a test that
 * failed on the code before its fix.
 * @module
 */
import { PreauthClient } from "../../auth/preauth.ts";
import { preauthenticate } from "../../auth/preauth_http.ts";
import type { Identity } from "../../crdt/identity.ts";

export { eventually, RawPeer, type ServedNode, serveNode } from "../net_helpers.ts";

/** Resolves with `promise`, or rejects after `timeoutMs` naming `what`. */
export async function within<T>(promise: Promise<T>, what: string, timeoutMs = 10_000): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`Timed out after ${timeoutMs} ms: ${what}`)),
      timeoutMs,
    );
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** The upgrade URL and headers that pre-authenticate `identity` to the node at `url`. */
export async function credentialFor(
  url: string,
  identity: Identity,
): Promise<{ url: string; headers: Record<string, string>; client: PreauthClient }> {
  const client = new PreauthClient({ identity });
  const upgrade = await preauthenticate(url, client);
  if (!("url" in upgrade)) throw new Error(`no pre-authentication: ${JSON.stringify(upgrade)}`);
  return { ...upgrade, client };
}

/** Opens a raw WebSocket and resolves with whether it opened (true) or was refused (false). */
export function opens(
  url: string,
  headers?: Record<string, string>,
): Promise<{ opened: boolean; socket: WebSocket; error?: string }> {
  const socket = headers ? new WebSocket(url, { headers }) : new WebSocket(url);
  return new Promise((resolve) => {
    let error: string | undefined;
    socket.onerror = (event) => (error = (event as ErrorEvent).message);
    socket.onopen = () => resolve({ opened: true, socket });
    socket.onclose = () => resolve({ opened: false, socket, error });
  });
}
