/**
 * Join tokens: bearer secrets that let a new node in once (or a few times).
 *
 * A token reads `hjt1.<token id: 16 hex>.<secret: 64 hex>.<hub node id: 64 hex>`.
 * The joining node presents only `<token id>.<secret>` in the handshake and
 * pins the hub's key to the hub node id. The hub keeps, per token, only the
 * SHA-256 of the secret (in `<dataDir>/tokens.json`, mode 0600, written
 * atomically), its scope, expiry, remaining uses and a revoked flag.
 *
 * @example Create a token on the hub, redeem it when the new node connects
 * ```ts
 * import { parseJoinToken, parseTtl, TokenStore } from "./tokens.ts";
 * import { Identity } from "../crdt/identity.ts";
 * const hub = Identity.generate();
 * const tokens = TokenStore.memory();
 * const { token } = tokens.create({ ttlMs: parseTtl("1h") }, hub.nodeId);
 * const { id, secret } = parseJoinToken(token);
 * tokens.redeem(`${id}.${secret}`); // { ok: true, scope: "write" }
 * tokens.redeem(`${id}.${secret}`); // { ok: false, reason: "used" }
 * ```
 * @module
 */
import { TOKEN_FILE_NAME } from "../data_dir.ts";
import { Buffer } from "node:buffer";
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { fromHex, isHex64, toHex } from "../protocol/bytes.ts";
import { publicKeyProblem } from "../crdt/identity.ts";
import {
  ensureDirSync,
  type FileVersion,
  fileVersionSync,
  joinPath,
  loadDataFile,
  parseVersionedList,
  sameVersion,
  withFileLockSync,
  writePrivateFileSync,
} from "./files.ts";
import { isScope, type Scope } from "./trust.ts";

/** Prefix (and format version) of a join token. */
export const JOIN_TOKEN_PREFIX = "hjt1";

/** Version number written in (and required of) the token file. */
export const TOKEN_FILE_VERSION = 1;

const HEX16 = /^[0-9a-f]{16}$/;

/** The parts of a join token. */
export interface JoinToken {
  /** Token id: 16 lowercase hex. */
  id: string;
  /** Secret: 64 lowercase hex (32 bytes). */
  secret: string;
  /** The hub's node id, which the joining node pins. */
  hubKey: string;
}

/** Formats a join token string (pure). */
export function formatJoinToken(token: JoinToken): string {
  return `${JOIN_TOKEN_PREFIX}.${token.id}.${token.secret}.${token.hubKey}`;
}

/**
 * Parses a join token string (surrounding whitespace and letter case are
 * ignored). The error names the problem and never echoes the secret.
 * @throws {TypeError} the text is not a valid join token.
 */
export function parseJoinToken(text: string): JoinToken {
  if (typeof text !== "string") throw new TypeError("Cannot parse join token: it must be a string");
  const parts = text.trim().toLowerCase().split(".");
  if (parts[0] !== JOIN_TOKEN_PREFIX) {
    throw new TypeError(`Cannot parse join token: it must start with "${JOIN_TOKEN_PREFIX}."`);
  }
  if (parts.length !== 4) {
    throw new TypeError(
      "Cannot parse join token: expected 4 dot-separated parts (hjt1.<id>.<secret>.<hub node id>)",
    );
  }
  const [, id, secret, hubKey] = parts;
  if (!HEX16.test(id)) {
    throw new TypeError("Cannot parse join token: token id must be 16 hex characters");
  }
  if (!isHex64(secret)) {
    throw new TypeError("Cannot parse join token: secret must be 64 hex characters");
  }
  if (!isHex64(hubKey)) {
    throw new TypeError("Cannot parse join token: hub node id must be 64 hex characters");
  }
  const problem = publicKeyProblem(fromHex(hubKey));
  if (problem) throw new TypeError(`Cannot parse join token: hub node id: ${problem}`);
  return { id, secret, hubKey };
}

/** The part of a join token sent in the handshake: `<token id>.<secret>` (pure). */
export function presentedToken(token: JoinToken): string {
  return `${token.id}.${token.secret}`;
}

/** Splits a presented `<token id>.<secret>` (strict lowercase hex), or `undefined`. */
export function parsePresentedToken(text: string): { id: string; secret: string } | undefined {
  if (typeof text !== "string" || text.length !== 16 + 1 + 64) return undefined;
  const id = text.slice(0, 16);
  const secret = text.slice(17);
  if (text[16] !== "." || !HEX16.test(id) || !isHex64(secret)) return undefined;
  return { id, secret };
}

const TTL = /^(\d+)([smhd])$/;
const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/**
 * Parses a time-to-live such as `90s`, `30m`, `1h` or `7d` into ms (pure).
 * @throws {SyntaxError} the text is not a whole number followed by s, m, h or d.
 * @throws {RangeError} the duration is zero or too large.
 */
export function parseTtl(text: string): number {
  const match = typeof text === "string" ? TTL.exec(text.trim()) : null;
  if (!match) {
    throw new SyntaxError(
      `Cannot parse TTL "${text}": expected a whole number followed by s, m, h or d (e.g. 30m, 1h, 7d)`,
    );
  }
  const amount = Number(match[1]);
  const ms = amount * UNIT_MS[match[2]];
  if (amount === 0) {
    throw new RangeError(`Cannot parse TTL "${text}": it must be greater than zero`);
  }
  if (!Number.isSafeInteger(ms)) {
    throw new RangeError(`Cannot parse TTL "${text}": it is too large`);
  }
  return ms;
}

/** Why a presented token was refused. */
export type RedeemFailure = "unknown" | "expired" | "used" | "revoked" | "malformed";

/** Result of {@link TokenStore.redeem}. */
export type RedeemResult = { ok: true; scope: Scope } | { ok: false; reason: RedeemFailure };

/** Options for {@link TokenStore.create}. */
export interface CreateTokenOptions {
  /** How long the token is valid, in ms; `null` for no expiry. */
  ttlMs: number | null;
  /** How many times it can be redeemed. @default {1} */
  uses?: number;
  /** Scope the joining key is trusted with. @default {"write"} */
  scope?: Scope;
  /** Free-form note shown by {@link TokenStore.list}. */
  label?: string;
}

/** Result of {@link TokenStore.create}. */
export interface CreatedToken {
  /** The full join token to hand to the new node. Shown once; never stored. */
  token: string;
  /** The token id (for `list` and `revoke`). */
  id: string;
  /** Expiry in ms since the epoch, or `null`. */
  expiresAt: number | null;
}

/** A token as {@link TokenStore.list} shows it: no secret, no hash. */
export interface TokenInfo {
  /** Token id. */
  id: string;
  /** Scope a redeeming key gets. */
  scope: Scope;
  /** Creation time, ms since the epoch. */
  createdAt: number;
  /** Expiry, ms since the epoch, or `null`. */
  expiresAt: number | null;
  /** Redemptions left. */
  usesLeft: number;
  /** True once revoked. */
  revoked: boolean;
  /** The note given at creation. */
  label?: string;
  /** Whether it can still be redeemed, and if not why. */
  status: "active" | "expired" | "used" | "revoked";
}

/** Options for {@link TokenStore.open} and {@link TokenStore.memory}. */
export interface TokenStoreOptions {
  /** Clock. @default {Date.now} */
  now?: () => number;
  /** Source of random bytes. @default {node:crypto randomBytes} */
  random?: (n: number) => Uint8Array;
}

/** One entry of the token file, as stored (the secret itself is never stored). */
export interface TokenRecord {
  /** Token id, 16 hex. */
  id: string;
  /** SHA-256 of the 32 secret bytes, 64 hex. */
  hash: string;
  /** Scope a redeeming key gets. */
  scope: Scope;
  /** Creation time, ms since the epoch. */
  created_at: number;
  /** Expiry, ms since the epoch, or null. */
  expires_at: number | null;
  /** Redemptions left. */
  uses_left: number;
  /** True once revoked. */
  revoked: boolean;
  /** Optional note. */
  label?: string;
}

function isTime(value: unknown): value is number {
  return typeof value === "number" && Number.isFinite(value);
}

/** Parses token file text (pure); throws `SyntaxError` describing the problem. */
export function parseTokenFile(text: string): Map<string, TokenRecord> {
  const list = parseVersionedList(text, TOKEN_FILE_VERSION, "tokens");
  const tokens = new Map<string, TokenRecord>();
  list.forEach((item: unknown, i: number) => {
    if (typeof item !== "object" || item === null) {
      throw new SyntaxError(`tokens[${i}] must be an object`);
    }
    const t = item as Record<string, unknown>;
    if (typeof t.id !== "string" || !HEX16.test(t.id)) {
      throw new SyntaxError(`tokens[${i}].id must be 16 hex characters`);
    }
    if (!isHex64(t.hash)) throw new SyntaxError(`tokens[${i}].hash must be 64 hex characters`);
    if (!isScope(t.scope)) throw new SyntaxError(`tokens[${i}].scope must be "write" or "read"`);
    if (!isTime(t.created_at)) throw new SyntaxError(`tokens[${i}].created_at must be a number`);
    if (t.expires_at !== null && !isTime(t.expires_at)) {
      throw new SyntaxError(`tokens[${i}].expires_at must be a number or null`);
    }
    if (!Number.isSafeInteger(t.uses_left) || (t.uses_left as number) < 0) {
      throw new SyntaxError(`tokens[${i}].uses_left must be a whole number >= 0`);
    }
    if (typeof t.revoked !== "boolean") {
      throw new SyntaxError(`tokens[${i}].revoked must be a boolean`);
    }
    if (t.label !== undefined && typeof t.label !== "string") {
      throw new SyntaxError(`tokens[${i}].label must be a string`);
    }
    const token: TokenRecord = {
      id: t.id,
      hash: t.hash,
      scope: t.scope,
      created_at: t.created_at,
      expires_at: t.expires_at as number | null,
      uses_left: t.uses_left as number,
      revoked: t.revoked,
    };
    if (t.label !== undefined) token.label = t.label as string;
    tokens.set(token.id, token);
  });
  return tokens;
}

/** Encodes tokens as token file text (pure). */
export function encodeTokenFile(tokens: Iterable<TokenRecord>): string {
  const list = [...tokens].map((t) => {
    const out: TokenRecord = {
      id: t.id,
      hash: t.hash,
      scope: t.scope,
      created_at: t.created_at,
      expires_at: t.expires_at,
      uses_left: t.uses_left,
      revoked: t.revoked,
    };
    if (t.label !== undefined) out.label = t.label;
    return out;
  });
  return JSON.stringify({ version: TOKEN_FILE_VERSION, tokens: list }, null, 2) + "\n";
}

/** SHA-256 of the 32 secret bytes, as lowercase hex (pure). */
export function hashTokenSecret(secretHex: string): string {
  return createHash("sha256").update(fromHex(secretHex)).digest("hex");
}

function statusOf(t: TokenRecord, now: number): TokenInfo["status"] {
  if (t.revoked) return "revoked";
  if (t.expires_at !== null && now >= t.expires_at) return "expired";
  if (t.uses_left <= 0) return "used";
  return "active";
}

/**
 * Checks a presented token against the stored tokens (pure apart from
 * decrementing `uses_left` on success). The secret is compared by hash in
 * constant time, before any state of the token is revealed: a wrong secret
 * for a real id reads as `unknown`.
 */
export function checkPresentedToken(
  tokens: Map<string, TokenRecord>,
  presented: string,
  now: number,
): RedeemResult {
  const parsed = parsePresentedToken(presented);
  if (!parsed) return { ok: false, reason: "malformed" };
  const stored = tokens.get(parsed.id);
  const expected = Buffer.from(stored?.hash ?? "0".repeat(64), "hex");
  const actual = Buffer.from(hashTokenSecret(parsed.secret), "hex");
  const match = timingSafeEqual(expected, actual);
  if (!stored || !match) return { ok: false, reason: "unknown" };
  const status = statusOf(stored, now);
  if (status !== "active") return { ok: false, reason: status };
  stored.uses_left -= 1;
  return { ok: true, scope: stored.scope };
}

/**
 * Join tokens of a hub: persisted in `<dataDir>/tokens.json`, or in memory.
 * A node's tokens are `node.tokens`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { HuskiesNode } from "@huskies/sync";
 *
 * await using hub = await HuskiesNode.open({ open: false });
 * const created = hub.tokens.create({ ttlMs: 60_000, uses: 1, label: "new laptop" }, hub.nodeId);
 * assert.equal(hub.tokens.list()[0].label, "new laptop");
 * assert.equal(hub.tokens.revoke(created.id), true);
 * assert.equal(hub.tokens.list()[0].status, "revoked");
 * ```
 */
export class TokenStore {
  readonly #dir: string | null;
  readonly #path: string | null;
  readonly #now: () => number;
  readonly #random: (n: number) => Uint8Array;
  #tokens = new Map<string, TokenRecord>();
  #version: FileVersion | null = null;

  private constructor(dir: string | null, options: TokenStoreOptions) {
    this.#dir = dir;
    this.#path = dir === null ? null : joinPath(dir, TOKEN_FILE_NAME);
    this.#now = options.now ?? Date.now;
    this.#random = options.random ?? ((n) => new Uint8Array(randomBytes(n)));
  }

  /**
   * Opens `<dataDir>/tokens.json` (a missing file means no tokens; it is
   * created by the first {@link TokenStore.create}).
   * @throws {Error} the file is unreadable, corrupt, or writable by others.
   * @ignore
   */
  static open(dataDir: string, options: TokenStoreOptions = {}): TokenStore {
    const store = new TokenStore(dataDir, options);
    store.#load(true);
    return store;
  }

  /**
   * An in-memory token store (nothing is persisted).
   * @ignore
   */
  static memory(options: TokenStoreOptions = {}): TokenStore {
    return new TokenStore(null, options);
  }

  /** The token file, or `null` for an in-memory store. */
  get path(): string | null {
    return this.#path;
  }

  #load(force = false): void {
    if (this.#path === null) return;
    if (!force && sameVersion(this.#version, fileVersionSync(this.#path))) return;
    const loaded = loadDataFile(this.#path, "token file", parseTokenFile, { noFollow: true });
    this.#tokens = loaded?.value ?? new Map();
    this.#version = loaded?.version ?? null;
  }

  /** Runs `fn` on fresh tokens under the file lock; persists when it returns dirty. */
  #update<T>(fn: (tokens: Map<string, TokenRecord>) => { result: T; dirty: boolean }): T {
    if (this.#path === null || this.#dir === null) return fn(this.#tokens).result;
    const path = this.#path;
    ensureDirSync(this.#dir);
    return withFileLockSync(path, () => {
      this.#load();
      // Work on a copy so a failed write leaves memory matching the file.
      const copy = new Map([...this.#tokens].map(([id, t]) => [id, { ...t }]));
      const outcome = fn(copy);
      if (outcome.dirty) {
        writePrivateFileSync(path, encodeTokenFile(copy.values()));
        this.#tokens = copy;
        this.#version = fileVersionSync(path);
      }
      return outcome.result;
    });
  }

  /**
   * Creates a token for joining the hub `hubNodeId` and persists its hash.
   * The returned token string is the only copy of the secret.
   * @throws {TypeError|RangeError} invalid options or hub node id.
   */
  create(options: CreateTokenOptions, hubNodeId: string): CreatedToken {
    const { ttlMs, uses = 1, scope = "write", label } = options;
    if (ttlMs !== null && !(Number.isSafeInteger(ttlMs) && ttlMs > 0)) {
      throw new RangeError("Cannot create token: ttlMs must be a positive whole number or null");
    }
    if (!Number.isSafeInteger(uses) || uses < 1) {
      throw new RangeError("Cannot create token: uses must be a whole number >= 1");
    }
    if (!isScope(scope)) {
      throw new TypeError('Cannot create token: scope must be "write" or "read"');
    }
    if (label !== undefined && typeof label !== "string") {
      throw new TypeError("Cannot create token: label must be a string");
    }
    if (!isHex64(hubNodeId) || publicKeyProblem(fromHex(hubNodeId))) {
      throw new TypeError("Cannot create token: hub node id must be a valid 64-hex node id");
    }
    const secret = toHex(this.#random(32));
    const now = this.#now();
    const expiresAt = ttlMs === null ? null : now + ttlMs;
    const id = this.#update((tokens) => {
      let tokenId = toHex(this.#random(8));
      while (tokens.has(tokenId)) tokenId = toHex(this.#random(8));
      const stored: TokenRecord = {
        id: tokenId,
        hash: hashTokenSecret(secret),
        scope,
        created_at: now,
        expires_at: expiresAt,
        uses_left: uses,
        revoked: false,
      };
      if (label !== undefined) stored.label = label;
      tokens.set(tokenId, stored);
      return { result: tokenId, dirty: true };
    });
    return { token: formatJoinToken({ id, secret, hubKey: hubNodeId }), id, expiresAt };
  }

  /** All tokens, oldest first, without secrets or hashes. */
  list(now: number = this.#now()): TokenInfo[] {
    this.#load();
    return [...this.#tokens.values()]
      .sort((a, b) => a.created_at - b.created_at)
      .map((t) => {
        const info: TokenInfo = {
          id: t.id,
          scope: t.scope,
          createdAt: t.created_at,
          expiresAt: t.expires_at,
          usesLeft: t.uses_left,
          revoked: t.revoked,
          status: statusOf(t, now),
        };
        if (t.label !== undefined) info.label = t.label;
        return info;
      });
  }

  /** Revokes token `id`; returns false when there is no such token. */
  revoke(id: string): boolean {
    return this.#update((tokens) => {
      const token = tokens.get(id);
      if (!token) return { result: false, dirty: false };
      if (token.revoked) return { result: true, dirty: false };
      token.revoked = true;
      return { result: true, dirty: true };
    });
  }

  /** Deletes tokens that can no longer be redeemed; returns how many. */
  prune(now: number = this.#now()): number {
    return this.#update((tokens) => {
      let removed = 0;
      for (const [id, token] of tokens) {
        if (statusOf(token, now) !== "active") {
          tokens.delete(id);
          removed++;
        }
      }
      return { result: removed, dirty: removed > 0 };
    });
  }

  /**
   * Redeems a presented `<token id>.<secret>`: rereads the file if it
   * changed, checks the secret in constant time, and on success decrements
   * the remaining uses and persists that before returning `ok`. The node
   * calls it during the handshake; not part of the public API.
   * @ignore
   */
  redeem(presented: string, now: number = this.#now()): RedeemResult {
    if (!parsePresentedToken(presented)) return { ok: false, reason: "malformed" };
    return this.#update((tokens) => {
      const result = checkPresentedToken(tokens, presented, now);
      return { result, dirty: result.ok };
    });
  }
}
