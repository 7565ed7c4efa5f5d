/**
 * The broken peers of the conformance tests: each breaks exactly one rule,
 * and lists the cases that must FAIL against it.
 * @module
 */

import { transcript } from "../auth/proof.ts";
import { type Breakage, type Frame, json, opsOf, type } from "./conformance_proxy.ts";

/** Broken accepting peers: a node behind the proxy. */
export const BREAKAGES: Breakage[] = [
  {
    name: "welcome signed for the client role",
    cases: ["handshake.welcome"],
    fromClient(frame, link) {
      if (type(frame) === "auth") link.state.auth = json(frame);
      return [frame];
    },
    fromNode(frame, link, shared) {
      const value = json(frame);
      if (type(frame) === "challenge") link.state.challenge = value;
      if (type(frame) !== "welcome") return [frame];
      const challenge = link.state.challenge as Record<string, string>;
      const auth = link.state.auth as Record<string, string>;
      const parts = {
        serverChallenge: challenge.challenge,
        clientChallenge: auth.challenge,
        serverKey: challenge.key,
        clientKey: auth.key,
      };
      const sig = shared.identity.sign(transcript("client", parts)).toHex();
      return [JSON.stringify({ ...value, sig })];
    },
  },
  {
    name: "challenge names another protocol",
    cases: ["handshake.challenge"],
    fromNode(frame) {
      if (type(frame) !== "challenge") return [frame];
      return [JSON.stringify({ ...json(frame), protocol: "huskies-sync/2" })];
    },
  },
  {
    name: "never sends ready",
    cases: ["sync.clock-first", "sync.catch-up"],
    fromNode: (frame) => (type(frame) === "ready" ? [] : [frame]),
  },
  {
    name: "echoes operations to their sender",
    cases: ["live.no-echo"],
    fromClient(frame, link) {
      if (typeof frame !== "string") link.toClient(frame);
      return [frame];
    },
  },
  {
    name: "merges catch-up into one bulk frame over 1 MiB",
    cases: ["sync.chunked"],
    fromNode(frame, link) {
      const pending = (link.state.pending ??= []) as unknown[];
      if (type(frame) === "bulk") {
        pending.push(...(json(frame)!.ops as unknown[]));
        return [];
      }
      const out: Frame[] = pending.length > 0
        ? [JSON.stringify({ type: "bulk", ops: pending.splice(0) })]
        : [];
      return [...out, frame];
    },
  },
  {
    name: "closes an untrusted key with 4401 instead of 4403",
    cases: ["handshake.untrusted"],
    closed: true,
    closeCode: (code) => (code === 4403 ? 4401 : code),
  },
  {
    name: "closes a refused token with 4403 instead of 4405",
    cases: ["handshake.token-malformed", "handshake.token-unknown", "handshake.token-used-up"],
    closed: true,
    token: true,
    closeCode: (code) => (code === 4405 ? 4403 : code),
  },
  {
    name: "answers as if it applied operations it refused",
    cases: [
      "verify.bad-signature",
      "verify.bad-id",
      "verify.broken-chain",
      "verify.far-future-seq",
      "verify.time",
      "verify.bad-shape",
      "verify.bulk-run",
      "causal.out-of-order",
      "causal.dependency",
    ],
    fromClient(frame, link, shared) {
      for (const op of opsOf(frame)) shared.recorded.set(op.id as string, op);
      if (type(frame) === "clock") link.state.served = new Set<string>();
      return [frame];
    },
    fromNode(frame, link, shared) {
      const served = (link.state.served ??= new Set<string>()) as Set<string>;
      for (const op of opsOf(frame)) served.add(op.id as string);
      if (type(frame) !== "ready") return [frame];
      const claimed = [...shared.recorded.values()].filter((op) =>
        !served.has((op as { id: string }).id)
      );
      return [JSON.stringify({ type: "bulk", ops: claimed }), frame];
    },
  },
  {
    name: "accepts unknown live versions",
    cases: ["live.unknown-version"],
    fromClient(frame) {
      const value = json(frame);
      if (typeof frame === "string" || value?.v === 1) return [frame];
      return [new TextEncoder().encode(JSON.stringify({ ...value, v: 1 }))];
    },
  },
  {
    name: "answers a clock that accepts cbulk with bulk frames",
    cases: ["cbulk.served"],
    fromClient(frame) {
      if (type(frame) !== "clock") return [frame];
      const { accept: _accept, ...clock } = json(frame)!;
      return [JSON.stringify(clock)];
    },
  },
  {
    name: "sends cbulk frames to a clock that did not accept them",
    cases: ["cbulk.json-default"],
    fromClient(frame) {
      if (type(frame) !== "clock") return [frame];
      return [JSON.stringify({ ...json(frame), accept: ["cbulk"] })];
    },
  },
  {
    name: "lists cbulk but ignores every cbulk frame it is sent",
    cases: ["cbulk.decoded", "cbulk.malformed"],
    fromClient: (frame) => (type(frame) === "cbulk" ? [] : [frame]),
  },
  {
    name: "silently drops oversized frames",
    cases: ["sync.frame-limit"],
    fromClient: (frame) => (frame.length > 1024 * 1024 ? [] : [frame]),
  },
  {
    name: "never reaches the invalid-operation limit",
    cases: ["verify.invalid-limit"],
    fromClient(frame, link) {
      if (typeof frame === "string") return [frame];
      link.state.binary = ((link.state.binary as number) ?? 0) + 1;
      return (link.state.binary as number) > 50 ? [] : [frame];
    },
  },
  {
    name: "answers a legacy peer with operation objects",
    cases: ["legacy.bulk-first"],
    fromNode(frame) {
      if (type(frame) !== "bulk") return [frame];
      return [JSON.stringify({ type: "bulk", ops: opsOf(frame) })];
    },
  },
  {
    name: "serves catch-up in reverse order",
    cases: ["sync.catch-up", "causal.dependency", "document.read-back"],
    fromNode(frame) {
      if (type(frame) !== "bulk") return [frame];
      return [JSON.stringify({ type: "bulk", ops: opsOf(frame).reverse() })];
    },
  },
  {
    name: "drops fork proofs",
    cases: ["fork.proof-and-quarantine"],
    fromNode: (frame) => (type(frame) === "fork" ? [] : [frame]),
  },
  {
    name: "never answers ping",
    cases: ["sync.ping", "sync.unknown-type"],
    fromNode: (frame) => (type(frame) === "pong" ? [] : [frame]),
  },
  {
    name: "closes with 1000 instead of the specified code",
    cases: [
      "handshake.wrong-role",
      "handshake.bad-key",
      "handshake.replay",
      "handshake.not-json",
      "handshake.binary",
      "handshake.bad-shape",
      "handshake.unexpected-frame",
      "handshake.frame-limit",
      "handshake.timeout",
      "sync.not-json",
      "sync.malformed-clock",
    ],
    closeCode: (code) => ([1002, 1009, 4401, 4408].includes(code) ? 1000 : code),
  },
  {
    name: "closes on unknown frame types",
    cases: ["sync.unknown-type"],
    fromClient(frame, link) {
      const t = type(frame);
      if (typeof t === "string" && t.startsWith("x-")) {
        link.closeClient(1002, "protocol violation: unknown type");
        return [];
      }
      return [frame];
    },
  },
  {
    name: "answers a malformed upgrade with 500",
    cases: ["transport.bad-upgrade"],
    badUpgrade: () => new Response(null, { status: 500 }),
  },
  {
    name: "answers a plain GET with 200",
    cases: ["transport.plain-get"],
    plain: () => new Response("hello"),
  },
  {
    name: "sends other peers' deltas to a peer before its ready",
    cases: ["live.not-before-ready"],
    fromNode(frame, link, shared) {
      if (opsOf(frame).length > 0) {
        for (const other of shared.links) if (other !== link) other.toClient(frame);
      }
      return [frame];
    },
  },
  {
    name: "alters live operations",
    cases: ["live.envelope"],
    fromNode(frame) {
      const value = json(frame);
      if (typeof frame === "string" || !value?.op) return [frame];
      const op = value.op as Record<string, unknown>;
      return [new TextEncoder().encode(JSON.stringify({ v: 1, op: { ...op, time: 99 } }))];
    },
  },
  {
    name: "overstates its clock",
    cases: ["sync.resume"],
    fromNode(frame) {
      if (type(frame) !== "clock") return [frame];
      const value = json(frame)!;
      const clock = Object.fromEntries(
        Object.entries(value.clock as Record<string, number>).map(([a, n]) => [a, n + 1]),
      );
      return [JSON.stringify({ ...value, clock })];
    },
  },
];

/** Broken dialling peers: a node dials the suite's listener through the proxy. */
export const DIAL_BREAKAGES: Breakage[] = [
  {
    name: "dials with an auth signed for the server role",
    cases: ["dial.handshake"],
    fromNode(frame, link) {
      if (type(frame) === "challenge") link.state.challenge = json(frame);
      return [frame];
    },
    fromClient(frame, link, shared) {
      if (type(frame) !== "auth") return [frame];
      const auth = json(frame)!;
      const challenge = link.state.challenge as Record<string, string>;
      const parts = {
        serverChallenge: challenge.challenge,
        clientChallenge: auth.challenge as string,
        serverKey: challenge.key,
        clientKey: auth.key as string,
      };
      const sig = shared.identity.sign(transcript("server", parts)).toHex();
      return [JSON.stringify({ ...auth, sig })];
    },
  },
  {
    name: "dials and accepts a malformed challenge",
    cases: ["dial.bad-challenge"],
    fromNode(frame) {
      if (type(frame) !== "challenge") return [frame];
      const value = json(frame)!;
      return [JSON.stringify({ ...value, challenge: String(value.challenge).toLowerCase() })];
    },
  },
  {
    name: "dials and hides its refusals (4408, 4401 closed as 1000)",
    cases: ["dial.handshake-timeout", "dial.bad-welcome"],
    clientCloseCode: (code) => ([4401, 4408].includes(code) ? 1000 : code),
  },
];
