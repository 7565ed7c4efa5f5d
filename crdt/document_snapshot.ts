/**
 * The text codec behind `CrdtDocument#toSnapshot` and
 * `CrdtDocument.fromSnapshot`: the document's full internal tree (every
 * node's children, register, list entries, remove stamp and `latest` bound),
 * so a restored document behaves exactly as the original for every later
 * `apply` and every read. Pure logic, no I/O.
 *
 * The text is one JSON object:
 *
 * ```text
 * {"snapshot":"huskies-sync/document","version":1,"authors":[AUTHOR, ...],"tree":[...]}
 * ```
 *
 * Each author id is written once in `authors`; a stamp is two numbers, its
 * Lamport time and the index of its author there. `tree` is one flat array
 * (no array per node, so parsing it allocates little besides what the
 * document keeps): the root's node, then each child as its key followed by
 * its node, depth first, children in the order the document created them. A
 * node is `head, ...fields`, where `head` is 16 × (number of children) + the
 * sum of the flags of the fields that follow, in this order:
 *
 * - 1, register: `time, author, value`;
 * - 2, list entries: `count, time, author, value, time, author, value, ...`,
 *   count at least 1, entries in strictly increasing entry order;
 * - 4, removed: `time, author`;
 * - 8, latest: `time, author`, written only when it differs from the latest
 *   of the register, the last entry and the children's `latest` (which the
 *   reader derives otherwise), so only where an update without fields left it
 *   higher.
 *
 * So `{"s": {"x": 1}}` written by author 0 at time 3 is `[16, "s", 16, "x", 1, 3, 0, 1]`.
 * @module
 */
import type { JsonValue } from "./canonical.ts";
import type { Entry, Stamp, TreeNode } from "./document.ts";

/** The format name a snapshot starts with. */
const FORMAT = "huskies-sync/document";
/** The format version this code writes and reads. */
const VERSION = 1;

const REGISTER = 1;
const ENTRIES = 2;
const REMOVED = 4;
const LATEST = 8;

/** Deepest tree (keys from the root) and deepest value a snapshot may hold; operations allow 17 and 16. */
const MAX_DEPTH = 1000;

/**
 * What the codec needs from document.ts, handed in so that this module
 * imports only its types (no import cycle).
 */
export interface TreeParts {
  /** A new, empty tree node. */
  newNode(): TreeNode;
  /** The document's stamp order. */
  compareStamps(a: Stamp, b: Stamp): number;
  /** The document's list entry order. */
  compareEntries(a: Entry, b: Entry): number;
}

/** The snapshot text of the tree at `root`. */
export function encodeSnapshot(root: TreeNode, parts: TreeParts): string {
  const authors: string[] = [];
  const index = new Map<string, number>();
  const ref = (author: string): number => {
    let i = index.get(author);
    if (i === undefined) {
      i = authors.length;
      index.set(author, i);
      authors.push(author);
    }
    return i;
  };
  const out: unknown[] = [];
  const encode = (node: TreeNode): void => {
    const headAt = out.length;
    out.push(0);
    let flags = 0;
    let derived: Stamp | undefined;
    const register = node.register;
    if (register) {
      flags |= REGISTER;
      out.push(register.stamp.time, ref(register.stamp.author), register.value);
      derived = register.stamp;
    }
    const entries = node.entries;
    if (entries && entries.length > 0) {
      flags |= ENTRIES;
      out.push(entries.length);
      for (const e of entries) out.push(e.stamp.time, ref(e.stamp.author), e.value);
      derived = later(parts, derived, entries[entries.length - 1].stamp);
    }
    if (node.removed) {
      flags |= REMOVED;
      out.push(node.removed.time, ref(node.removed.author));
    }
    const children = node.children;
    if (children) {
      for (const child of children.values()) derived = later(parts, derived, child.latest);
    }
    // `latest` is never below what it bounds (apply raises it with every write).
    const latest = node.latest;
    if (latest && (!derived || parts.compareStamps(latest, derived) !== 0)) {
      flags |= LATEST;
      out.push(latest.time, ref(latest.author));
    }
    out[headAt] = (children?.size ?? 0) * 16 + flags;
    if (!children) return;
    for (const [key, child] of children) {
      out.push(key);
      encode(child);
    }
  };
  encode(root);
  return JSON.stringify({ snapshot: FORMAT, version: VERSION, authors, tree: out });
}

/**
 * Fills the empty tree node `root` from snapshot `text`. Throws `SyntaxError`
 * ("Cannot restore document: ...") for anything malformed or inconsistent.
 */
export function decodeSnapshot(text: string, root: TreeNode, parts: TreeParts): void {
  if (typeof text !== "string") fail("the snapshot must be a string");
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    fail(`the snapshot is not JSON (${(error as Error).message})`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    fail("the snapshot is not a JSON object");
  }
  const top = parsed as Record<string, unknown>;
  if (top.snapshot !== FORMAT) fail(`the snapshot does not name the format "${FORMAT}"`);
  if (top.version !== VERSION) {
    fail(
      `unsupported snapshot version ${JSON.stringify(top.version)} (this code reads ${VERSION})`,
    );
  }
  for (const key of Object.keys(top)) {
    if (!["snapshot", "version", "authors", "tree"].includes(key)) fail(`unknown field "${key}"`);
  }
  const authors = top.authors;
  if (!Array.isArray(authors)) fail("authors must be an array");
  const seen = new Set<string>();
  for (const author of authors) {
    if (typeof author !== "string") fail("every author must be a string");
    if (seen.has(author)) fail(`author ${JSON.stringify(author)} is listed twice`);
    seen.add(author);
  }
  if (!Array.isArray(top.tree)) fail("tree must be an array");
  const reader = new Reader(top.tree, authors, parts);
  reader.node(root);
  reader.end();
}

function fail(problem: string): never {
  throw new SyntaxError(`Cannot restore document: ${problem}`);
}

/** The later of two stamps (either may be absent). */
function later(parts: TreeParts, a: Stamp | undefined, b: Stamp | undefined): Stamp | undefined {
  if (!a) return b;
  return b && parts.compareStamps(b, a) > 0 ? b : a;
}

/** One decoding pass over `tree`: the position, the path read (for messages), stamp reuse. */
class Reader {
  readonly #items: unknown[];
  readonly #authors: readonly string[];
  readonly #parts: TreeParts;
  readonly #path: string[] = [];
  #i = 0;
  /** The last stamp read: consecutive equal stamps (one update's fields) share one object. */
  #last: Stamp | undefined;

  constructor(items: unknown[], authors: readonly string[], parts: TreeParts) {
    this.#items = items;
    this.#authors = authors;
    this.#parts = parts;
  }

  /** Reads the node at the current position into the empty `node`. */
  node(node: TreeNode): void {
    const items = this.#items;
    const head = items[this.#i++];
    if (typeof head !== "number" || !Number.isSafeInteger(head) || head < 0) {
      this.#fail(
        `a node head must be a non-negative integer, got ${JSON.stringify(head) ?? "the end"}`,
      );
    }
    const flags = head % 16;
    const count = (head - flags) / 16;
    if (this.#path.length === 0 && (flags & ~LATEST) !== 0) {
      this.#fail("the root may hold only child keys and latest");
    }
    let derived: Stamp | undefined;
    if (flags & REGISTER) {
      const stamp = this.#stamp("register");
      node.register = { stamp, value: this.#value("register") };
      derived = stamp;
    }
    if (flags & ENTRIES) {
      const entries = this.#entries();
      node.entries = entries;
      derived = later(this.#parts, derived, entries[entries.length - 1].stamp);
    }
    if (flags & REMOVED) node.removed = this.#stamp("removed");
    const explicit = flags & LATEST ? this.#stamp("latest") : undefined;
    if (count > 0) {
      if (this.#path.length >= MAX_DEPTH) this.#fail(`the tree is deeper than ${MAX_DEPTH} keys`);
      const children = node.children = new Map();
      for (let c = 0; c < count; c++) {
        const key = items[this.#i++];
        if (typeof key !== "string") {
          this.#fail(`child ${c} of ${count} has no key (got ${JSON.stringify(key) ?? "the end"})`);
        }
        if (children.has(key)) this.#fail(`child key ${JSON.stringify(key)} appears twice`);
        const child = this.#parts.newNode();
        children.set(key, child);
        this.#path.push(key);
        this.node(child);
        this.#path.pop();
        derived = later(this.#parts, derived, child.latest);
      }
    }
    if (explicit && derived && this.#parts.compareStamps(explicit, derived) <= 0) {
      this.#fail("latest must be after every write the node holds (or be left out)");
    }
    node.latest = explicit ?? derived;
  }

  /** Checks that the whole tree was read. */
  end(): void {
    const extra = this.#items.length - this.#i;
    if (extra > 0) fail(`the tree has ${extra} more elements after its end`);
  }

  /** The stamp written as `time, author index` at the current position. */
  #stamp(what: string): Stamp {
    const time = this.#items[this.#i++];
    const author = this.#items[this.#i++];
    if (typeof time !== "number" || !Number.isSafeInteger(time)) {
      this.#fail(`${what} time must be a safe integer, got ${JSON.stringify(time) ?? "the end"}`);
    }
    if (
      typeof author !== "number" || !Number.isInteger(author) || author < 0 ||
      author >= this.#authors.length
    ) {
      this.#fail(
        `${what} author must be an index into the ${this.#authors.length} authors, got ${
          JSON.stringify(author) ?? "the end"
        }`,
      );
    }
    const id = this.#authors[author];
    const last = this.#last;
    if (last && last.time === time && last.author === id) return last;
    return this.#last = { time, author: id };
  }

  /** List entries: their count, then `time, author, value` for each. */
  #entries(): Entry[] {
    const count = this.#items[this.#i++];
    if (typeof count !== "number" || !Number.isSafeInteger(count) || count < 1) {
      this.#fail(`list entries need a count of at least 1, got ${JSON.stringify(count)}`);
    }
    const entries: Entry[] = [];
    for (let j = 0; j < count; j++) {
      const entry = { stamp: this.#stamp("list entry"), value: this.#value("list entry") };
      const previous = entries[entries.length - 1];
      if (previous && this.#parts.compareEntries(previous, entry) >= 0) {
        this.#fail(`list entry ${j} is not after the one before it (entries must be sorted)`);
      }
      entries.push(entry);
    }
    return entries;
  }

  /** The value at the current position, checked and frozen. */
  #value(what: string): JsonValue {
    if (this.#i >= this.#items.length) this.#fail(`${what} has no value (the tree ends)`);
    return this.#frozen(this.#items[this.#i++], 0);
  }

  /** Checks a parsed value is a JSON value of safe integers and freezes it in place. */
  #frozen(value: unknown, depth: number): JsonValue {
    if (value === null || typeof value === "boolean" || typeof value === "string") return value;
    if (typeof value === "number") {
      if (Number.isSafeInteger(value) && !Object.is(value, -0)) return value;
      this.#fail(`a value holds ${JSON.stringify(value)}, not a safe integer`);
    }
    if (typeof value !== "object") this.#fail("a value is missing");
    if (depth >= MAX_DEPTH) this.#fail(`a value is nested deeper than ${MAX_DEPTH} levels`);
    if (Array.isArray(value)) {
      for (const item of value) this.#frozen(item, depth + 1);
    } else {
      for (const key in value) this.#frozen((value as Record<string, unknown>)[key], depth + 1);
    }
    return Object.freeze(value) as JsonValue;
  }

  #fail(problem: string): never {
    const at = this.#path.length === 0 ? "the root" : JSON.stringify(this.#path);
    fail(`at ${at}: ${problem}`);
  }
}
