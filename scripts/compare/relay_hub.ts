/**
 * A minimal WebSocket relay for the TCP_NODELAY measurement: every message a
 * client on `/pub` sends goes to every client on `/sub`. Native `Deno.serve` +
 * `Deno.upgradeWebSocket`, like the huskies hub. With `--echo` the hub also
 * answers each publisher's message with a short frame, so traffic flows both
 * ways on the writer's connection, as on a mesh link that carries operations
 * both ways (this is what puts the receiver's TCP into delayed-ACK mode).
 * Prints `{"port": N}`.
 *
 * Usage: deno run -A scripts/compare/relay_hub.ts [--echo]
 */
const echo = Deno.args.includes("--echo");
const subscribers = new Set<WebSocket>();
const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (request) => {
  const path = new URL(request.url).pathname;
  const { socket, response } = Deno.upgradeWebSocket(request);
  if (path === "/sub") {
    socket.onopen = () => subscribers.add(socket);
    socket.onclose = () => subscribers.delete(socket);
  } else {
    socket.onmessage = (event) => {
      for (const subscriber of subscribers) subscriber.send(event.data);
      if (echo) socket.send("ok");
    };
  }
  return response;
});
console.log(JSON.stringify({ port: server.addr.port }));
Deno.addSignalListener("SIGTERM", () => Deno.exit(0));
