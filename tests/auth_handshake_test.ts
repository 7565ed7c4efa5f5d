import assert from "node:assert/strict";
import fc from "fast-check";
import { Identity } from "../crdt/identity.ts";
import { CloseCode } from "../protocol/close_codes.ts";
import {
  AccessPolicy,
  type Authorizer,
  ClientHandshake,
  type ClientHandshakeOptions,
  makeAuthorizer,
  MAX_HANDSHAKE_FRAME_BYTES,
  parseJoinToken,
  PROTOCOL_ID,
  ServerHandshake,
  TokenStore,
  TrustStore,
} from "../auth/mod.ts";
import { type Step, transcript } from "../auth/handshake.ts";

const hub = Identity.generate();
const node = Identity.generate();
const stranger = Identity.generate();

function closedPolicy(trust = TrustStore.memory()): AccessPolicy {
  return new AccessPolicy(trust, { open: false });
}

interface Run {
  server: ServerHandshake;
  client: ClientHandshake;
  challenge: Step;
  auth: Step;
  welcome: Step;
  final: Step;
}

/** Runs a full handshake, stopping at the first close. */
function run(
  authorize: Authorizer,
  clientOptions: Partial<ClientHandshakeOptions> = {},
): Run {
  const server = new ServerHandshake({ identity: hub, authorize });
  const client = new ClientHandshake({ identity: node, hubKey: hub.nodeId, ...clientOptions });
  assert.deepEqual(client.start(), {});
  const challenge = server.start();
  const auth = client.receive(challenge.send!);
  const welcome = auth.send ? server.receive(auth.send) : {};
  const final = welcome.send ? client.receive(welcome.send) : {};
  return { server, client, challenge, auth, welcome, final };
}

Deno.test("handshake authenticates both sides and reports each peer's id", () => {
  const trust = TrustStore.memory([node.nodeId]);
  const r = run(makeAuthorizer(closedPolicy(trust)));
  assert.deepEqual(r.welcome.done, { peer: node.nodeId, scope: "write" });
  assert.deepEqual(r.final, { done: { peer: hub.nodeId, scope: "write" } });
  assert.equal(r.server.status, "done");
  assert.equal(r.client.status, "done");
  const challenge = JSON.parse(r.challenge.send!);
  assert.equal(challenge.type, "challenge");
  assert.equal(challenge.protocol, PROTOCOL_ID);
  assert.match(challenge.challenge, /^[0-9a-f]{64}$/);
  assert.equal(challenge.key, hub.nodeId);
});

Deno.test("handshake signatures cover the documented transcript bytes", () => {
  const r = run(() => ({ ok: true, scope: "write" }));
  const challenge = JSON.parse(r.challenge.send!);
  const auth = JSON.parse(r.auth.send!);
  const welcome = JSON.parse(r.welcome.send!);
  const parts = {
    serverChallenge: challenge.challenge,
    clientChallenge: auth.challenge,
    serverKey: hub.nodeId,
    clientKey: node.nodeId,
  };
  const text = new TextDecoder().decode(transcript("client", parts));
  assert.equal(
    text,
    `huskies-sync/auth/v1\nclient\n${parts.serverChallenge}\n${parts.clientChallenge}\n` +
      `${hub.nodeId}\n${node.nodeId}`,
  );
  // Ed25519 is deterministic: the same key over the same bytes gives the same signature.
  assert.equal(auth.sig, node.sign(transcript("client", parts)).toHex());
  assert.equal(welcome.sig, hub.sign(transcript("server", parts)).toHex());
});

Deno.test("handshake uses injected randomness for both challenges", () => {
  const server = new ServerHandshake({
    identity: hub,
    authorize: () => ({ ok: true, scope: "write" }),
    random: (n) => new Uint8Array(n).fill(1),
  });
  const client = new ClientHandshake({ identity: node, random: (n) => new Uint8Array(n).fill(2) });
  client.start();
  const challenge = JSON.parse(server.start().send!);
  assert.equal(challenge.challenge, "01".repeat(32));
  const auth = JSON.parse(client.receive(JSON.stringify(challenge)).send!);
  assert.equal(auth.challenge, "02".repeat(32));
});

Deno.test("handshake refuses a client whose signature is bad with 4401", () => {
  const server = new ServerHandshake({
    identity: hub,
    authorize: () => ({ ok: true, scope: "write" }),
  });
  const client = new ClientHandshake({ identity: node });
  client.start();
  const auth = JSON.parse(client.receive(server.start().send!).send!);
  auth.sig = (auth.sig[0] === "0" ? "1" : "0") + auth.sig.slice(1);
  assert.deepEqual(server.receive(JSON.stringify(auth)), {
    close: { code: CloseCode.BAD_PROOF, reason: "bad proof" },
  });
  assert.equal(server.status, "closed");
});

Deno.test("handshake refuses a client claiming another node's key with 4401", () => {
  const server = new ServerHandshake({
    identity: hub,
    authorize: () => ({ ok: true, scope: "write" }),
  });
  const client = new ClientHandshake({ identity: stranger });
  client.start();
  const auth = JSON.parse(client.receive(server.start().send!).send!);
  auth.key = node.nodeId;
  assert.equal(server.receive(JSON.stringify(auth)).close?.code, CloseCode.BAD_PROOF);
});

Deno.test("handshake refuses a small-order client key with 4401", () => {
  const server = new ServerHandshake({
    identity: hub,
    authorize: () => ({ ok: true, scope: "write" }),
  });
  server.start();
  const auth = {
    type: "auth",
    key: "01" + "00".repeat(31),
    challenge: "00".repeat(32),
    sig: "01" + "00".repeat(63),
  };
  assert.equal(server.receive(JSON.stringify(auth)).close?.code, CloseCode.BAD_PROOF);
});

Deno.test("handshake refuses an untrusted key with 4403 in a closed mesh", () => {
  const r = run(makeAuthorizer(closedPolicy()));
  assert.deepEqual(r.welcome, {
    close: { code: CloseCode.NOT_TRUSTED, reason: "key not trusted" },
  });
});

Deno.test("handshake admits an unknown key with write scope in an open mesh", () => {
  const policy = new AccessPolicy(TrustStore.memory(), { open: "when-empty" });
  const r = run(makeAuthorizer(policy));
  assert.deepEqual(r.welcome.done, { peer: node.nodeId, scope: "write" });
});

Deno.test("handshake returns read scope to both sides for a read-scoped key", () => {
  const trust = TrustStore.memory([{ key: node.nodeId, scope: "read" }]);
  const r = run(makeAuthorizer(closedPolicy(trust)));
  assert.deepEqual(r.welcome.done, { peer: node.nodeId, scope: "read" });
  assert.deepEqual(r.final.done, { peer: hub.nodeId, scope: "read" });
  assert.equal(JSON.parse(r.welcome.send!).scope, "read");
});

Deno.test("handshake rejects an auth response replayed from a previous session with 4401", () => {
  const authorize = makeAuthorizer(closedPolicy(TrustStore.memory([node.nodeId])));
  const first = run(authorize);
  assert.ok(first.welcome.done);
  const second = new ServerHandshake({ identity: hub, authorize });
  second.start();
  assert.deepEqual(second.receive(first.auth.send!), {
    close: { code: CloseCode.BAD_PROOF, reason: "bad proof" },
  });
});

Deno.test("handshake rejects a server proof reflected back as a client proof", () => {
  // A hub that also holds the client's key cannot turn its own welcome into an auth.
  const server = new ServerHandshake({
    identity: hub,
    authorize: () => ({ ok: true, scope: "write" }),
  });
  const challenge = JSON.parse(server.start().send!);
  const clientChallenge = "ab".repeat(32);
  const parts = {
    serverChallenge: challenge.challenge,
    clientChallenge,
    serverKey: hub.nodeId,
    clientKey: hub.nodeId,
  };
  const reflected = {
    type: "auth",
    key: hub.nodeId,
    challenge: clientChallenge,
    sig: hub.sign(transcript("server", parts)).toHex(),
  };
  assert.equal(server.receive(JSON.stringify(reflected)).close?.code, CloseCode.BAD_PROOF);
});

Deno.test("client refuses a welcome whose signature is bad with 4401", () => {
  const r = run(() => ({ ok: true, scope: "write" }), {});
  const client = new ClientHandshake({ identity: node, hubKey: hub.nodeId });
  client.start();
  const server = new ServerHandshake({
    identity: hub,
    authorize: () => ({ ok: true, scope: "write" }),
  });
  client.receive(server.start().send!);
  // A welcome from another session is signed over other challenges.
  assert.deepEqual(client.receive(r.welcome.send!), {
    close: { code: CloseCode.BAD_PROOF, reason: "bad proof" },
  });
});

Deno.test("client refuses a hub whose key differs from the pinned one with 4406", () => {
  const client = new ClientHandshake({ identity: node, hubKey: hub.nodeId });
  client.start();
  const impostor = new ServerHandshake({
    identity: stranger,
    authorize: () => ({ ok: true, scope: "write" }),
  });
  assert.deepEqual(client.receive(impostor.start().send!), {
    close: { code: CloseCode.HUB_KEY_MISMATCH, reason: "hub key mismatch" },
  });
});

Deno.test("client refuses an unknown protocol with 4426", () => {
  const client = new ClientHandshake({ identity: node });
  client.start();
  const frame = {
    type: "challenge",
    protocol: "huskies-sync/2",
    challenge: "00".repeat(32),
    key: hub.nodeId,
  };
  assert.equal(client.receive(JSON.stringify(frame)).close?.code, CloseCode.INCOMPATIBLE_VERSION);
});

Deno.test("handshake closes malformed frames with 1002 protocol violation", () => {
  const cases: Array<[string, string]> = [
    ["not json", "frame is not JSON"],
    ["[1,2]", "frame is not a JSON object"],
    [JSON.stringify({ type: "welcome" }), "expected auth message"],
    [JSON.stringify({ type: "auth", key: 5 }), "auth.key"],
    [
      JSON.stringify({ type: "auth", key: node.nodeId.toUpperCase(), challenge: "", sig: "" }),
      "auth.key",
    ],
    [
      JSON.stringify({ type: "auth", key: node.nodeId, challenge: "zz", sig: "" }),
      "auth.challenge",
    ],
    [
      JSON.stringify({ type: "auth", key: node.nodeId, challenge: "00".repeat(32), sig: "00" }),
      "auth.sig",
    ],
    [
      JSON.stringify({
        type: "auth",
        key: node.nodeId,
        challenge: "00".repeat(32),
        sig: "00".repeat(64),
        token: 7,
      }),
      "auth.token",
    ],
  ];
  for (const [frame, what] of cases) {
    const server = new ServerHandshake({
      identity: hub,
      authorize: () => ({ ok: true, scope: "write" }),
    });
    server.start();
    const step = server.receive(frame);
    assert.equal(step.close?.code, CloseCode.PROTOCOL_ERROR, frame);
    assert.ok(step.close?.reason.startsWith("protocol violation: "), step.close?.reason);
    assert.ok(step.close?.reason.includes(what), `${step.close?.reason} should mention ${what}`);
  }
  const client = new ClientHandshake({ identity: node });
  client.start();
  const badChallenge = { type: "challenge", protocol: PROTOCOL_ID, challenge: 1, key: hub.nodeId };
  assert.equal(client.receive(JSON.stringify(badChallenge)).close?.code, CloseCode.PROTOCOL_ERROR);
});

Deno.test("handshake closes oversized frames with 1009", () => {
  const big = JSON.stringify({ type: "auth", pad: "x".repeat(MAX_HANDSHAKE_FRAME_BYTES) });
  const server = new ServerHandshake({
    identity: hub,
    authorize: () => ({ ok: true, scope: "write" }),
  });
  server.start();
  assert.equal(server.receive(big).close?.code, CloseCode.TOO_BIG);
  // Multi-byte characters count by their UTF-8 size, not their string length.
  const client = new ClientHandshake({ identity: node });
  client.start();
  const wide = JSON.stringify({ type: "challenge", pad: "é".repeat(2100) });
  assert.ok(wide.length < MAX_HANDSHAKE_FRAME_BYTES);
  assert.equal(client.receive(wide).close?.code, CloseCode.TOO_BIG);
});

Deno.test("handshake closes frames after done or after close with 1002", () => {
  const r = run(() => ({ ok: true, scope: "write" }));
  assert.equal(r.server.receive(r.auth.send!).close?.code, CloseCode.PROTOCOL_ERROR);
  assert.equal(r.server.status, "closed");
  assert.equal(r.client.receive(r.welcome.send!).close?.code, CloseCode.PROTOCOL_ERROR);
  assert.equal(r.server.receive("{}").close?.code, CloseCode.PROTOCOL_ERROR);
});

Deno.test("client closes a second challenge where a welcome is expected with 1002", () => {
  const server = new ServerHandshake({
    identity: hub,
    authorize: () => ({ ok: true, scope: "write" }),
  });
  const client = new ClientHandshake({ identity: node });
  client.start();
  const challenge = server.start().send!;
  client.receive(challenge);
  assert.equal(client.receive(challenge).close?.code, CloseCode.PROTOCOL_ERROR);
});

Deno.test("handshake closes a binary frame during the handshake with 1002", () => {
  const server = new ServerHandshake({
    identity: hub,
    authorize: () => ({ ok: true, scope: "write" }),
  });
  server.start();
  assert.equal(server.receiveBinary().close?.code, CloseCode.PROTOCOL_ERROR);
});

// --- join tokens through the handshake -------------------------------------------------------

function tokenSetup() {
  const trust = TrustStore.memory();
  let clock = 1_000_000;
  const tokens = TokenStore.memory({ now: () => clock });
  const authorize = makeAuthorizer(closedPolicy(trust), tokens);
  return { trust, tokens, authorize, advance: (ms: number) => (clock += ms) };
}

Deno.test("join token admits a new key and persists its trust so the next handshake needs none", () => {
  const { trust, tokens, authorize } = tokenSetup();
  const { token } = tokens.create({ ttlMs: 60_000, scope: "read" }, hub.nodeId);
  const first = run(authorize, { hubKey: undefined, token });
  assert.deepEqual(first.welcome.done, { peer: node.nodeId, scope: "read" });
  assert.equal(JSON.parse(first.auth.send!).token.split(".").length, 2);
  assert.equal(trust.scopeOf(node.nodeId), "read");
  const second = run(authorize);
  assert.deepEqual(second.welcome.done, { peer: node.nodeId, scope: "read" });
  assert.equal(JSON.parse(second.auth.send!).token, undefined);
});

Deno.test("join token pins the hub key it names", () => {
  const { tokens, authorize } = tokenSetup();
  const { token } = tokens.create({ ttlMs: 60_000 }, stranger.nodeId);
  const r = run(authorize, { hubKey: undefined, token });
  assert.equal(r.auth.close?.code, CloseCode.HUB_KEY_MISMATCH);
});

Deno.test("join tokens that are wrong, expired, used up, revoked or malformed are refused with 4405 and their reason", () => {
  const { tokens, authorize, advance } = tokenSetup();
  const refuse = (token: string) => {
    const r = run(authorize, { token });
    assert.equal(r.welcome.close?.code, CloseCode.TOKEN_REFUSED);
    return r.welcome.close?.reason;
  };
  const wrong = parseJoinToken(tokens.create({ ttlMs: 60_000 }, hub.nodeId).token);
  assert.equal(refuse(`${wrong.id}.${"0".repeat(64)}`), "token unknown");
  assert.equal(refuse(`${"1".repeat(16)}.${wrong.secret}`), "token unknown");

  const used = tokens.create({ ttlMs: 60_000 }, hub.nodeId);
  const other = Identity.generate();
  const client = new ClientHandshake({ identity: other, token: used.token });
  const server = new ServerHandshake({ identity: hub, authorize });
  client.start();
  assert.ok(server.receive(client.receive(server.start().send!).send!).done);
  assert.equal(refuse(used.token), "token used up");

  const revoked = tokens.create({ ttlMs: 60_000 }, hub.nodeId);
  tokens.revoke(revoked.id);
  assert.equal(refuse(revoked.token), "token revoked");

  const expired = tokens.create({ ttlMs: 60_000 }, hub.nodeId);
  advance(60_000);
  assert.equal(refuse(expired.token), "token expired");

  // A malformed token cannot be built by ClientHandshake, so send the frame by hand.
  const raw = new ServerHandshake({ identity: hub, authorize });
  const challenge = JSON.parse(raw.start().send!);
  const clientChallenge = "cd".repeat(32);
  const parts = {
    serverChallenge: challenge.challenge,
    clientChallenge,
    serverKey: hub.nodeId,
    clientKey: node.nodeId,
  };
  const auth = {
    type: "auth",
    key: node.nodeId,
    challenge: clientChallenge,
    sig: node.sign(transcript("client", parts)).toHex(),
    token: "not-a-token",
  };
  assert.deepEqual(raw.receive(JSON.stringify(auth)), {
    close: { code: CloseCode.TOKEN_REFUSED, reason: "token malformed" },
  });
});

Deno.test("join token is not consumed by a client whose proof is bad", () => {
  const { tokens, authorize } = tokenSetup();
  const created = tokens.create({ ttlMs: 60_000 }, hub.nodeId);
  const server = new ServerHandshake({ identity: hub, authorize });
  const client = new ClientHandshake({ identity: node, token: created.token });
  client.start();
  const auth = JSON.parse(client.receive(server.start().send!).send!);
  auth.sig = "00".repeat(64);
  assert.equal(server.receive(JSON.stringify(auth)).close?.code, CloseCode.BAD_PROOF);
  assert.equal(tokens.list()[0].usesLeft, 1);
});

Deno.test("client handshake refuses a token naming a different hub than hubKey", () => {
  const tokens = TokenStore.memory();
  const { token } = tokens.create({ ttlMs: 1000 }, stranger.nodeId);
  assert.throws(
    () => new ClientHandshake({ identity: node, hubKey: hub.nodeId, token }),
    TypeError,
  );
  assert.throws(() => new ClientHandshake({ identity: node, token: "nope" }), TypeError);
});

Deno.test("handshake matches the known-answer vector in PROTOCOL.md", () => {
  const server = Identity.fromSeed(
    Uint8Array.fromHex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"),
  );
  const client = Identity.fromSeed(
    Uint8Array.fromHex("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb"),
  );
  const serverSide = new ServerHandshake({
    identity: server,
    authorize: () => ({ ok: true, scope: "write" }),
    random: (n) => new Uint8Array(n).fill(0x11),
  });
  const clientSide = new ClientHandshake({
    identity: client,
    hubKey: "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
    random: (n) => new Uint8Array(n).fill(0x22),
  });
  clientSide.start();
  const auth = clientSide.receive(serverSide.start().send!);
  assert.deepEqual(JSON.parse(auth.send!), {
    type: "auth",
    key: "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
    challenge: "22".repeat(32),
    sig: "5645c240ccea30cbb3ed2c44268e18e67fe345eb9d245565b86b9e4475d35281" +
      "93989ec90df8192e2d22266c35ed0e7c3e6f3beeb9ab916995b4be5af4d39c00",
  });
  const welcome = serverSide.receive(auth.send!);
  assert.deepEqual(JSON.parse(welcome.send!), {
    type: "welcome",
    sig: "a461a10c9baaf550e964b50c2f1c5f8ea35c121c000b5428930edba1f92042e3" +
      "30d5c3807a3108f7d8e34985bbd2239ba56ad8448d339b5be010668066513b0e",
    scope: "write",
  });
  assert.ok(clientSide.receive(welcome.send!).done);
});

Deno.test("handshake refusals carry fixed reasons only, whatever the authoriser returns", () => {
  const token = "0123456789abcdef." + "ab".repeat(32);
  const echoing: Authorizer = (key, presented) => ({
    ok: false,
    code: CloseCode.TOKEN_REFUSED,
    reason: `token ${presented} for ${key} refused`,
  });
  const r = run(echoing, { token });
  assert.deepEqual(r.welcome.close, { code: CloseCode.TOKEN_REFUSED, reason: "not authorized" });
  const badCode = run(() => ({ ok: false, code: 1000, reason: "key not trusted" }));
  assert.deepEqual(badCode.welcome.close, {
    code: CloseCode.NOT_TRUSTED,
    reason: "key not trusted",
  });
  const documented = run(() => ({
    ok: false,
    code: CloseCode.TOKEN_REFUSED,
    reason: "token expired",
  }));
  assert.deepEqual(documented.welcome.close, { code: 4405, reason: "token expired" });
});

Deno.test("no handshake close reason echoes what the peer sent", () => {
  const MARK = "ZQX";
  const marked = fc.oneof(
    fc.constant(MARK),
    fc.string().map((s) => MARK + s),
    fc.integer().map((n) => Number(`${n}9`)),
    fc.constant(9007199254740993),
  );
  const value = fc.oneof(marked, fc.constant("ab".repeat(32)), fc.constant(null), fc.boolean());
  const frame = fc.record({
    type: fc.oneof(fc.constantFrom("auth", "challenge", "welcome"), marked),
    key: value,
    challenge: value,
    sig: value,
    token: value,
    protocol: fc.oneof(fc.constant(PROTOCOL_ID), marked),
    scope: fc.oneof(fc.constantFrom("write", "read"), marked),
  }, { requiredKeys: [] });
  const text = fc.oneof(frame.map((f) => JSON.stringify(f)), marked.map(String));
  const authorize = makeAuthorizer(closedPolicy(TrustStore.memory([node.nodeId])));
  fc.assert(
    fc.property(text, text, (first, second) => {
      const server = new ServerHandshake({ identity: hub, authorize });
      server.start();
      const client = new ClientHandshake({ identity: node });
      client.start();
      const steps = [server.receive(first), server.receive(second), client.receive(first)];
      const client2 = new ClientHandshake({ identity: node });
      client2.start();
      const challenge = client2.receive(
        new ServerHandshake({ identity: hub, authorize }).start().send!,
      );
      assert.ok(challenge.send);
      steps.push(client2.receive(second));
      for (const step of steps) {
        if (!step.close) continue;
        assert.ok(!step.close.reason.includes(MARK), step.close.reason);
        assert.ok(!/\d{6}/.test(step.close.reason), step.close.reason);
      }
    }),
    { numRuns: 300 },
  );
});
