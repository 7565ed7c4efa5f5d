/**
 * Trusted keys with scopes, and the access policy built on them.
 *
 * - `write`: the key may connect and sync, and operations it authors are accepted.
 * - `read`: the key may connect and receive, but operations it authors are refused.
 *
 * Operations are authorised by their author key, not by the connection that
 * carried them. Keys live in `<dataDir>/trust.json` (managed by the CLI, mode
 * 0600, written atomically) plus optional `trusted_keys` from `project.toml`,
 * which get write scope. A running node picks up CLI changes with
 * {@link TrustStore.watch}.
 *
 * @example An in-memory trust list and a closed-mesh policy
 * ```ts
 * import { AccessPolicy, TrustStore } from "./trust.ts";
 * import { Identity } from "../crdt/identity.ts";
 * const alice = Identity.generate().nodeId;
 * const trust = TrustStore.memory([{ key: alice, scope: "read" }]);
 * const policy = new AccessPolicy(trust, { open: false });
 * policy.connectScope(alice); // "read"
 * policy.mayAuthor(alice); // false
 * ```
 * @module
 */
import { TRUST_FILE_NAME } from "../data_dir.ts";
import { fromHex, isHex64 } from "../protocol/bytes.ts";
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

export { DataFileError } from "./files.ts";

/** What a trusted key may do: `write` (sync and author) or `read` (sync only). */
export type Scope = "write" | "read";

/** True when `value` is a {@link Scope}. */
export function isScope(value: unknown): value is Scope {
  return value === "write" || value === "read";
}

/** Version number written in (and required of) the trust file. */
export const TRUST_FILE_VERSION = 1;

/** Most bytes of a key label. */
export const MAX_LABEL_LENGTH = 200;

/** One trusted key. */
export interface TrustEntry {
  /** The node id (64 lowercase hex). */
  key: string;
  /** What the key may do. */
  scope: Scope;
  /** Free-form note, e.g. the host name. */
  label?: string;
  /** When the key was added (ms since the epoch); absent for config keys. */
  addedAt?: number;
  /** Where the entry comes from: the trust file (or memory), or `trusted_keys` in the config. */
  source: "store" | "config";
}

/** What changed in the effective trust list. */
export interface TrustChange {
  /** Keys newly trusted. */
  added: string[];
  /** Keys that were trusted and no longer are. */
  removed: string[];
  /** Keys still trusted whose scope changed. */
  changed: string[];
}

/** Options for {@link TrustStore.open}. */
export interface TrustStoreOptions {
  /** `trusted_keys` from the config; they get write scope. @default {[]} */
  configKeys?: readonly string[];
  /** Clock for `addedAt`. @default {Date.now} */
  now?: () => number;
}

/** Options for {@link TrustStore.watch}. */
export interface TrustWatchOptions {
  /** Stops watching when aborted. */
  signal?: AbortSignal;
  /** Poll interval in ms. @default {500} */
  intervalMs?: number;
  /** Called when rereading the file fails (the previous list stays in force). */
  onError?: (error: Error) => void;
}

/**
 * Returns `undefined` when `key` is an acceptable node key (64 lowercase hex,
 * a canonical point not of small order), otherwise the problem.
 */
export function trustKeyProblem(key: unknown): string | undefined {
  if (!isHex64(key)) return "key must be 64 lowercase hex characters";
  return publicKeyProblem(fromHex(key));
}

function checkKey(key: unknown, action: string): asserts key is string {
  const problem = trustKeyProblem(key);
  if (problem) throw new TypeError(`Cannot ${action}: ${problem}`);
}

/** One entry of the trust file, as stored. */
export interface TrustFileEntry {
  /** The node id. */
  key: string;
  /** Its scope. */
  scope: Scope;
  /** Optional note. */
  label?: string;
  /** When it was added, ms since the epoch. */
  added_at: number;
}

/** Parses trust file text (pure); throws `SyntaxError` describing the problem. */
export function parseTrustFile(text: string): Map<string, TrustFileEntry> {
  const list = parseVersionedList(text, TRUST_FILE_VERSION, "keys");
  const entries = new Map<string, TrustFileEntry>();
  list.forEach((item: unknown, index: number) => {
    if (typeof item !== "object" || item === null) {
      throw new SyntaxError(`keys[${index}] must be an object`);
    }
    const e = item as Record<string, unknown>;
    const problem = trustKeyProblem(e.key);
    if (problem) throw new SyntaxError(`keys[${index}].key: ${problem}`);
    if (!isScope(e.scope)) throw new SyntaxError(`keys[${index}].scope must be "write" or "read"`);
    if (e.label !== undefined && typeof e.label !== "string") {
      throw new SyntaxError(`keys[${index}].label must be a string`);
    }
    if (typeof e.added_at !== "number" || !Number.isFinite(e.added_at)) {
      throw new SyntaxError(`keys[${index}].added_at must be a number`);
    }
    const entry: TrustFileEntry = { key: e.key as string, scope: e.scope, added_at: e.added_at };
    if (e.label !== undefined) entry.label = e.label as string;
    entries.set(entry.key, entry);
  });
  return entries;
}

/** Encodes entries as trust file text (pure), sorted by key for stable diffs. */
export function encodeTrustFile(entries: Iterable<TrustFileEntry>): string {
  const keys = [...entries].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
    .map((e) => {
      const out: TrustFileEntry = { key: e.key, scope: e.scope, added_at: e.added_at };
      if (e.label !== undefined) out.label = e.label;
      return out;
    });
  return JSON.stringify({ version: TRUST_FILE_VERSION, keys }, null, 2) + "\n";
}

function checkLabel(label: unknown, action: string): void {
  if (label === undefined) return;
  if (typeof label !== "string") throw new TypeError(`Cannot ${action}: label must be a string`);
  if (label.length > MAX_LABEL_LENGTH) {
    throw new TypeError(`Cannot ${action}: label is longer than ${MAX_LABEL_LENGTH} characters`);
  }
}

/**
 * The trusted keys of a node: a persistent list in `<dataDir>/trust.json`
 * (or in memory) plus read-only keys from the config.
 *
 * When a key is both in the store and in the config, the store's entry
 * (and scope) wins; {@link TrustStore.remove} cannot remove a config key.
 * A node's list is `node.trust`; `node.trust.add(id, scope)` is the way to
 * trust a key (a running node sees the change at once).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { HuskiesNode, Identity } from "@huskies/sync";
 *
 * await using node = await HuskiesNode.open({ open: false });
 * const peer = Identity.generate().nodeId;
 * node.trust.add(peer, "read", "laptop");
 * assert.equal(node.trust.scopeOf(peer), "read");
 * assert.equal(node.trust.list()[0].label, "laptop");
 * assert.equal(node.trust.remove(peer), true);
 * assert.equal(node.trust.scopeOf(peer), undefined);
 * ```
 */
export class TrustStore {
  readonly #dir: string | null;
  readonly #path: string | null;
  readonly #config: Map<string, TrustEntry>;
  readonly #now: () => number;
  #entries = new Map<string, TrustFileEntry>();
  #version: FileVersion | null = null;
  readonly #listeners = new Set<(change: TrustChange) => void>();

  private constructor(dir: string | null, configKeys: readonly string[], now: () => number) {
    this.#dir = dir;
    this.#path = dir === null ? null : joinPath(dir, TRUST_FILE_NAME);
    this.#now = now;
    this.#config = new Map();
    configKeys.forEach((key, index) => {
      const problem = trustKeyProblem(key);
      if (problem) {
        throw new TypeError(`Cannot open trust store: trusted_keys[${index}]: ${problem}`);
      }
      this.#config.set(key, { key, scope: "write", source: "config" });
    });
  }

  /**
   * Opens the trust list in `<dataDir>/trust.json` (a missing file is an
   * empty list; it is created on the first {@link TrustStore.add}).
   * @throws {TypeError} a config key is invalid.
   * @throws {Error} the file is unreadable, corrupt, or writable by others.
   */
  static open(dataDir: string, options: TrustStoreOptions = {}): TrustStore {
    const store = new TrustStore(dataDir, options.configKeys ?? [], options.now ?? Date.now);
    store.#load(true);
    return store;
  }

  /**
   * An in-memory trust list (nothing is persisted). Strings get write scope.
   * @throws {TypeError} a key is invalid.
   */
  static memory(
    keys: Iterable<string | { key: string; scope?: Scope; label?: string }> = [],
    options: Omit<TrustStoreOptions, "configKeys"> = {},
  ): TrustStore {
    const store = new TrustStore(null, [], options.now ?? Date.now);
    for (const item of keys) {
      if (typeof item === "string") store.add(item, "write");
      else store.add(item.key, item.scope ?? "write", item.label);
    }
    return store;
  }

  /** The trust file, or `null` for an in-memory store. */
  get path(): string | null {
    return this.#path;
  }

  /** Rereads the file when it changed since the last read; returns true when it did. */
  #load(force = false): boolean {
    if (this.#path === null) return false;
    if (!force && sameVersion(this.#version, fileVersionSync(this.#path))) return false;
    const loaded = loadDataFile(this.#path, "trust file", parseTrustFile);
    this.#entries = loaded?.value ?? new Map();
    this.#version = loaded?.version ?? null;
    return true;
  }

  #snapshot(): Map<string, Scope> {
    const scopes = new Map<string, Scope>();
    for (const [key, entry] of this.#config) scopes.set(key, entry.scope);
    for (const [key, entry] of this.#entries) scopes.set(key, entry.scope);
    return scopes;
  }

  #diff(before: Map<string, Scope>): TrustChange {
    const after = this.#snapshot();
    const removed: string[] = [];
    const changed: string[] = [];
    for (const [key, scope] of before) {
      const now = after.get(key);
      if (now === undefined) removed.push(key);
      else if (now !== scope) changed.push(key);
    }
    const added = [...after.keys()].filter((key) => !before.has(key));
    return { added, removed, changed };
  }

  #emit(change: TrustChange): void {
    if (change.added.length + change.removed.length + change.changed.length === 0) return;
    for (const listener of [...this.#listeners]) listener(change);
  }

  /** Applies `mutate` to the entries under the file lock, then persists them. */
  #update<T>(mutate: (entries: Map<string, TrustFileEntry>) => { result: T; dirty: boolean }): T {
    const before = this.#snapshot();
    let result: T;
    if (this.#path === null || this.#dir === null) {
      result = mutate(this.#entries).result;
    } else {
      const path = this.#path;
      ensureDirSync(this.#dir);
      result = withFileLockSync(path, () => {
        this.#load();
        // Work on a copy so a failed write leaves memory matching the file.
        const copy = new Map([...this.#entries].map(([key, e]) => [key, { ...e }]));
        const outcome = mutate(copy);
        if (outcome.dirty) {
          writePrivateFileSync(path, encodeTrustFile(copy.values()));
          this.#entries = copy;
          this.#version = fileVersionSync(path);
        }
        return outcome.result;
      });
    }
    this.#emit(this.#diff(before));
    return result;
  }

  /**
   * Trusts `key` with `scope` (replacing the scope and label of an existing
   * entry) and persists the list.
   * @throws {TypeError} `key` is not a valid node key, or `scope`/`label` is invalid.
   */
  add(key: string, scope: Scope, label?: string): void {
    checkKey(key, "trust key");
    if (!isScope(scope)) throw new TypeError('Cannot trust key: scope must be "write" or "read"');
    checkLabel(label, "trust key");
    this.#update((entries) => {
      const old = entries.get(key);
      if (old && old.scope === scope && old.label === label) {
        return { result: undefined, dirty: false };
      }
      const entry: TrustFileEntry = { key, scope, added_at: old?.added_at ?? this.#now() };
      if (label !== undefined) entry.label = label;
      entries.set(key, entry);
      return { result: undefined, dirty: true };
    });
  }

  /**
   * Removes `key` from the store. Returns false when the store did not hold
   * it (a config key stays trusted: edit the config to remove it).
   */
  remove(key: string): boolean {
    return this.#update((entries) => {
      const had = entries.delete(key);
      return { result: had, dirty: had };
    });
  }

  /** All trusted keys, store entries first, sorted by key within each source. */
  list(): TrustEntry[] {
    const out: TrustEntry[] = [];
    for (const e of [...this.#entries.values()].sort((a, b) => (a.key < b.key ? -1 : 1))) {
      const entry: TrustEntry = {
        key: e.key,
        scope: e.scope,
        addedAt: e.added_at,
        source: "store",
      };
      if (e.label !== undefined) entry.label = e.label;
      out.push(entry);
    }
    for (const e of [...this.#config.values()].sort((a, b) => (a.key < b.key ? -1 : 1))) {
      if (!this.#entries.has(e.key)) out.push({ ...e });
    }
    return out;
  }

  /** The scope of `key`, or `undefined` when it is not trusted. */
  scopeOf(key: string): Scope | undefined {
    return this.#entries.get(key)?.scope ?? this.#config.get(key)?.scope;
  }

  /** True when no key is trusted (neither in the store nor in the config). */
  isEmpty(): boolean {
    return this.#entries.size === 0 && this.#config.size === 0;
  }

  /**
   * Rereads the trust file if it changed (by inode, size or mtime) and
   * returns the keys no longer trusted and those whose scope changed. Watchers
   * are told too. An in-memory store returns no change.
   * @throws {Error} the file is unreadable or corrupt (the previous list stays).
   * The node rereads its own file; not part of the public API.
   * @ignore
   */
  reload(): TrustChange {
    const before = this.#snapshot();
    if (!this.#load()) return { added: [], removed: [], changed: [] };
    const change = this.#diff(before);
    this.#emit(change);
    return change;
  }

  /**
   * Polls the file every `intervalMs` with {@link TrustStore.reload} and
   * calls `onChange` when keys were removed or changed scope, including
   * changes made through this instance. Stops when `signal` aborts. The
   * node watches its own trust list; not part of the public API.
   * @ignore
   */
  watch(onChange: (change: TrustChange) => void, options: TrustWatchOptions = {}): void {
    const { signal, intervalMs = 500, onError } = options;
    if (!(intervalMs > 0)) throw new RangeError("Cannot watch trust file: intervalMs must be > 0");
    if (signal?.aborted) return;
    this.#listeners.add(onChange);
    const timer = this.#path === null ? undefined : setInterval(() => {
      try {
        this.reload();
      } catch (error) {
        onError?.(error as Error);
      }
    }, intervalMs);
    signal?.addEventListener("abort", () => {
      if (timer !== undefined) clearInterval(timer);
      this.#listeners.delete(onChange);
    }, { once: true });
  }
}

/** Options for {@link AccessPolicy}. */
export interface AccessPolicyOptions {
  /**
   * Whether unknown keys may connect with write scope: `true` (open mesh),
   * `false` (only trusted keys), or `"when-empty"` (open while the trust
   * list is empty, like the reference). A server binary should pass `false`.
   */
  open: boolean | "when-empty";
}

/**
 * Mesh membership as admission reads it: a key's current scope, `undefined`
 * when it is no member or was revoked (`Membership.scopeOf` is one).
 */
export interface MemberScopes {
  /** The key's scope in the mesh. */
  scopeOf(key: string): "admin" | "write" | "read" | undefined;
}

/** Pure access rules over a {@link TrustStore}. */
export class AccessPolicy {
  readonly #trust: TrustStore;
  readonly #open: boolean | "when-empty";
  #members: () => MemberScopes | undefined = () => undefined;

  /**
   * Creates the policy; `options.open` must be given explicitly.
   * @ignore
   */
  constructor(trust: TrustStore, options: AccessPolicyOptions) {
    if (options?.open !== true && options?.open !== false && options?.open !== "when-empty") {
      throw new TypeError('Cannot create access policy: open must be true, false or "when-empty"');
    }
    this.#trust = trust;
    this.#open = options.open;
  }

  /** The trust list the policy reads. */
  get trust(): TrustStore {
    return this.#trust;
  }

  /**
   * Admits mesh members: once `members()` returns a membership, a key
   * connects with its member scope (admin maps to write on the wire), then
   * its trust-list scope (connection only); unknown keys are refused.
   * @ignore
   */
  useMembers(members: () => MemberScopes | undefined): void {
    this.#members = members;
  }

  /** True when the mesh is currently open to unknown keys (never once membership decides). */
  isOpen(): boolean {
    if (this.#members() !== undefined) return false;
    return this.#open === "when-empty" ? this.#trust.isEmpty() : this.#open;
  }

  /**
   * The scope `key` connects with: its member scope in a mesh, else its
   * trusted scope when known, `"write"` for an unknown key in an open mesh,
   * otherwise `undefined` (refused).
   */
  connectScope(key: string): Scope | undefined {
    const member = this.#members()?.scopeOf(key);
    if (member !== undefined) return member === "admin" ? "write" : member;
    return this.#trust.scopeOf(key) ?? (this.isOpen() ? "write" : undefined);
  }

  /**
   * True when operations authored by `key` are accepted: in an open mesh
   * every key not explicitly read-scoped, in a closed mesh only write-scoped keys.
   */
  mayAuthor(key: string): boolean {
    const scope = this.#trust.scopeOf(key);
    if (scope !== undefined) return scope === "write";
    return this.isOpen();
  }
}
