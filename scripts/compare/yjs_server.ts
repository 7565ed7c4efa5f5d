/**
 * The y-websocket server, as `@y/websocket-server`'s own `server.js` runs it
 * (node:http + `ws` with `noServer`, `setupWSConnection` per connection, no
 * persistence), on 127.0.0.1 port 0, under Deno's Node compatibility. Prints
 * `{"port": N}`; SIGTERM stops it.
 *
 * Usage: deno run -A scripts/compare/yjs_server.ts
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
