/**
 * What every case gets: the peer's URL, the suite's identity and admission,
 * bounded timeouts, and the shared sessions (the suite's own session and a
 * second identity's, when the peer admits one).
 * @module
 */

import { KeyPair } from "./wire/ed25519.ts";
import { CaseFailure, skip } from "./check.ts";
import { handshake, type Handshaken, SyncPeer } from "./peer.ts";
import { Conn } from "./wire/socket.ts";
import type { ListenServer } from "./listen.ts";

/** Options the command line and {@link runConformance} share. */
export interface ConformanceOptions {
  /** The peer's sync URL, `ws://host:port/crdt-sync`. */
  url?: string;
  /** The suite's identity. @default a fresh one */
  key?: KeyPair;
  /** Join token `hjt1.<id>.<secret>.<hub>` to get admitted with. */
  token?: string;
  /** Bound for each wait, ms. @default 5000 */
  timeoutMs?: number;
  /** Only these cases: exact ids (`sync.resume`) or areas (`handshake`). */
  only?: string[];
  /** Run the long-silence cases too. */
  slow?: boolean;
  /** A listener the peer dials (for the cases where it is the client). */
  listen?: ListenServer;
  /** Called after each case. */
  onResult?: (result: CaseResult) => void;
}

/** One case's outcome. */
export interface CaseResult {
  /** Case id. */
  id: string;
  /** Outcome. */
  status: "PASS" | "FAIL" | "SKIP";
  /** For FAIL: what the spec requires. */
  expected?: string;
  /** For FAIL: what the peer did. */
  seen?: string;
  /** For SKIP: why. */
  why?: string;
  /** How long it took, ms. */
  ms: number;
}

/** A parsed join token. */
export interface JoinToken {
  /** `<token id>.<secret>` as sent in `auth.token`. */
  wire: string;
  /** The hub key the token pins. */
  hub: string;
}

/**
 * Parses `hjt1.<16 hex>.<64 hex>.<64 hex>` (whitespace and case tolerated, §3.6).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { addJoinToken, HuskiesNode } from "@huskies/sync";
 * import { parseJoinToken } from "@huskies/sync/conformance";
 *
 * await using hub = await HuskiesNode.open({ open: false });
 * const { token } = addJoinToken(hub, { ttlMs: 60_000 });
 * const parsed = parseJoinToken(` ${token.toUpperCase()}\n`);
 * assert.equal(parsed.hub, hub.nodeId);
 * assert.ok(token.startsWith(`hjt1.${parsed.wire}`));
 * ```
 */
export function parseJoinToken(text: string): JoinToken {
  const match = /^hjt1\.([0-9a-f]{16})\.([0-9a-f]{64})\.([0-9a-f]{64})$/.exec(
    text.trim().toLowerCase(),
  );
  if (!match) {
    throw new TypeError("Cannot use join token: expected hjt1.<16 hex>.<64 hex>.<64 hex>");
  }
  return { wire: `${match[1]}.${match[2]}`, hub: match[3] };
}

/** Shared state of one run. */
export class Context {
  /** The peer's sync URL. */
  readonly url: string | undefined;
  /** The suite's identity. */
  readonly key: KeyPair;
  /** The join token, when given. */
  readonly token: JoinToken | undefined;
  /** Bound for each wait, ms. */
  readonly timeoutMs: number;
  /** Long-silence cases enabled. */
  readonly slow: boolean;
  /** Listener for dial-out cases. */
  readonly listen: ListenServer | undefined;
  /** The `--only` prefixes, when given. */
  readonly only: string[] | undefined;
  /** Connections opened to the peer. */
  connections = 0;
  #main: Promise<SyncPeer> | undefined;
  #second: Promise<SyncPeer | undefined> | undefined;
  readonly #opened: { close(): void }[] = [];

  constructor(options: ConformanceOptions) {
    this.url = options.url;
    this.key = options.key ?? KeyPair.generate();
    this.token = options.token ? parseJoinToken(options.token) : undefined;
    this.timeoutMs = options.timeoutMs ?? 5000;
    this.slow = options.slow ?? false;
    this.listen = options.listen;
    this.only = options.only;
  }

  /** True when `--only` names exactly this case. */
  onlyAsked(id: string): boolean {
    return this.only?.includes(id) ?? false;
  }

  /** The peer URL; skips the case when none was given. */
  requireUrl(): string {
    if (!this.url) skip("no peer URL given");
    return this.url;
  }

  /** Opens a raw connection to the peer (closed at the end of the run). */
  async dial(): Promise<Conn> {
    const conn = await Conn.dial(this.requireUrl(), this.timeoutMs);
    this.connections++;
    this.#opened.push(conn);
    return conn;
  }

  /** Authenticates as `key` (default: the suite's identity, with the token). */
  async handshake(key: KeyPair = this.key): Promise<Handshaken> {
    const url = this.requireUrl();
    this.connections++;
    const hs = await handshake(url, key, {
      timeoutMs: this.timeoutMs,
      token: key === this.key ? this.token?.wire : undefined,
    });
    this.#opened.push(hs.conn);
    return hs;
  }

  /** A new synced session (ready sent) as `key`. */
  async session(key: KeyPair = this.key, holdReady = false): Promise<SyncPeer> {
    const hs = await this.handshake(key);
    return await SyncPeer.start(hs, { timeoutMs: this.timeoutMs, holdReady });
  }

  /** The suite's own session (opened once). */
  main(): Promise<SyncPeer> {
    this.#main ??= this.session();
    return this.#main;
  }

  /**
   * A session of a second, throwaway identity, with `ready` held back until
   * the caller sends it; undefined when the peer refuses unknown keys
   * (4403: the mesh is closed).
   */
  secondHeld(): Promise<SyncPeer | undefined> {
    this.#second ??= (async () => {
      try {
        return await this.session(KeyPair.generate(), true);
      } catch (error) {
        if (error instanceof CaseFailure && / close 4403 /.test(` ${error.seen} `)) {
          return undefined;
        }
        throw error;
      }
    })();
    return this.#second;
  }

  /** True when the peer admits unknown keys with write scope (an open mesh). */
  async isOpen(): Promise<boolean> {
    const second = await this.secondHeld();
    return second !== undefined && second.hs.scope === "write";
  }

  /** The second identity's session, ready sent; skips when the peer is closed. */
  async second(): Promise<SyncPeer> {
    const peer = await this.secondHeld();
    if (!peer) skip(NEEDS_OPEN);
    peer.sendReady();
    return peer;
  }

  /** Skips the case unless the peer is open (the case writes as throwaway authors). */
  async requireOpen(): Promise<void> {
    if (!(await this.isOpen())) skip(NEEDS_OPEN);
  }

  /** Skips a long case unless `--slow` was given. */
  skipSlow(why = "a long-silence case"): never {
    skip(`${why}: run with --slow`);
  }

  /** Closes everything the run opened. */
  close(): void {
    for (const conn of this.#opened.splice(0)) conn.close();
  }
}

/** Why cases that write as throwaway identities skip on a closed peer. */
export const NEEDS_OPEN: string =
  "the peer refuses unknown keys (closed mesh); this case writes as throwaway identities: " +
  "run it against an open peer (huskies serve --open) or a test node with open: true";
