/**
 * The document (PROTOCOL.md §7), rebuilt from applied operations by the
 * suite's own merge code, and its state hash.
 * @module
 */

import { canonicalJson } from "./canonical.ts";
import { hex, sha256, utf8 } from "./bytes.ts";
import type { Op } from "./operation.ts";

/** A write's stamp: ordered by time, then author. */
interface Stamp {
  time: number;
  author: string;
}

function compareStamps(a: Stamp, b: Stamp): number {
  if (a.time !== b.time) return a.time - b.time;
  return a.author < b.author ? -1 : a.author > b.author ? 1 : 0;
}

interface Node {
  register?: { stamp: Stamp; value: unknown }[];
  list?: { stamp: Stamp; value: unknown }[];
  children: Map<string, Node>;
}

function newNode(): Node {
  return { children: new Map() };
}

function nodeAt(root: Node, path: string[]): Node {
  let node = root;
  for (const key of path) {
    let child = node.children.get(key);
    if (!child) node.children.set(key, child = newNode());
    node = child;
  }
  return node;
}

type Removes = { path: string[]; stamp: Stamp }[];

function hidden(path: string[], stamp: Stamp, removes: Removes): boolean {
  return removes.some((r) =>
    r.path.length <= path.length && r.path.every((k, i) => k === path[i]) &&
    compareStamps(stamp, r.stamp) < 0
  );
}

type Rendered = { stamp: Stamp; value: unknown } | undefined;

function latest(a: Rendered, b: Rendered): Rendered {
  if (!a) return b;
  if (!b) return a;
  return compareStamps(a.stamp, b.stamp) >= 0 ? a : b;
}

function render(node: Node, path: string[], removes: Removes): Rendered {
  let register: Rendered;
  for (const w of node.register ?? []) {
    if (!hidden(path, w.stamp, removes)) register = latest(register, w);
  }
  const entries = (node.list ?? []).filter((e) => !hidden(path, e.stamp, removes))
    .sort((a, b) => compareStamps(a.stamp, b.stamp));
  const list: Rendered = entries.length > 0
    ? { stamp: entries[entries.length - 1].stamp, value: entries.map((e) => e.value) }
    : undefined;
  const map: Record<string, unknown> = {};
  let mapStamp: Stamp | undefined;
  for (const [key, child] of node.children) {
    const shown = render(child, [...path, key], removes);
    if (!shown) continue;
    map[key] = shown.value;
    if (!mapStamp || compareStamps(shown.stamp, mapStamp) > 0) mapStamp = shown.stamp;
  }
  const mapped: Rendered = mapStamp ? { stamp: mapStamp, value: map } : undefined;
  return latest(latest(register, list), mapped);
}

/** The document the given applied operations show (order does not matter). */
export function buildDocument(ops: Iterable<Op>): Record<string, unknown> {
  const root = newNode();
  const removes: Removes = [];
  for (const op of ops) {
    const stamp = { time: op.time, author: op.author };
    const m = op.mutation;
    if (m.type === "update") {
      for (const [field, value] of Object.entries(m.fields)) {
        const node = nodeAt(root, [...m.path, field]);
        (node.register ??= []).push({ stamp, value });
      }
    } else if (m.type === "append") {
      (nodeAt(root, m.path).list ??= []).push({ stamp, value: m.value });
    } else {
      removes.push({ path: m.path, stamp });
    }
  }
  const shown = render(root, [], removes);
  const value = shown?.value;
  return typeof value === "object" && value !== null && !Array.isArray(value)
    ? value as Record<string, unknown>
    : {};
}

/** State hash of a document (§7). */
export function stateHash(document: Record<string, unknown>): string {
  return hex(sha256(utf8("huskies-sync/state/v1\n" + canonicalJson(document))));
}
