/**
 * A minimal WebSocket relay for the TCP_NODELAY measurement: every message a
 * client on `/pub` sends goes to every client on `/sub`. Native `Deno.serve` +
 * `Deno.upgradeWebSocket`, like the huskies hub. Prints `{"port": N}`.
 *
 * Usage: deno run -A scripts/compare/relay_hub.ts
 */
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
    };
  }
  return response;
});
console.log(JSON.stringify({ port: server.addr.port }));
Deno.addSignalListener("SIGTERM", () => Deno.exit(0));
