/**
 * The hub the side-by-side harness and the tail probe run: an open node
 * admitting every bench peer from 127.0.0.1, served on a free loopback port.
 * @module
 */
import { HuskiesNode } from "../../sync/node.ts";

/** Opens the hub (in memory without `dataDir`) and serves it; `liveBatchMs` sets its batching window. */
export async function openBenchHub(
  dataDir: string | undefined,
  liveBatchMs: string | undefined,
): Promise<{ hub: HuskiesNode; server: Deno.HttpServer<Deno.NetAddr> }> {
  const hub = await HuskiesNode.open({
    ...(dataDir === undefined ? {} : { dataDir }),
    ...(liveBatchMs !== undefined ? { liveBatchMs: Number(liveBatchMs) } : {}),
    open: true,
    admission: { attemptsPerMinutePerAddress: 100_000, maxUnauthenticated: 1000 },
  });
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (request, info) =>
      hub.handleRequest(request, info) ?? new Response("not found", { status: 404 }),
  );
  return { hub, server };
}
