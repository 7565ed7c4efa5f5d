/**
 * Handshake cases (PROTOCOL.md §3): the challenge, the transcript and both
 * signatures, every close code a client can provoke, the size and time
 * limits, and replay.
 * @module
 */

import type { Case } from "../case.ts";
import type { Context } from "../context.ts";
import { brief, CaseFailure, expect, skip } from "../check.ts";
import { describe, readChallenge } from "../peer.ts";
import { randomHex, unhex, utf8 } from "../wire/bytes.ts";
import { KeyPair } from "../wire/ed25519.ts";
import {
  authMessage,
  HANDSHAKE_FRAME_LIMIT,
  HANDSHAKE_TIMEOUT_MS,
  signTranscript,
  transcript,
  verifyTranscript,
} from "../wire/handshake.ts";
import type { Conn } from "../wire/socket.ts";

const KAT = {
  serverSeed: "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
  clientSeed: "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
  serverKey: "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
  clientKey: "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
  serverChallenge: "1".repeat(64),
  clientChallenge: "2".repeat(64),
  authSig: "5645c240ccea30cbb3ed2c44268e18e67fe345eb9d245565b86b9e4475d35281" +
    "93989ec90df8192e2d22266c35ed0e7c3e6f3beeb9ab916995b4be5af4d39c00",
  welcomeSig: "a461a10c9baaf550e964b50c2f1c5f8ea35c121c000b5428930edba1f92042e3" +
    "30d5c3807a3108f7d8e34985bbd2239ba56ad8448d339b5be010668066513b0e",
};

/** The small-order identity point, which no peer may accept as a key (§3.1). */
const IDENTITY_POINT = "01" + "00".repeat(31);

/** Expects the peer to close `conn` with `code` (and a reason matching `reason`). */
export async function expectClose(
  conn: Conn,
  code: number,
  reason: RegExp | undefined,
  timeoutMs: number,
  rule: string,
): Promise<void> {
  const event = await conn.waitClose(timeoutMs);
  const wanted = `close ${code}${reason ? ` with reason ${reason}` : ""} (${rule})`;
  expect(event.kind === "close" && event.code === code, wanted, describe(event));
  if (reason && event.kind === "close") expect(reason.test(event.reason), wanted, describe(event));
}

/** Dials, reads the challenge, and returns both. */
async function opened(ctx: Context): Promise<{ conn: Conn; challenge: Record<string, unknown> }> {
  const conn = await ctx.dial();
  return { conn, challenge: await readChallenge(conn, ctx.timeoutMs) };
}

const VIOLATION = /^protocol violation: /;

/** The handshake cases. */
export const handshakeCases: Case[] = [
  {
    id: "handshake.known-answer",
    title: "§3.8 vector: the suite's transcript and signatures give the published values",
    run() {
      const server = KeyPair.fromSeed(unhex(KAT.serverSeed));
      const client = KeyPair.fromSeed(unhex(KAT.clientSeed));
      expect(server.id === KAT.serverKey, `server node id ${KAT.serverKey}`, server.id);
      expect(client.id === KAT.clientKey, `client node id ${KAT.clientKey}`, client.id);
      const parts = {
        serverChallenge: KAT.serverChallenge,
        clientChallenge: KAT.clientChallenge,
        serverKey: server.id,
        clientKey: client.id,
      };
      const text = transcript("client", parts);
      expect(utf8(text).length === 287, "a 287-byte transcript", `${utf8(text).length} bytes`);
      const auth = signTranscript(client, "client", parts);
      const welcome = signTranscript(server, "server", parts);
      expect(auth === KAT.authSig, `auth.sig ${KAT.authSig}`, auth);
      expect(welcome === KAT.welcomeSig, `welcome.sig ${KAT.welcomeSig}`, welcome);
      expect(
        verifyTranscript(server.id, "server", parts, welcome) &&
          !verifyTranscript(server.id, "client", parts, welcome),
        "the welcome signature to verify for the server role only",
        "it verifies for the client role too",
      );
      return Promise.resolve();
    },
  },
  {
    id: "handshake.challenge",
    title: "§3.3.1 the server sends a well-formed challenge at once, fresh on every connection",
    async run(ctx) {
      const main = await ctx.main();
      const { conn, challenge } = await opened(ctx);
      conn.close();
      expect(
        challenge.challenge !== main.hs.parts.serverChallenge,
        "a fresh challenge on each connection",
        `the same challenge twice: ${challenge.challenge}`,
      );
      expect(
        challenge.key === main.hs.parts.serverKey,
        `key ${main.hs.parts.serverKey} again`,
        brief(challenge.key),
      );
    },
  },
  {
    id: "handshake.welcome",
    title: '§3.3.3 welcome: sig over transcript("server") by the challenge key, scope write|read',
    async run(ctx) {
      // ctx.main() performs and checks the whole handshake.
      const main = await ctx.main();
      expect(["write", "read"].includes(main.hs.scope), "scope write or read", main.hs.scope);
    },
  },
  {
    id: "handshake.wrong-role",
    title: '§3.4 an auth signed over transcript("server") (a reflected proof) closes 4401',
    async run(ctx) {
      const { conn, challenge } = await opened(ctx);
      const key = KeyPair.generate();
      const clientChallenge = randomHex(32);
      const parts = {
        serverChallenge: challenge.challenge as string,
        clientChallenge,
        serverKey: challenge.key as string,
        clientKey: key.id,
      };
      conn.send({
        type: "auth",
        key: key.id,
        challenge: clientChallenge,
        sig: signTranscript(key, "server", parts),
      });
      await expectClose(conn, 4401, /^bad proof$/, ctx.timeoutMs, "§3.3.2 step 2");
    },
  },
  {
    id: "handshake.bad-key",
    title: "§3.1 a small-order public key (the identity point) closes 4401",
    async run(ctx) {
      const { conn } = await opened(ctx);
      conn.send({
        type: "auth",
        key: IDENTITY_POINT,
        challenge: randomHex(32),
        sig: "00".repeat(64),
      });
      await expectClose(conn, 4401, /^bad proof$/, ctx.timeoutMs, "§3.3.2 step 2");
    },
  },
  {
    id: "handshake.replay",
    title: "§3.4 a captured auth replayed on a new connection closes 4401",
    async run(ctx) {
      const main = await ctx.main();
      const { conn } = await opened(ctx);
      conn.send(main.hs.authText);
      await expectClose(
        conn,
        4401,
        /^bad proof$/,
        ctx.timeoutMs,
        "§3.4: proofs are bound to one connection",
      );
    },
  },
  {
    id: "handshake.not-json",
    title: "§3.2 a handshake frame that is not JSON closes 1002",
    async run(ctx) {
      const { conn } = await opened(ctx);
      conn.send("this is not JSON");
      await expectClose(conn, 1002, VIOLATION, ctx.timeoutMs, "§3.2");
    },
  },
  {
    id: "handshake.binary",
    title: "§3.2 a binary frame during the handshake closes 1002",
    async run(ctx) {
      const { conn } = await opened(ctx);
      conn.send(utf8(JSON.stringify({ type: "auth" })));
      await expectClose(conn, 1002, VIOLATION, ctx.timeoutMs, "§3.2");
    },
  },
  {
    id: "handshake.bad-shape",
    title: "§3.3.2 step 1 an auth key in uppercase hex closes 1002",
    async run(ctx) {
      const { conn } = await opened(ctx);
      const key = KeyPair.generate();
      conn.send({
        type: "auth",
        key: key.id.toUpperCase(),
        challenge: randomHex(32),
        sig: "ab".repeat(64),
      });
      await expectClose(
        conn,
        1002,
        VIOLATION,
        ctx.timeoutMs,
        "§3.1: uppercase is a protocol violation",
      );
    },
  },
  {
    id: "handshake.unexpected-frame",
    title: "§3.2 a sync frame instead of auth closes 1002",
    async run(ctx) {
      const { conn } = await opened(ctx);
      conn.send({ type: "clock", clock: {} });
      await expectClose(conn, 1002, VIOLATION, ctx.timeoutMs, "§3.2: a frame that is not expected");
    },
  },
  {
    id: "handshake.frame-limit",
    title: "§3.2 an auth of exactly 4096 bytes is accepted; 4097 bytes closes 1009",
    async run(ctx) {
      const padded = (challenge: Record<string, unknown>, size: number, key: KeyPair) => {
        const auth = authMessage(
          key,
          challenge.challenge as string,
          challenge.key as string,
          randomHex(32),
        );
        const base = JSON.stringify({ ...auth, pad: "" });
        return JSON.stringify({ ...auth, pad: "x".repeat(size - base.length) });
      };
      const { conn, challenge } = await opened(ctx);
      const key = ctx.key;
      conn.send(padded(challenge, HANDSHAKE_FRAME_LIMIT, key));
      const event = await conn.next(ctx.timeoutMs);
      conn.close();
      const welcomed = event.kind === "text" &&
        (event.json as { type?: string })?.type === "welcome";
      // A closed peer may refuse the suite's key, but never for the frame's size.
      const refusedForTrust = event.kind === "close" && [4403, 4405].includes(event.code);
      expect(welcomed || refusedForTrust, "a 4096-byte auth to be read (welcome)", describe(event));
      const second = await opened(ctx);
      second.conn.send(padded(second.challenge, HANDSHAKE_FRAME_LIMIT + 1, KeyPair.generate()));
      await expectClose(second.conn, 1009, /^handshake frame too big$/, ctx.timeoutMs, "§3.2");
    },
  },
  {
    id: "handshake.timeout",
    title: "§3.2 a client that never sends auth is closed 4408 after 10 s",
    async run(ctx) {
      const { conn } = await opened(ctx);
      const event = await conn.waitClose(HANDSHAKE_TIMEOUT_MS + ctx.timeoutMs);
      const elapsed = Date.now() - conn.openedAt;
      expect(
        event.kind === "close" && event.code === 4408 && /^handshake timeout$/.test(event.reason),
        'close 4408 "handshake timeout"',
        describe(event),
      );
      expect(elapsed >= HANDSHAKE_TIMEOUT_MS - 1000, "the close after about 10 s", `${elapsed} ms`);
    },
  },
  {
    id: "handshake.untrusted",
    title: "§3.5 step 4 an unknown key without a token closes 4403 (closed mesh)",
    async run(ctx) {
      if (await ctx.isOpen()) skip("the peer is open: it admits unknown keys (§3.5 step 2)");
      const hs = ctx.handshake(KeyPair.generate());
      const error = await hs.then(() => undefined, (e) => e);
      expect(error instanceof CaseFailure, 'close 4403 "key not trusted"', "a welcome");
      expect(
        /close 4403 "key not trusted"/.test(error.seen),
        'close 4403 "key not trusted"',
        error.seen,
      );
    },
  },
  {
    id: "handshake.token-malformed",
    title: "§3.6 a malformed token from an unknown key closes 4405 token malformed",
    run: (ctx) => tokenCase(ctx, "not-a-token", /^token malformed$/),
  },
  {
    id: "handshake.token-unknown",
    title: "§3.6 a well-formed token the peer never issued closes 4405 token unknown",
    run: (ctx) => tokenCase(ctx, `${randomHex(8)}.${randomHex(32)}`, /^token unknown$/),
  },
  {
    id: "handshake.token-used-up",
    title:
      "§3.6 a single-use token, once redeemed by the suite, closes 4405 token used up for another key",
    async run(ctx) {
      if (!ctx.token) skip("no --token given: this case replays the suite's single-use join token");
      if (await ctx.isOpen()) {
        skip("the peer is open: it admits unknown keys before looking at a token");
      }
      await ctx.main();
      const { conn, challenge } = await opened(ctx);
      const key = KeyPair.generate();
      conn.send(
        authMessage(
          key,
          challenge.challenge as string,
          challenge.key as string,
          randomHex(32),
          ctx.token.wire,
        ),
      );
      const event = await conn.waitClose(ctx.timeoutMs);
      if (event.kind === "timeout") {
        conn.close();
        skip("the token still has uses left (created with more than one use)");
      }
      expect(
        event.kind === "close" && event.code === 4405 &&
          /^token (used up|expired|revoked)$/.test(event.reason),
        'close 4405 "token used up" (§3.6)',
        describe(event),
      );
    },
  },
];

async function tokenCase(ctx: Context, token: string, reason: RegExp): Promise<void> {
  if (await ctx.isOpen()) {
    skip("the peer is open: it admits unknown keys before looking at a token");
  }
  const { conn, challenge } = await opened(ctx);
  const key = KeyPair.generate();
  conn.send(
    authMessage(key, challenge.challenge as string, challenge.key as string, randomHex(32), token),
  );
  await expectClose(conn, 4405, reason, ctx.timeoutMs, "§3.6");
}
