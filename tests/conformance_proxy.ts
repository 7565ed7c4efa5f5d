/**
 * A frame-rewriting WebSocket proxy for the conformance broken-peer tests:
 * it relays between whoever dials it and an upstream, letting a
 * {@link Breakage} rewrite, drop or add frames and close codes.
 * @module
 */

import type { Identity } from "../mod.ts";

/** A WebSocket frame: text or bytes. */
export type Frame = string | Uint8Array;

/** One proxied connection. */
export interface Link {
  /** Sends a frame to the suite. */
  toClient(frame: Frame): void;
  /** Closes the suite's socket. */
  closeClient(code: number, reason: string): void;
  /** Per-connection scratch state. */
  state: Record<string, unknown>;
}

/** A peer that breaks exactly one rule. */
export interface Breakage {
  /** What is broken. */
  name: string;
  /** Cases that must FAIL against it. */
  cases: string[];
  /** The node refuses unknown keys (the suite's key is trusted). @default false */
  closed?: boolean;
  /** With `closed`: the suite is admitted by a single-use join token instead. */
  token?: boolean;
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
export interface Shared {
  identity: Identity;
  links: Set<Link>;
  recorded: Map<string, unknown>;
}

/** The JSON object in a frame, if any. */
export function json(frame: Frame): Record<string, unknown> | undefined {
  try {
    const text = typeof frame === "string" ? frame : new TextDecoder().decode(frame);
    const value = JSON.parse(text);
    return typeof value === "object" && value !== null ? value : undefined;
  } catch {
    return undefined;
  }
}

/** The `type` member of a text frame. */
export function type(frame: Frame): unknown {
  return typeof frame === "string" ? json(frame)?.type : undefined;
}

/** Operations a bulk or binary frame carries. */
export function opsOf(frame: Frame): Record<string, unknown>[] {
  const value = json(frame);
  if (typeof frame !== "string") return value?.op ? [value.op as Record<string, unknown>] : [];
  if (value?.type !== "bulk" || !Array.isArray(value.ops)) return [];
  return value.ops.map((e) => (typeof e === "string" ? JSON.parse(e) : e));
}

/**
 * A WebSocket proxy to `upstream` applying `breakage`. "Client" is whoever
 * dials the proxy, "node" whatever it forwards to.
 */
export function startProxy(upstream: string, breakage: Breakage | undefined, shared: Shared) {
  return Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (request) => {
    // Like a peer without §3.10: no challenge endpoint (it relays the in-band handshake).
    if (new URL(request.url).pathname !== "/crdt-sync") return new Response(null, { status: 404 });
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
