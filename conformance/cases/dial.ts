/**
 * Cases where the peer dials the suite (`--listen`, PROTOCOL.md §3 from the
 * client's side, §6.4 keepalive): its auth, its checks of our welcome, its
 * pings.
 * @module
 */

import type { Case } from "../case.ts";
import type { Context } from "../context.ts";
import { brief, expect, skip } from "../check.ts";
import { describe } from "../peer.ts";
import { isHex128, isHex64, randomHex } from "../wire/bytes.ts";
import {
  HANDSHAKE_TIMEOUT_MS,
  signTranscript,
  type TranscriptParts,
  verifyTranscript,
  welcomeMessage,
} from "../wire/handshake.ts";
import type { Conn, TextFrame } from "../wire/socket.ts";

const NO_LISTEN = "no --listen address: the peer must be configured to dial the suite";

/** How long to wait for the peer to dial (its backoff starts at 1 s). */
const DIAL_WAIT_MS = 15_000;

/** Accepts the peer's next connection, sends a challenge, reads and checks its auth. */
async function acceptAuth(
  ctx: Context,
  protocol = "huskies-sync/1",
): Promise<{ conn: Conn; parts: TranscriptParts }> {
  if (!ctx.listen) skip(NO_LISTEN);
  const conn = await ctx.listen.accept(DIAL_WAIT_MS);
  expect(
    conn,
    `the peer to dial ${ctx.listen.url} within ${DIAL_WAIT_MS / 1000} s`,
    "no connection",
  );
  const serverChallenge = randomHex(32);
  conn!.send({ type: "challenge", protocol, challenge: serverChallenge, key: ctx.key.id });
  if (protocol !== "huskies-sync/1") {
    return { conn: conn!, parts: undefined as unknown as TranscriptParts };
  }
  const event = await conn!.next(ctx.timeoutMs);
  const auth = event.kind === "text" ? (event.json as Record<string, unknown>) : undefined;
  expect(auth?.type === "auth", "an auth frame (§3.3.2)", describe(event));
  expect(
    isHex64(auth!.key) && isHex64(auth!.challenge) && isHex128(auth!.sig),
    "auth with hex64 key and challenge and hex128 sig",
    brief((event as TextFrame).text),
  );
  const parts = {
    serverChallenge,
    clientChallenge: auth!.challenge as string,
    serverKey: ctx.key.id,
    clientKey: auth!.key as string,
  };
  expect(
    auth!.challenge !== serverChallenge,
    "a client challenge of its own",
    "our challenge echoed",
  );
  expect(
    verifyTranscript(parts.clientKey, "client", parts, auth!.sig as string),
    'auth.sig valid over transcript("client") (§3.4)',
    "a signature that does not verify",
  );
  return { conn: conn!, parts };
}

/** The dial-out cases. */
export const dialCases: Case[] = [
  {
    id: "dial.handshake",
    title: "§3.3.2 a dialling peer proves its key over transcript(client) and then sends its clock",
    async run(ctx) {
      const { conn, parts } = await acceptAuth(ctx);
      conn.send(welcomeMessage(ctx.key, parts, "write"));
      const event = await conn.next(ctx.timeoutMs);
      const json = event.kind === "text" ? (event.json as Record<string, unknown>) : undefined;
      expect(json?.type === "clock", "its clock after our welcome (§6.2)", describe(event));
      conn.send({ type: "clock", clock: json!.clock });
      conn.send({ type: "ready" });
      if (ctx.slow) {
        // §6.4: a dialling side sends ping every 30 s.
        const deadline = Date.now() + 40_000;
        for (;;) {
          const next = await conn.next(Math.max(0, deadline - Date.now()));
          expect(
            next.kind === "text" || next.kind === "binary",
            'a {"type":"ping"} within 40 s (§6.4)',
            describe(next),
          );
          if (next.kind === "text" && (next.json as { type?: string })?.type === "ping") break;
        }
      }
      conn.close();
    },
  },
  {
    id: "dial.bad-challenge",
    title: "§3.3.1 check 3 a dialling peer closes 1002 on a challenge that is not hex64",
    async run(ctx) {
      if (!ctx.listen) skip(NO_LISTEN);
      const conn = await ctx.listen.accept(DIAL_WAIT_MS);
      expect(conn, `the peer to dial ${ctx.listen.url}`, "no connection");
      conn!.send({
        type: "challenge",
        protocol: "huskies-sync/1",
        challenge: randomHex(32).toUpperCase(),
        key: ctx.key.id,
      });
      const event = await conn!.waitClose(ctx.timeoutMs);
      // A client sends 1000 with "1002 <reason>" (§3.7); Conn reads that as 1002.
      expect(
        event.kind === "close" && event.code === 1002 && /^protocol violation: /.test(event.reason),
        "close 1002 protocol violation (§3.3.1)",
        describe(event),
      );
    },
  },
  {
    id: "dial.handshake-timeout",
    title: "§3.2 a dialling peer that gets no challenge gives up after 10 s with 4408",
    async run(ctx) {
      if (!ctx.listen) skip(NO_LISTEN);
      const conn = await ctx.listen.accept(DIAL_WAIT_MS);
      expect(conn, `the peer to dial ${ctx.listen.url}`, "no connection");
      const event = await conn!.waitClose(HANDSHAKE_TIMEOUT_MS + ctx.timeoutMs);
      const elapsed = Date.now() - conn!.openedAt;
      expect(
        event.kind === "close" && event.code === 4408,
        'close 4408 "handshake timeout" (§3.2)',
        describe(event),
      );
      expect(elapsed >= HANDSHAKE_TIMEOUT_MS - 1000, "the close after about 10 s", `${elapsed} ms`);
    },
  },
  {
    id: "dial.bad-welcome",
    title:
      "§3.3.3 a dialling peer closes 4401 on a welcome signed for the wrong role (then stops dialling)",
    async run(ctx) {
      const { conn, parts } = await acceptAuth(ctx);
      conn.send({ type: "welcome", sig: signTranscript(ctx.key, "client", parts), scope: "write" });
      const event = await conn.waitClose(ctx.timeoutMs);
      expect(
        event.kind === "close" && event.code === 4401,
        'close 4401 "bad proof" (§3.3.3)',
        describe(event),
      );
    },
  },
  {
    id: "dial.incompatible-protocol",
    title:
      "§3.3.1 a dialling peer closes 4426 on an unknown protocol (run alone: it stops dialling)",
    async run(ctx) {
      if (!ctx.onlyAsked("dial.incompatible-protocol")) {
        skip(
          "a second permanent refusal in one run: run it alone with --only dial.incompatible-protocol",
        );
      }
      const { conn } = await acceptAuth(ctx, "huskies-sync/999");
      const event = await conn.waitClose(ctx.timeoutMs);
      expect(
        event.kind === "close" && event.code === 4426,
        'close 4426 "incompatible protocol"',
        describe(event),
      );
    },
  },
];
