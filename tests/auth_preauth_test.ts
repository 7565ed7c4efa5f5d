import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { Identity, SignatureVerifier } from "../crdt/identity.ts";
import { CloseCode } from "../protocol/close_codes.ts";
import { fromHex } from "../protocol/bytes.ts";
import { AccessPolicy, makeAuthorizer, TokenStore, TrustStore } from "../auth/mod.ts";
import { type Authorizer, transcript } from "../auth/handshake.ts";
import {
  type PreauthCheck,
  PreauthClient,
  type PreauthClientOptions,
  PreauthServer,
  type PreauthServerOptions,
} from "../auth/preauth.ts";
import {
  challengeResponse,
  challengeUrl,
  checkUpgradeRequest,
  CLOSE_CODE_HEADER,
  closeForUpgradeStatus,
  isChallengeRequest,
  PREAUTH_HEADER,
  preauthenticate,
  refusalResponse,
} from "../auth/preauth_http.ts";

const SERVER_SEED = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
const CLIENT_SEED = "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb";
const hub = Identity.fromSeed(fromHex(SERVER_SEED));
const node = Identity.fromSeed(fromHex(CLIENT_SEED));
const stranger = Identity.generate();
const T0 = 1_800_000_000_000;
const fill = (byte: number) => (n: number) => new Uint8Array(n).fill(byte);
const writeAll: Authorizer = () => ({ ok: true, scope: "write" });

function closedAuthorizer(trust = TrustStore.memory([node.nodeId]), tokens?: TokenStore) {
  return makeAuthorizer(new AccessPolicy(trust, { open: false }), tokens, trust);
}

function server(options: Partial<PreauthServerOptions> = {}, clock = { now: T0 }): PreauthServer {
  return new PreauthServer({
    identity: hub,
    authorize: closedAuthorizer(),
    secret: new Uint8Array(32).fill(0x33),
    now: () => clock.now,
    ...options,
  });
}

function client(options: Partial<PreauthClientOptions> = {}): PreauthClient {
  return new PreauthClient({ identity: node, hubKey: hub.nodeId, ...options });
}

/** One full attempt: challenge, proof, check. */
function attempt(s: PreauthServer, c = client()): { check: PreauthCheck; credential: string } {
  const proof = c.prove(JSON.stringify(s.issue()));
  assert.ok("credential" in proof, JSON.stringify(proof));
  return { check: s.check(proof.credential), credential: proof.credential };
}

function refusal(check: PreauthCheck): [number, number, string] {
  assert.equal(check.kind, "refused");
  const { status, code, reason } = (check as Extract<PreauthCheck, { kind: "refused" }>).refusal;
  return [status, code, reason];
}

// The vector of PROTOCOL.md §3.10.
const VECTOR = {
  challenge: "000000006b49d21e4444444444444444063ff206626396490e58f1c2433a92f5",
  clientChallenge: "22".repeat(32),
  credentialSig: "944b0411f2053f723efaa3d10250934ce74edb93d51c21ba8413d5e85fa8d533" +
    "21d189a4ceef60c79a6a645335e44f1473576fe71000d35049260b2980aa310d",
  welcomeSig: "2af750bbf49df696ba4732998ecaebbb66b89d351b0af0db4ef78a867c4f67aa" +
    "b200f5899cbb6b9e519834534f8e06a313fef9908d8db6d2e9557942aa0dc803",
};

Deno.test("pre-upgrade authentication matches the known-answer vector of PROTOCOL.md §3.10", () => {
  const s = server({ authorize: writeAll, random: fill(0x44) });
  const offer = s.issue();
  assert.equal(offer.challenge, VECTOR.challenge);
  assert.equal(offer.key, hub.nodeId);
  // The challenge, rebuilt by hand: expiry (T0 / 1000 + 30, 8 bytes BE) || nonce || HMAC[0..16].
  const head = (T0 / 1000 + 30).toString(16).padStart(16, "0") + "44".repeat(8);
  const mac = createHmac("sha256", new Uint8Array(32).fill(0x33))
    .update(`huskies-sync/preauth/challenge/v1\n${hub.nodeId}\n`)
    .update(fromHex(head))
    .digest("hex")
    .slice(0, 32);
  assert.equal(head + mac, VECTOR.challenge);

  const proof = client({ random: fill(0x22) }).prove(JSON.stringify(offer));
  assert.ok("credential" in proof);
  assert.equal(
    proof.credential,
    `hpa1.${node.nodeId}.${VECTOR.challenge}.${VECTOR.clientChallenge}.${VECTOR.credentialSig}`,
  );
  // The transcript, built by hand (independently of auth/proof.ts).
  const lines = (role: string) =>
    new TextEncoder().encode(
      ["huskies-sync/preauth/v1", role, VECTOR.challenge, VECTOR.clientChallenge, hub.nodeId]
        .concat(node.nodeId).join("\n"),
    );
  const verifier = new SignatureVerifier();
  assert.ok(verifier.verify(node.nodeId, lines("client"), fromHex(VECTOR.credentialSig)));
  const check = s.check(proof.credential);
  assert.equal(check.kind, "accepted");
  const welcome = JSON.parse((check as { welcome: string }).welcome);
  assert.deepEqual(welcome, { type: "welcome", sig: VECTOR.welcomeSig, scope: "write" });
  assert.ok(verifier.verify(hub.nodeId, lines("server"), fromHex(VECTOR.welcomeSig)));
});

Deno.test("a trusted key is accepted before the upgrade and both sides are authenticated", () => {
  const s = server();
  const c = client();
  const { check } = attempt(s, c);
  assert.equal(check.kind, "accepted");
  if (check.kind !== "accepted") return;
  assert.equal(check.peer, node.nodeId);
  assert.equal(check.scope, "write");
  assert.deepEqual(c.receive(check.welcome), { done: { peer: hub.nodeId, scope: "write" } });
});

Deno.test("an untrusted key is refused with 403 and does not fill the replay memory", () => {
  const s = server();
  for (let i = 0; i < 20; i++) {
    const { check } = attempt(s, client({ identity: Identity.generate() }));
    assert.deepEqual(refusal(check), [403, CloseCode.NOT_TRUSTED, "key not trusted"]);
  }
  assert.equal(s.recentProofs, 0);
});

Deno.test("a proof is accepted once: a replayed credential is refused", () => {
  const s = server();
  const { check, credential } = attempt(s);
  assert.equal(check.kind, "accepted");
  assert.deepEqual(refusal(s.check(credential)), [
    428,
    CloseCode.HANDSHAKE_TIMEOUT,
    "challenge used",
  ]);
});

Deno.test("a challenge expires, and one the server did not issue is unknown", () => {
  const clock = { now: T0 };
  const s = server({}, clock);
  const c = client();
  const proof = c.prove(JSON.stringify(s.issue()));
  assert.ok("credential" in proof);
  clock.now += 30_000;
  assert.deepEqual(refusal(s.check(proof.credential)), [428, 4408, "challenge expired"]);
  // A restarted server (new secret) does not know the old challenge.
  clock.now = T0;
  const restarted = server({ secret: new Uint8Array(32).fill(0x34) }, clock);
  assert.deepEqual(refusal(restarted.check(proof.credential)), [428, 4408, "challenge unknown"]);
  // A challenge with its expiry pushed later fails the MAC.
  const fields = proof.credential.split(".");
  fields[2] = "00000000ffffffff" + fields[2].slice(16);
  assert.deepEqual(refusal(s.check(fields.join("."))), [428, 4408, "challenge unknown"]);
});

Deno.test("a bad or reflected signature is refused with 401", () => {
  const s = server();
  const { credential } = attempt(
    server({ authorize: () => ({ ok: false, code: 4403, reason: "x" }) }),
  );
  const fields = credential.split(".");
  // A fresh challenge from s, but someone else's signature.
  const offer = s.issue();
  fields[2] = offer.challenge;
  assert.deepEqual(refusal(s.check(fields.join("."))), [401, CloseCode.BAD_PROOF, "bad proof"]);
  // The server-role signature over the same transcript is not a client proof.
  const parts = {
    serverChallenge: offer.challenge,
    clientChallenge: "22".repeat(32),
    serverKey: hub.nodeId,
    clientKey: node.nodeId,
  };
  const reflected = node.sign(transcript("server", parts, "huskies-sync/preauth/v1")).toHex();
  const inBand = node.sign(transcript("client", parts)).toHex();
  for (const sig of [reflected, inBand]) {
    const forged = ["hpa1", node.nodeId, offer.challenge, parts.clientChallenge, sig].join(".");
    assert.deepEqual(refusal(s.check(forged)), [401, CloseCode.BAD_PROOF, "bad proof"]);
  }
});

Deno.test("malformed credentials are refused with 400; no credential is refused unless in-band is allowed", () => {
  const s = server();
  assert.deepEqual(refusal(s.check(undefined)), [401, 4401, "pre-authentication required"]);
  assert.deepEqual(server({ allowInBand: true }).check(undefined), { kind: "absent" });
  const good = attempt(server()).credential;
  const bad = [
    "",
    "hpa1",
    good.replace("hpa1", "hpa2"),
    good.toUpperCase(),
    good + ".",
    good + ".0123456789abcdef",
    good + ".0123456789abcdef." + "z".repeat(64),
    "hpa1." + "a".repeat(600),
  ];
  for (const credential of bad) {
    assert.deepEqual(refusal(s.check(credential)), [400, 1002, "malformed credential"], credential);
  }
});

Deno.test("a join token is redeemed before the upgrade, only from the header", () => {
  const trust = TrustStore.memory();
  const tokens = TokenStore.memory();
  const created = tokens.create({ ttlMs: null, scope: "read", uses: 1 }, hub.nodeId);
  const s = server({ authorize: closedAuthorizer(trust, tokens) });
  const presented = created.token;
  // In the query form the token would land in access logs: refused, and not redeemed.
  const viaQuery = client({ token: presented }).prove(JSON.stringify(s.issue()));
  assert.ok("credential" in viaQuery);
  assert.deepEqual(refusal(s.check(viaQuery.credential, true)), [
    400,
    1002,
    "token only in the header",
  ]);
  const { check } = attempt(s, client({ token: presented }));
  assert.equal(check.kind, "accepted");
  assert.equal(check.kind === "accepted" && check.scope, "read");
  assert.equal(trust.scopeOf(node.nodeId), "read");
  // Used up: a second node with the same token is refused with the token's reason.
  const other = client({ identity: stranger, token: presented });
  assert.deepEqual(refusal(attempt(s, other).check), [
    403,
    CloseCode.TOKEN_REFUSED,
    "token used up",
  ]);
});

Deno.test("the replay memory is bounded: over it the server answers 429 until proofs expire", () => {
  const clock = { now: T0 };
  const s = server({ maxRecentProofs: 2 }, clock);
  assert.equal(attempt(s).check.kind, "accepted");
  assert.equal(attempt(s).check.kind, "accepted");
  assert.deepEqual(refusal(attempt(s).check), [
    429,
    CloseCode.RATE_LIMITED,
    "too many recent proofs",
  ]);
  clock.now += 30_000;
  assert.equal(attempt(s).check.kind, "accepted");
  assert.equal(s.recentProofs, 1);
});

Deno.test("the client pins the hub, checks the protocol and verifies the welcome", () => {
  const s = server();
  const offer = s.issue();
  assert.deepEqual(client({ hubKey: stranger.nodeId }).prove(JSON.stringify(offer)), {
    close: { code: CloseCode.HUB_KEY_MISMATCH, reason: "hub key mismatch" },
  });
  assert.deepEqual(client().prove(JSON.stringify({ ...offer, protocol: "huskies-sync/2" })), {
    close: { code: CloseCode.INCOMPATIBLE_VERSION, reason: "incompatible protocol" },
  });
  assert.equal(
    (client().prove("x".repeat(5000)) as { close: { code: number } }).close.code,
    CloseCode.TOO_BIG,
  );
  // A welcome from another key, or signed in the in-band domain, is a bad proof.
  const c = client();
  const proof = c.prove(JSON.stringify(offer));
  assert.ok("credential" in proof);
  const fields = proof.credential.split(".");
  const parts = {
    serverChallenge: fields[2],
    clientChallenge: fields[3],
    serverKey: hub.nodeId,
    clientKey: node.nodeId,
  };
  const inBand = JSON.stringify({
    type: "welcome",
    sig: hub.sign(transcript("server", parts)).toHex(),
    scope: "write",
  });
  assert.deepEqual(c.receive(inBand), {
    close: { code: CloseCode.BAD_PROOF, reason: "bad proof" },
  });
});

Deno.test("HTTP refusals map to close codes a reconnecting client understands", async () => {
  assert.deepEqual(closeForUpgradeStatus(403).code, CloseCode.NOT_TRUSTED);
  assert.deepEqual(closeForUpgradeStatus(428).code, CloseCode.HANDSHAKE_TIMEOUT);
  assert.deepEqual(closeForUpgradeStatus(429).code, CloseCode.RATE_LIMITED);
  const response = refusalResponse({ status: 403, code: 4405, reason: "token revoked" });
  assert.equal(response.status, 403);
  assert.equal(response.headers.get(CLOSE_CODE_HEADER), "4405");
  assert.equal(await response.text(), "token revoked\n");
  assert.equal(
    challengeUrl("wss://hub.example:8443/crdt-sync?x=1").href,
    "https://hub.example:8443/crdt-sync/challenge",
  );
});

/** A minimal accepting side over real sockets, wired as the module doc shows. */
function serveHub(preauth: PreauthServer) {
  let upgrades = 0;
  const sockets: WebSocket[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (request) => {
    if (isChallengeRequest(request, "/crdt-sync")) return challengeResponse(preauth);
    const check = checkUpgradeRequest(request, preauth);
    if (check.kind === "refused") return refusalResponse(check.refusal);
    if (check.kind === "absent") {
      return new Response("in-band handshake not served here\n", { status: 426 });
    }
    upgrades++;
    const { socket, response } = Deno.upgradeWebSocket(request);
    sockets.push(socket);
    socket.onopen = () => socket.send(check.welcome);
    return response;
  });
  return {
    url: `ws://127.0.0.1:${server.addr.port}/crdt-sync`,
    upgrades: () => upgrades,
    async stop() {
      for (const socket of sockets) socket.close();
      await server.shutdown();
    },
  };
}

/** Opens the upgraded socket and resolves with the client's step for the first frame, or the error. */
function openAndReceive(url: string, headers: Record<string, string>, c: PreauthClient) {
  return new Promise<{ step?: ReturnType<PreauthClient["receive"]>; error?: string }>((resolve) => {
    const socket = new WebSocket(url, { headers });
    const timer = setTimeout(() => resolve({ error: "timeout" }), 5_000);
    socket.onmessage = (event) => {
      clearTimeout(timer);
      resolve({ step: c.receive(event.data) });
      socket.close();
    };
    socket.onerror = (event) => {
      clearTimeout(timer);
      resolve({ error: (event as ErrorEvent).message });
    };
  });
}

Deno.test("over real sockets: a trusted node pre-authenticates (header and query forms), a stranger never gets a WebSocket", async () => {
  const hubNode = serveHub(new PreauthServer({ identity: hub, authorize: closedAuthorizer() }));
  try {
    for (const form of ["header", "query"] as const) {
      const c = client();
      const upgrade = await preauthenticate(hubNode.url, c, { form });
      assert.ok("url" in upgrade, JSON.stringify(upgrade));
      assert.equal(PREAUTH_HEADER in upgrade.headers, form === "header");
      const { step, error } = await openAndReceive(upgrade.url, upgrade.headers, c);
      assert.equal(error, undefined);
      assert.deepEqual(step, { done: { peer: hub.nodeId, scope: "write" } });
    }
    assert.equal(hubNode.upgrades(), 2);

    const outsider = client({ identity: stranger });
    const upgrade = await preauthenticate(hubNode.url, outsider);
    assert.ok("url" in upgrade);
    const { error } = await openAndReceive(upgrade.url, upgrade.headers, outsider);
    assert.match(error ?? "", /403/);
    // A client that does not pre-authenticate (an in-band or hostile one) is refused too.
    const raw = await openAndReceive(hubNode.url, {}, outsider);
    assert.match(raw.error ?? "", /401/);
    assert.equal(hubNode.upgrades(), 2, "no WebSocket for an unauthenticated client");
  } finally {
    await hubNode.stop();
  }
});

Deno.test("pre-upgrade refusals carry fixed reasons only, whatever the authoriser returns", () => {
  const echoing: Authorizer = (key) => ({ ok: false, code: 4403, reason: `no ${key}` });
  assert.deepEqual(refusal(attempt(server({ authorize: echoing })).check), [
    403,
    4403,
    "not authorized",
  ]);
});

Deno.test("a server without a challenge endpoint tells the client to use the in-band handshake", async () => {
  const calls: string[] = [];
  const fakeFetch = (input: string | URL | Request) => {
    calls.push(String(input));
    return Promise.resolve(new Response("not found\n", { status: 404 }));
  };
  const result = await preauthenticate("ws://127.0.0.1:9/crdt-sync", client(), {
    fetch: fakeFetch as typeof fetch,
  });
  assert.deepEqual(result, { inBand: true });
  assert.deepEqual(calls, ["http://127.0.0.1:9/crdt-sync/challenge"]);
  const refused = await preauthenticate("ws://127.0.0.1:9/crdt-sync", client(), {
    fetch: (() => Promise.resolve(new Response("", { status: 429 }))) as typeof fetch,
  });
  assert.deepEqual(refused, {
    close: { code: CloseCode.RATE_LIMITED, reason: "too many attempts" },
  });
});
