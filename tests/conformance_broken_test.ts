/**
 * The conformance suite catches what it claims to catch: each case runs
 * against a deliberately broken peer (a real node behind a frame-rewriting
 * proxy that breaks exactly one rule) and must FAIL there. A transparent
 * proxy over the same node passes, so the failures come from the breakage.
 *
 * Dialling peers are a node that dials the suite's listener through the
 * proxy. Not covered: the two local known-answer cases (no peer involved),
 * the --slow cases, and dial.incompatible-protocol.
 * @module
 */

import assert from "node:assert/strict";
import { crdtSyncHandler, HuskiesNode, Identity, transcript } from "../mod.ts";
import {
  CASE_LIST,
  type CaseResult,
  KeyPair,
  ListenServer,
  runConformance,
} from "../conformance/mod.ts";

type Frame = string | Uint8Array;

/** One proxied connection. */
interface Link {
  /** Sends a frame to the suite. */
  toClient(frame: Frame): void;
  /** Closes the suite's socket. */
  closeClient(code: number, reason: string): void;
  /** Per-connection scratch state. */
  state: Record<string, unknown>;
}

/** A peer that breaks exactly one rule. */
interface Breakage {
  /** What is broken. */
  name: string;
  /** Cases that must FAIL against it. */
  cases: string[];
  /** The node refuses unknown keys (the suite's key is trusted). @default false */
  closed?: boolean;
  /** Frames from the node to the suite; returns what to deliver instead. */
  fromNode?(frame: Frame, link: Link, shared: Shared): Frame[];
  /** Frames from the suite to the node; returns what to forward instead. */
  fromClient?(frame: Frame, link: Link, shared: Shared): Frame[];
  /** Rewrites the node's close code. */
  closeCode?(code: number): number;
  /** Rewrites the client's close code; undefined keeps the node's socket open. */
  clientCloseCode?(code: number): number | undefined;
  /** Answers a plain (non-upgrade) request itself. */
  plain?(): Response;
  /** Answers a malformed upgrade request itself. */
  badUpgrade?(): Response;
}

/** State shared by every connection of one proxy. */
interface Shared {
  identity: Identity;
  links: Set<Link>;
  recorded: Map<string, unknown>;
}

function json(frame: Frame): Record<string, unknown> | undefined {
  try {
    const text = typeof frame === "string" ? frame : new TextDecoder().decode(frame);
    const value = JSON.parse(text);
    return typeof value === "object" && value !== null ? value : undefined;
  } catch {
    return undefined;
  }
}

function type(frame: Frame): unknown {
  return typeof frame === "string" ? json(frame)?.type : undefined;
}

/** Operations a bulk or binary frame carries. */
function opsOf(frame: Frame): Record<string, unknown>[] {
  const value = json(frame);
  if (typeof frame !== "string") return value?.op ? [value.op as Record<string, unknown>] : [];
  if (value?.type !== "bulk" || !Array.isArray(value.ops)) return [];
  return value.ops.map((e) => (typeof e === "string" ? JSON.parse(e) : e));
}

const BREAKAGES: Breakage[] = [
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
    cases: ["handshake.token-malformed", "handshake.token-unknown"],
    closed: true,
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

/**
 * A WebSocket proxy to `upstream` applying `breakage`. "Client" is whoever
 * dials the proxy, "node" whatever it forwards to.
 */
function startProxy(upstream: string, breakage: Breakage | undefined, shared: Shared) {
  return Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (request) => {
    if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
      if (breakage?.plain) return breakage.plain();
      const answer = await fetch(upstream.replace(/^ws/, "http"));
      await answer.body?.cancel();
      return new Response(null, { status: answer.status });
    }
    let upgraded;
    try {
      upgraded = Deno.upgradeWebSocket(request);
    } catch {
      return breakage?.badUpgrade?.() ?? new Response(null, { status: 400 });
    }
    const { socket: client, response } = upgraded;
    const toNode = new WebSocket(upstream);
    client.binaryType = toNode.binaryType = "arraybuffer";
    const early: Frame[] = [];
    const link: Link = {
      toClient: (frame) => client.readyState === WebSocket.OPEN && client.send(frame),
      closeClient: (code, reason) => client.close(code, reason),
      state: {},
    };
    shared.links.add(link);
    const frameOf = (data: unknown): Frame =>
      typeof data === "string" ? data : new Uint8Array(data as ArrayBuffer);
    const forward = (frame: Frame) => {
      for (const out of breakage?.fromClient?.(frame, link, shared) ?? [frame]) {
        if (toNode.readyState === WebSocket.OPEN) toNode.send(out);
        else early.push(out);
      }
    };
    client.onmessage = (event) => forward(frameOf(event.data));
    toNode.onopen = () => {
      for (const frame of early.splice(0)) toNode.send(frame);
    };
    toNode.onmessage = (event) => {
      const frame = frameOf(event.data);
      for (const out of breakage?.fromNode?.(frame, link, shared) ?? [frame]) link.toClient(out);
    };
    toNode.onclose = (event) => {
      shared.links.delete(link);
      const code = breakage?.closeCode?.(event.code) ?? event.code;
      try {
        if (code >= 1000 && code !== 1005 && code !== 1006) client.close(code, event.reason);
        else client.close();
      } catch {
        // Already closed.
      }
    };
    client.onclose = (event) => {
      shared.links.delete(link);
      // A client-side socket may send only 1000 and 3000-4999.
      const code = breakage?.clientCloseCode?.(event.code) ?? event.code;
      if (code === undefined) return;
      try {
        if (code === 1000 || (code >= 3000 && code <= 4999)) toNode.close(code, event.reason);
        else toNode.close();
      } catch {
        // Already closed.
      }
    };
    return response;
  });
}

/** A running node behind a proxy applying `breakage`. */
async function brokenPeer(breakage: Breakage | undefined, suiteKey: KeyPair) {
  const identity = Identity.generate();
  const node = await HuskiesNode.open({
    identity,
    open: !breakage?.closed,
    trustedKeys: breakage?.closed ? [suiteKey.id] : [],
    admission: { attemptsPerMinutePerAddress: 10_000 },
  });
  const nodeServer = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    crdtSyncHandler(node),
  );
  const upstream = `ws://127.0.0.1:${nodeServer.addr.port}/crdt-sync`;
  const proxy = startProxy(upstream, breakage, { identity, links: new Set(), recorded: new Map() });
  return {
    url: `ws://127.0.0.1:${proxy.addr.port}/crdt-sync`,
    async close() {
      await proxy.shutdown();
      await nodeServer.shutdown();
      await node.close();
    },
  };
}

async function run(breakage: Breakage | undefined, only?: string[]): Promise<CaseResult[]> {
  const key = KeyPair.generate();
  const peer = await brokenPeer(breakage, key);
  try {
    // The transparent run waits longer: a slow CI machine must not fail it.
    const timeoutMs = breakage ? 2000 : 5000;
    const report = await runConformance({ url: peer.url, key, only, timeoutMs });
    return report.results;
  } finally {
    await peer.close();
  }
}

Deno.test("conformance: a transparent proxy over a node passes every case it runs", async () => {
  const results = await run(
    undefined,
    CASE_LIST.map((c) => c.id).filter((id) => id !== "handshake.timeout"),
  );
  const failed = results.filter((r) => r.status === "FAIL");
  assert.deepEqual(failed, [], "no case may fail through the proxy alone");
  assert.ok(results.filter((r) => r.status === "PASS").length >= 30);
});

for (const breakage of BREAKAGES) {
  Deno.test(`conformance catches a peer that ${breakage.name}`, async () => {
    const results = await run(breakage, breakage.cases);
    for (const id of breakage.cases) {
      const result = results.find((r) => r.id === id);
      assert.equal(result?.status, "FAIL", `${id} must fail: ${JSON.stringify(result)}`);
    }
  });
}

/** Broken dialling peers: a node dials the suite's listener through the proxy. */
const DIAL_BREAKAGES: Breakage[] = [
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

for (const breakage of DIAL_BREAKAGES) {
  Deno.test(`conformance catches a dialling peer that ${breakage.name}`, async () => {
    const key = KeyPair.generate();
    const listen = await ListenServer.start("127.0.0.1:0");
    const identity = Identity.generate();
    const proxy = startProxy(listen.url, breakage, {
      identity,
      links: new Set(),
      recorded: new Map(),
    });
    const node = await HuskiesNode.open({ identity, open: true });
    try {
      node.connect(`ws://127.0.0.1:${proxy.addr.port}/crdt-sync`);
      const report = await runConformance({ key, only: breakage.cases, listen, timeoutMs: 2000 });
      for (const id of breakage.cases) {
        const result = report.results.find((r) => r.id === id);
        assert.equal(result?.status, "FAIL", `${id} must fail: ${JSON.stringify(result)}`);
      }
    } finally {
      await node.close();
      await proxy.shutdown();
      await listen.close();
    }
  });
}

Deno.test("conformance: every peer-facing case is caught by some broken peer", () => {
  const caught = new Set([...BREAKAGES, ...DIAL_BREAKAGES].flatMap((b) => b.cases));
  const notPeerFacing = [
    "handshake.known-answer",
    "document.known-answer",
    "sync.slow-silence",
    "transport.admission-limit",
    "dial.incompatible-protocol",
  ];
  const missing = CASE_LIST.map((c) => c.id).filter((id) =>
    !caught.has(id) && !notPeerFacing.includes(id)
  );
  assert.deepEqual(missing, []);
});
