/**
 * Authentication before the upgrade (PROTOCOL.md §3.10): the challenge
 * endpoint, an upgrade with a credential answered by a signed `welcome`, and
 * the HTTP refusals (malformed, bad proof, replayed challenge), written from
 * the spec. A peer without the feature answers the challenge request with 404:
 * its cases are skipped.
 * @module
 */

import { createHmac } from "node:crypto";
import type { Case } from "../case.ts";
import type { Context } from "../context.ts";
import { expect, skip } from "../check.ts";
import { describe } from "../peer.ts";
import { hex, randomHex, unhex, utf8 } from "../wire/bytes.ts";
import { KeyPair } from "../wire/ed25519.ts";
import {
  challengeProblem,
  PREAUTH_DOMAIN,
  signTranscript,
  verifyTranscript,
} from "../wire/handshake.ts";
import { rawGet } from "../wire/http.ts";
import { credential, credentialHeaders, fetchChallenge, refusalCode } from "../wire/preauth.ts";
import { Conn } from "../wire/socket.ts";

/** The §3.10 known-answer vector (the §3.8 seeds). */
const KAT = {
  serverSeed: "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
  clientSeed: "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
  secret: "33".repeat(32),
  head: "000000006b49d21e4444444444444444",
  serverChallenge: "000000006b49d21e4444444444444444063ff206626396490e58f1c2433a92f5",
  clientChallenge: "2".repeat(64),
  credentialSig: "944b0411f2053f723efaa3d10250934ce74edb93d51c21ba8413d5e85fa8d533" +
    "21d189a4ceef60c79a6a645335e44f1473576fe71000d35049260b2980aa310d",
  welcomeSig: "2af750bbf49df696ba4732998ecaebbb66b89d351b0af0db4ef78a867c4f67aa" +
    "b200f5899cbb6b9e519834534f8e06a313fef9908d8db6d2e9557942aa0dc803",
};

/** A fresh challenge from the peer, or a skip when it has no challenge endpoint. */
async function challenge(ctx: Context): Promise<{ challenge: string; key: string }> {
  const answer = await fetchChallenge(ctx.requireUrl(), ctx.timeoutMs);
  if (answer.status === 404) skip("the peer has no §3.10 challenge endpoint (404)");
  expect(answer.status === 200, "HTTP 200 for GET /crdt-sync/challenge", `HTTP ${answer.status}`);
  const problem = challengeProblem(answer.body);
  expect(problem === undefined, "a well-formed challenge body (§3.3.1)", problem ?? "");
  const body = answer.body as { challenge: string; key: string };
  return { challenge: body.challenge, key: body.key };
}

/** Sends an upgrade with `text` as the credential; expects `status` and `code`. */
async function expectRefusal(ctx: Context, text: string, status: number, code: number) {
  ctx.connections++;
  const response = await rawGet(ctx.requireUrl(), credentialHeaders(text), ctx.timeoutMs);
  const seen = `HTTP ${response.status}, x-huskies-close ${
    response.headers.get("x-huskies-close")
  }`;
  expect(
    response.status === status && refusalCode(response) === code,
    `HTTP ${status} with x-huskies-close ${code}`,
    seen,
  );
}

export const preauthCases: Case[] = [
  {
    id: "preauth.known-answer",
    title: "§3.10 vector: the challenge MAC, the credential and welcome signatures",
    run() {
      const server = KeyPair.fromSeed(unhex(KAT.serverSeed));
      const client = KeyPair.fromSeed(unhex(KAT.clientSeed));
      const mac = createHmac("sha256", unhex(KAT.secret))
        .update(utf8(`huskies-sync/preauth/challenge/v1\n${server.id}\n`))
        .update(unhex(KAT.head))
        .digest();
      const challenge = KAT.head + hex(new Uint8Array(mac).subarray(0, 16));
      expect(challenge === KAT.serverChallenge, `challenge ${KAT.serverChallenge}`, challenge);
      const made = credential(client, KAT.serverChallenge, server.id, {
        clientChallenge: KAT.clientChallenge,
      });
      const sig = made.text.split(".")[4];
      expect(sig === KAT.credentialSig, `credential sig ${KAT.credentialSig}`, sig);
      const welcome = signTranscript(server, "server", made.parts, PREAUTH_DOMAIN);
      expect(welcome === KAT.welcomeSig, `welcome.sig ${KAT.welcomeSig}`, welcome);
      return Promise.resolve();
    },
  },
  {
    id: "preauth.challenge",
    title: "§3.10 GET /crdt-sync/challenge answers 200, no-store, a fresh challenge each time",
    async run(ctx) {
      const first = await fetchChallenge(ctx.requireUrl(), ctx.timeoutMs);
      if (first.status === 404) skip("the peer has no §3.10 challenge endpoint (404)");
      expect(
        /no-store/.test(first.headers.get("cache-control") ?? ""),
        "Cache-Control: no-store",
        first.headers.get("cache-control") ?? "none",
      );
      const a = await challenge(ctx);
      const b = await challenge(ctx);
      expect(a.challenge !== b.challenge, "a fresh challenge per request", a.challenge);
    },
  },
  {
    id: "preauth.welcome",
    title: "§3.10 an upgrade with a valid credential is welcomed first, signed over preauth/v1",
    async run(ctx) {
      const { challenge: serverChallenge, key } = await challenge(ctx);
      const made = credential(ctx.key, serverChallenge, key);
      ctx.connections++;
      const conn = await Conn.dial(ctx.requireUrl(), ctx.timeoutMs, {
        "x-huskies-auth": made.text,
      });
      try {
        const event = await conn.next(ctx.timeoutMs);
        expect(event.kind === "text", "a text frame: the welcome", describe(event));
        const welcome = event.kind === "text" ? event.json as Record<string, unknown> : {};
        expect(welcome?.type === "welcome", "the first frame is welcome", describe(event));
        expect(
          verifyTranscript(key, "server", made.parts, welcome.sig as string, PREAUTH_DOMAIN),
          "welcome.sig valid over the preauth/v1 server transcript",
          String(welcome.sig),
        );
      } finally {
        conn.close();
      }
    },
  },
  {
    id: "preauth.replay",
    title: "§3.10 a credential whose challenge was already accepted gets 428 (4408)",
    async run(ctx) {
      const { challenge: serverChallenge, key } = await challenge(ctx);
      const made = credential(ctx.key, serverChallenge, key);
      ctx.connections++;
      const conn = await Conn.dial(ctx.requireUrl(), ctx.timeoutMs, {
        "x-huskies-auth": made.text,
      });
      await conn.next(ctx.timeoutMs);
      conn.close();
      await expectRefusal(ctx, made.text, 428, 4408);
    },
  },
  {
    id: "preauth.bad-proof",
    title: "§3.10 a credential signed by another key gets 401 (4401), without upgrading",
    async run(ctx) {
      const { challenge: serverChallenge, key } = await challenge(ctx);
      const made = credential(KeyPair.generate(), serverChallenge, key);
      const forged = made.text.replace(/^hpa1\.[0-9a-f]{64}/, `hpa1.${ctx.key.id}`);
      await expectRefusal(ctx, forged, 401, 4401);
    },
  },
  {
    id: "preauth.malformed",
    title: "§3.10 a malformed credential gets 400 (1002); an unknown challenge 428 (4408)",
    async run(ctx) {
      const { key } = await challenge(ctx);
      await expectRefusal(ctx, "hpa1.not-hex", 400, 1002);
      await expectRefusal(ctx, credential(ctx.key, randomHex(32), key).text, 428, 4408);
    },
  },
];
