/**
 * Entry points named after the reference implementation's public API, as thin
 * wrappers over {@link HuskiesNode}: the sync handler, trusted-key setup,
 * join-token setup and the rendezvous spawner.
 * @module
 */
import type { CreatedToken, CreateTokenOptions, Scope } from "../auth/mod.ts";
import { MembershipRefusedError } from "../crdt/replica_members.ts";
import type { ConnectOptions, HuskiesNode, RendezvousClient } from "./node.ts";

/**
 * A `Deno.serve` handler that upgrades `GET /crdt-sync` and runs a sync
 * session; other paths go to `fallback` (404 by default).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { crdtSyncHandler, HuskiesNode } from "@huskies/sync";
 *
 * await using node = await HuskiesNode.open();
 * await using server = Deno.serve(
 *   { hostname: "127.0.0.1", port: 0, onListen() {} },
 *   crdtSyncHandler(node, () => new Response("hello")),
 * );
 * const base = `http://127.0.0.1:${server.addr.port}`;
 * assert.equal(await (await fetch(`${base}/`)).text(), "hello");
 * const upgrade = await fetch(`${base}/crdt-sync`); // not a WebSocket upgrade
 * assert.equal(upgrade.status, 426);
 * await upgrade.body?.cancel();
 * ```
 */
export function crdtSyncHandler(
  node: HuskiesNode,
  fallback: Deno.ServeHandler<Deno.NetAddr> = () => new Response("not found\n", { status: 404 }),
): Deno.ServeHandler<Deno.NetAddr> {
  return (request, info) => node.handleRequest(request, info) ?? fallback(request, info);
}

/**
 * Trusts `keys` (node ids) with `scope`: the reference-style alias of
 * `node.trust.add(key, scope)` for each key, the one documented way to
 * trust a key. An empty trust list means an open mesh unless the node was
 * opened with `open: false`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { HuskiesNode, Identity, initTrustedKeys } from "@huskies/sync";
 *
 * await using node = await HuskiesNode.open({ open: false });
 * const peer = Identity.generate().nodeId;
 * initTrustedKeys(node, [peer]); // the same as node.trust.add(peer, "write")
 * assert.equal(node.trust.scopeOf(peer), "write");
 * ```
 */
export function initTrustedKeys(
  node: HuskiesNode,
  keys: readonly string[],
  scope: Scope = "write",
): void {
  for (const key of keys) node.trust.add(key, scope);
}

/**
 * Creates a join token on this node (the hub) for a new node to present. The
 * returned `token` embeds this node's id, so the joiner can pin it. In a
 * mesh, only an admin issues tokens (redeeming one signs a grant).
 * @throws {MembershipRefusedError} in a mesh, this node is no admin.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { addJoinToken, HuskiesNode } from "@huskies/sync";
 *
 * await using hub = await HuskiesNode.open({ open: false });
 * const { token } = addJoinToken(hub, { ttlMs: 60 * 60 * 1000, uses: 1 });
 * assert.ok(token.startsWith("hjt1."));
 * assert.ok(token.endsWith(hub.nodeId)); // the joiner pins this hub
 * assert.equal(hub.tokens.list().length, 1);
 * ```
 */
export function addJoinToken(node: HuskiesNode, options: CreateTokenOptions): CreatedToken {
  if (node.members.mesh !== undefined && node.members.ownScope() !== "admin") {
    throw new MembershipRefusedError(
      "Cannot create join token: this node's key is not an admin of the mesh",
    );
  }
  return node.tokens.create(options, node.nodeId);
}

/**
 * Dials `url` (a `ws://` or `wss://` URL ending in `/crdt-sync`) and keeps the
 * connection alive with backoff until stopped: the reference-style alias of
 * {@link HuskiesNode.connect}, the one documented way to dial.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { HuskiesNode, spawnRendezvousClient } from "@huskies/sync";
 *
 * await using node = await HuskiesNode.open();
 * // The same as node.connect(url): it keeps retrying with backoff until stopped.
 * const client = spawnRendezvousClient(node, "ws://127.0.0.1:9/crdt-sync");
 * assert.equal(client.url, "ws://127.0.0.1:9/crdt-sync");
 * const outcome = await client.stop();
 * assert.equal(outcome.permanent, false);
 * ```
 */
export function spawnRendezvousClient(
  node: HuskiesNode,
  url: string,
  options: ConnectOptions = {},
): RendezvousClient {
  return node.connect(url, options);
}
