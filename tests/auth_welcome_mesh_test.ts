/**
 * The `welcome.mesh` extension (PROTOCOL.md §3.3.3): a server in a mesh signs
 * its mesh id into the welcome, bound to the client's challenge and key; the
 * client gets it only when the signature holds.
 */
import assert from "node:assert/strict";
import { ClientHandshake, ServerHandshake, type Step } from "../auth/handshake.ts";
import { meshStatement } from "../auth/proof.ts";
import { Identity } from "../crdt/identity.ts";
import { fromHex, toHex } from "../protocol/bytes.ts";
import { CloseCode } from "../protocol/close_codes.ts";
import { identity } from "./helpers.ts";

const MESH = "ab".repeat(32);

function run(mesh: string | undefined, tamper: (welcome: string) => string = (w) => w): Step {
  const hub = identity(400);
  const server = new ServerHandshake({
    identity: hub,
    authorize: () => ({ ok: true, scope: "write" }),
    mesh: () => mesh,
  });
  const client = new ClientHandshake({ identity: identity(401), hubKey: hub.nodeId });
  client.start();
  const auth = client.receive(server.start().send!);
  const welcome = server.receive(auth.send!);
  return client.receive(tamper(welcome.send!));
}

Deno.test("welcome.mesh: a pinned client learns the server's signed mesh id", () => {
  assert.equal(run(MESH).done?.mesh, MESH);
  assert.equal(run(undefined).done?.mesh, undefined);
  assert.equal(run(undefined).done?.scope, "write");
});

Deno.test("welcome.mesh: an altered mesh id or a missing signature is refused", () => {
  const other = "cd".repeat(32);
  const swapped = run(MESH, (w) => w.replace(MESH, other));
  assert.equal(swapped.close?.code, CloseCode.BAD_PROOF);
  const unsigned = run(MESH, (w) => {
    const frame = JSON.parse(w);
    delete frame.meshSig;
    return JSON.stringify(frame);
  });
  assert.equal(unsigned.close?.code, 1002);
  assert.equal(
    unsigned.close?.reason,
    "protocol violation: welcome.meshSig must be 128 lowercase hex",
  );
});

Deno.test("welcome.mesh: the known-answer vector of PROTOCOL.md §3.8", () => {
  const server = Identity.fromSeed(
    fromHex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"),
  );
  const parts = {
    serverChallenge: "11".repeat(32),
    clientChallenge: "22".repeat(32),
    serverKey: server.nodeId,
    clientKey: "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
  };
  const statement = meshStatement(parts, "33".repeat(32));
  assert.equal(statement.length, 215);
  assert.equal(
    toHex(server.sign(statement)),
    "3038b5442a89de6842fcf92fd3980eb307920cc25e446b6b1e98fd6e4970272c" +
      "24a107b736524f92d4950fdc9b8b7dabb00658df37ed5e83e61d9eb53407de02",
  );
});
