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
 * import { crdtSyncHandler, HuskiesNode } from "../mod.ts";
 * const node = await HuskiesNode.open();
 * const server = Deno.serve({ port: 0, onListen() {} }, crdtSyncHandler(node));
 * await server.shutdown();
 * await node.close();
 * ```
 */
export function crdtSyncHandler(
  node: HuskiesNode,
  fallback: Deno.ServeHandler<Deno.NetAddr> = () => new Response("not found\n", { status: 404 }),
): Deno.ServeHandler<Deno.NetAddr> {
  return (request, info) => node.handleRequest(request, info) ?? fallback(request, info);
}

/**
 * Trusts `keys` (node ids) with `scope`. An empty trust list means an open
 * mesh unless the node was opened with `open: false`.
 *
 * @example
 * ```ts
 * import { HuskiesNode, Identity, initTrustedKeys } from "../mod.ts";
 * const node = await HuskiesNode.open({ open: false });
 * initTrustedKeys(node, [Identity.generate().nodeId]);
 * await node.close();
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
 * import { addJoinToken, HuskiesNode } from "../mod.ts";
 * const hub = await HuskiesNode.open({ open: false });
 * const { token } = addJoinToken(hub, { ttlMs: 60 * 60 * 1000, uses: 1 });
 * console.log(token.startsWith("hjt1.")); // true
 * await hub.close();
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
 * connection alive with backoff until stopped.
 *
 * @example
 * ```ts
 * import { HuskiesNode, spawnRendezvousClient } from "../mod.ts";
 * const node = await HuskiesNode.open();
 * const client = spawnRendezvousClient(node, "ws://127.0.0.1:3001/crdt-sync");
 * await client.stop();
 * await node.close();
 * ```
 */
export function spawnRendezvousClient(
  node: HuskiesNode,
  url: string,
  options: ConnectOptions = {},
): RendezvousClient {
  return node.connect(url, options);
}
