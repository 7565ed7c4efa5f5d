/**
 * The materialised CRDT document: a JSON-like tree built from signed
 * operations. Pure state, no I/O.
 * @module
 */
import { createHash } from "node:crypto";
import { utf8 } from "../protocol/bytes.ts";
import { canonicalJson, type JsonValue } from "./canonical.ts";
import { decodeSnapshot, encodeSnapshot, type TreeParts } from "./document_snapshot.ts";
import type { Mutation } from "./operation.ts";

/** The fields of an operation that {@link CrdtDocument.apply} reads. */
export interface DocumentOperation {
  /** Node id of the author (64 lowercase hex characters). */
  author: string;
  /** Position in the author's chain (not used for ordering). */
  seq: number;
  /** Lamport timestamp. */
  time: number;
  /** The change. */
  mutation: Mutation;
}

/** An operation's stamp: ordered by time, then by author. Unique per operation. */
export interface Stamp {
  readonly time: number;
  readonly author: string;
}

/** A written value (register or list entry) with the stamp of its operation. */
export interface Entry {
  readonly stamp: Stamp;
  readonly value: JsonValue;
}

/**
 * One node of the tree: a map key that may hold a register, list entries and
 * children. Exported for the snapshot codec only.
 */
export class TreeNode {
  /** Child keys in creation order; `undefined` until the first (most nodes are leaves). */
  children: Map<string, TreeNode> | undefined;
  register: Entry | undefined;
  entries: Entry[] | undefined;
  /** Highest stamp of a `remove` at exactly this node. */
  removed: Stamp | undefined;
  /** Highest stamp written anywhere in this subtree (ignoring removes): a pruning bound. */
  latest: Stamp | undefined;
}

const STATE_DOMAIN = utf8("huskies-sync/state/v1\n");

function compareStamps(a: Stamp, b: Stamp): number {
  if (a.time !== b.time) return a.time - b.time;
  return a.author < b.author ? -1 : a.author > b.author ? 1 : 0;
}

/** True when `a` exists and is after `b` (anything is after `undefined`). */
function after(a: Stamp | undefined, b: Stamp | undefined): a is Stamp {
  return a !== undefined && (b === undefined || compareStamps(a, b) > 0);
}

function maxStamp(a: Stamp | undefined, b: Stamp | undefined): Stamp | undefined {
  return after(b, a) ? b : a;
}

/**
 * Orders entries by stamp. Stamps are unique per operation; should a forked
 * author reuse one, the canonical JSON of the values breaks the tie so the
 * result still does not depend on arrival order.
 */
function compareEntries(a: Entry, b: Entry): number {
  const byStamp = compareStamps(a.stamp, b.stamp);
  if (byStamp !== 0) return byStamp;
  const x = canonicalJson(a.value);
  const y = canonicalJson(b.value);
  return x < y ? -1 : x > y ? 1 : 0;
}

/** What the snapshot codec needs from this module. */
const TREE_PARTS: TreeParts = {
  newNode: () => new TreeNode(),
  compareStamps,
  compareEntries,
};

/** Index of the first entry whose stamp is after `removed` (entries are sorted). */
function firstVisible(entries: Entry[], removed: Stamp | undefined): number {
  if (removed === undefined) return 0;
  let lo = 0;
  let hi = entries.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (after(entries[mid].stamp, removed)) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/** A deep, frozen copy, so later changes to the caller's objects cannot reach the document. */
function frozenCopy(value: JsonValue): JsonValue {
  if (value === null || typeof value !== "object") return value;
  if (Array.isArray(value)) return Object.freeze(value.map(frozenCopy)) as JsonValue[];
  return Object.freeze(
    Object.fromEntries(Object.entries(value).map(([k, v]) => [k, frozenCopy(v)])),
  );
}

function isPlainObject(value: unknown): value is { [key: string]: JsonValue } {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** The register or list at `node` with the latest visible stamp, if any. */
function ownLatest(
  node: TreeNode,
  removed: Stamp | undefined,
): { kind: "register" | "list"; stamp: Stamp } | undefined {
  let best: { kind: "register" | "list"; stamp: Stamp } | undefined;
  if (node.register && after(node.register.stamp, removed)) {
    best = { kind: "register", stamp: node.register.stamp };
  }
  const last = node.entries?.[node.entries.length - 1];
  if (last && after(last.stamp, removed) && after(last.stamp, best?.stamp)) {
    best = { kind: "list", stamp: last.stamp };
  }
  return best;
}

/**
 * True when the subtree at `node` holds a visible write stamped after
 * `threshold`. `removedAbove` is the highest remove stamp of its ancestors.
 */
function visibleAfter(
  node: TreeNode,
  removedAbove: Stamp | undefined,
  threshold: Stamp | undefined,
): boolean {
  const removed = maxStamp(removedAbove, node.removed);
  const bound = maxStamp(removed, threshold);
  if (!after(node.latest, bound)) return false;
  if (node.register && after(node.register.stamp, bound)) return true;
  const last = node.entries?.[node.entries.length - 1];
  if (last && after(last.stamp, bound)) return true;
  if (node.children) {
    for (const child of node.children.values()) {
      if (visibleAfter(child, removed, threshold)) return true;
    }
  }
  return false;
}

/** True when some child of `node` holds a visible write stamped after `threshold`. */
function mapVisibleAfter(node: TreeNode, removed: Stamp | undefined, threshold: Stamp): boolean {
  if (!node.children) return false;
  for (const child of node.children.values()) {
    if (visibleAfter(child, removed, threshold)) return true;
  }
  return false;
}

/** The visible value of a subtree and the latest visible stamp in it, or `undefined`. */
function render(
  node: TreeNode,
  removedAbove: Stamp | undefined,
): { value: JsonValue; stamp: Stamp } | undefined {
  const removed = maxStamp(removedAbove, node.removed);
  if (!after(node.latest, removed)) return undefined;
  let best: { value: JsonValue; stamp: Stamp } | undefined;
  if (node.register && after(node.register.stamp, removed)) {
    best = { value: node.register.value, stamp: node.register.stamp };
  }
  const entries = node.entries;
  if (entries && after(entries[entries.length - 1]?.stamp, maxStamp(removed, best?.stamp))) {
    const visible = entries.slice(firstVisible(entries, removed)).map((e) => e.value);
    best = { value: visible, stamp: entries[entries.length - 1].stamp };
  }
  const fields: [string, JsonValue][] = [];
  let mapStamp: Stamp | undefined;
  if (node.children) {
    for (const [key, child] of node.children) {
      const rendered = render(child, removed);
      if (!rendered) continue;
      fields.push([key, rendered.value]);
      mapStamp = maxStamp(mapStamp, rendered.stamp);
    }
  }
  if (after(mapStamp, best?.stamp)) best = { value: Object.fromEntries(fields), stamp: mapStamp };
  return best;
}

/**
 * A JSON-like CRDT document. Feed it operations with {@link CrdtDocument.apply}
 * (each at most once, in causal order); replicas that applied the same set of
 * operations in any causal order have equal {@link CrdtDocument.value} and
 * {@link CrdtDocument.stateHash}.
 *
 * Every write carries its operation's stamp `(time, author)`, compared by
 * Lamport time and then by author string. The document is a tree of map keys;
 * each tree node may hold a register, list entries, child keys and the highest
 * stamp of a `remove` at that node. Rules:
 *
 * - `update {path, fields}` sets the register at `path + [field]` for each
 *   field; the register shows the value with the highest stamp.
 * - `append {path, value}` adds an entry to the list at `path`; entries are
 *   shown in stamp order.
 * - `remove {path}` hides every write at or under `path` stamped before the
 *   remove. Writes stamped after it stay (or become) visible again.
 * - A node renders as whichever of its register, its list or its map of
 *   children holds the latest visible write of its subtree: the register's
 *   stamp, the list's last visible entry, or the latest visible write in any
 *   child. So after `update ["a"] {b: 1}` then `update ["a","b"] {c: 2}`,
 *   `a.b` reads `{c: 2}`; a later write to the register shows `1` again.
 * - A map with no visible content is absent, as is an empty list. The root is
 *   always an object (`{}` when empty).
 * - Values a register holds are frozen copies; reads share them.
 *
 * @example
 * ```ts
 * import { CrdtDocument } from "./document.ts";
 *
 * const doc = new CrdtDocument();
 * const author = "a".repeat(64);
 * doc.apply({
 *   author,
 *   seq: 1,
 *   time: 1,
 *   mutation: { type: "update", path: ["items", "s1"], fields: { stage: "qa" } },
 * });
 * doc.apply({ author, seq: 2, time: 2, mutation: { type: "append", path: ["log"], value: 1 } });
 * doc.get(["items", "s1", "stage"]); // "qa"
 * doc.value(); // { items: { s1: { stage: "qa" } }, log: [1] }
 * ```
 */
export class CrdtDocument {
  readonly #root = new TreeNode();

  /**
   * Applies one operation. The caller (the operation log) guarantees each
   * operation arrives at most once and after its dependencies. Takes time
   * proportional to the path length (plus the size of the written value).
   * Throws `TypeError` for an operation without a usable author, time or path.
   * The replica calls it; not part of the public API.
   * @ignore
   */
  apply(op: DocumentOperation): void {
    if (typeof op.author !== "string") {
      throw new TypeError("Cannot apply operation: author must be a string");
    }
    if (!Number.isSafeInteger(op.time)) {
      throw new TypeError("Cannot apply operation: time must be a safe integer");
    }
    const mutation = op.mutation;
    const path = mutation?.path;
    if (!Array.isArray(path) || path.length === 0 || path.some((k) => typeof k !== "string")) {
      throw new TypeError("Cannot apply operation: path must be a non-empty array of strings");
    }
    const stamp: Stamp = { time: op.time, author: op.author };
    switch (mutation.type) {
      case "update": {
        const node = this.#walk(path, stamp);
        for (const [field, value] of Object.entries(mutation.fields)) {
          const leaf = this.#child(node, field);
          leaf.latest = maxStamp(leaf.latest, stamp);
          const entry = { stamp, value: frozenCopy(value) };
          if (!leaf.register || compareEntries(entry, leaf.register) > 0) leaf.register = entry;
        }
        return;
      }
      case "remove": {
        const node = this.#walk(path, undefined);
        node.removed = maxStamp(node.removed, stamp);
        return;
      }
      case "append": {
        const node = this.#walk(path, stamp);
        const entries = node.entries ??= [];
        const entry = { stamp, value: frozenCopy(mutation.value) };
        // Binary search for the insertion point; arrivals are usually in order.
        let lo = 0;
        let hi = entries.length;
        while (lo < hi) {
          const mid = (lo + hi) >>> 1;
          if (compareEntries(entries[mid], entry) <= 0) lo = mid + 1;
          else hi = mid;
        }
        if (lo > 0 && compareEntries(entries[lo - 1], entry) === 0) return; // applied twice
        if (lo === entries.length) entries.push(entry);
        else entries.splice(lo, 0, entry);
        return;
      }
      default:
        throw new TypeError(
          `Cannot apply operation: unknown mutation type ${
            JSON.stringify((mutation as { type: unknown }).type)
          }`,
        );
    }
  }

  /** The visible document. The root is an object, `{}` when nothing is visible. */
  value(): { [key: string]: JsonValue } {
    const rendered = render(this.#root, undefined)?.value;
    return isPlainObject(rendered) ? rendered : {};
  }

  /**
   * The visible value at `path` (as found in {@link CrdtDocument.value}), or
   * `undefined` when absent. Walks the path and renders only the subtree at its
   * end; `[]` gives the whole document.
   */
  get(path: readonly string[]): JsonValue | undefined {
    if (path.length === 0) return this.value();
    let node = this.#root;
    let removedAbove: Stamp | undefined;
    for (let i = 0; i < path.length; i++) {
      const removed = maxStamp(removedAbove, node.removed);
      // Descend through the map unless a register or list at this node is later than it.
      const own = ownLatest(node, removed);
      if (own && !mapVisibleAfter(node, removed, own.stamp)) {
        return own.kind === "register" ? descend(node.register!.value, path.slice(i)) : undefined;
      }
      const child = node.children?.get(path[i]);
      if (!child) return undefined;
      node = child;
      removedAbove = removed;
    }
    return render(node, removedAbove)?.value;
  }

  /** Sorted keys of the object visible at `path`; `[]` when it is absent or not an object. */
  keys(path: readonly string[]): string[] {
    const value = this.get(path);
    return isPlainObject(value) ? Object.keys(value).sort() : [];
  }

  /** Entries of the list visible at `path`, in stamp order; `[]` when absent or not a list. */
  list(path: readonly string[]): JsonValue[] {
    const value = this.get(path);
    return Array.isArray(value) ? value : [];
  }

  /**
   * Lowercase hex SHA-256 of `"huskies-sync/state/v1\n"` followed by the
   * canonical JSON of {@link CrdtDocument.value}.
   */
  stateHash(): string {
    return createHash("sha256").update(STATE_DOMAIN).update(canonicalJson(this.value()))
      .digest("hex");
  }

  /**
   * The document's full internal state as text (see crdt/document_snapshot.ts
   * for the format): {@link CrdtDocument.fromSnapshot} of it behaves exactly
   * as this document for every later `apply` and every read. Takes time and
   * space proportional to the state (not to the operations applied).
   * Persistence calls it; not part of the public API.
   * @ignore
   */
  toSnapshot(): string {
    return encodeSnapshot(this.#root, TREE_PARTS);
  }

  /**
   * The document whose state {@link CrdtDocument.toSnapshot} wrote as `text`,
   * its values frozen as `apply` freezes them. Throws `SyntaxError`
   * ("Cannot restore document: ...") for malformed, truncated or inconsistent
   * text. Persistence calls it; not part of the public API.
   * @ignore
   */
  static fromSnapshot(text: string): CrdtDocument {
    const doc = new CrdtDocument();
    decodeSnapshot(text, doc.#root, TREE_PARTS);
    return doc;
  }

  #child(node: TreeNode, key: string): TreeNode {
    let child = node.children?.get(key);
    if (!child) (node.children ??= new Map()).set(key, child = new TreeNode());
    return child;
  }

  /** The node at `path`, created as needed; raises `latest` along the way when writing. */
  #walk(path: readonly string[], write: Stamp | undefined): TreeNode {
    let node = this.#root;
    if (write) node.latest = maxStamp(node.latest, write);
    for (const key of path) {
      node = this.#child(node, key);
      if (write) node.latest = maxStamp(node.latest, write);
    }
    return node;
  }
}

/** Follows `path` into a register's JSON value (objects only). */
function descend(value: JsonValue, path: readonly string[]): JsonValue | undefined {
  let current: JsonValue | undefined = value;
  for (const key of path) {
    if (!isPlainObject(current) || !Object.hasOwn(current, key)) return undefined;
    current = current[key];
  }
  return current;
}
