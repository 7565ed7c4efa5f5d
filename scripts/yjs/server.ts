/**
 * The y-websocket server, as `@y/websocket-server`'s own `server.js` runs it
 * (node:http + `ws` with `noServer`, `setupWSConnection` per connection, no
 * persistence), on 127.0.0.1 port 0, under Deno's Node compatibility. Prints
 * `{"port": N}`; SIGTERM stops it.
 *
 * Usage: deno run -A --config scripts/yjs/deno.json scripts/yjs/server.ts
 *
 * This folder has its own config and lockfile (`scripts/compare_yjs.ts`
 * passes `--config`), pinning `@y/websocket-server` 0.1.1, `yjs` 13.6.x,
 * `y-protocols` 1.0.x and `ws` 8.x, so that the repository's `deno.lock`
 * holds only what huskies and its tests use: a checkout's first run fetches
 * none of y-websocket's packages (among them leveldown, whose build script
 * Deno would warn about).
 */
import http from "node:http";
import type { Duplex } from "node:stream";
import { WebSocketServer } from "ws";
import { setupWSConnection } from "@y/websocket-server/utils";

const wss = new WebSocketServer({ noServer: true });
wss.on("connection", setupWSConnection);
const server = http.createServer((_request, response) => {
  response.writeHead(200, { "Content-Type": "text/plain" });
  response.end("okay");
});
server.on("upgrade", (request: http.IncomingMessage, socket: Duplex, head: Buffer) => {
  wss.handleUpgrade(request, socket, head, (ws: unknown) => wss.emit("connection", ws, request));
});
server.listen(0, "127.0.0.1", () => {
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("Cannot listen");
  console.log(JSON.stringify({ port: address.port }));
});
Deno.addSignalListener("SIGTERM", () => Deno.exit(0));
