/**
 * Pipeline state on top of the CRDT document: work items at
 * `["items", storyId]` and an append-only log of stage transitions at
 * `["event_log"]`. Writes are validated before anything is committed; reads
 * tolerate values written by other (possibly buggy) nodes.
 * @module
 */
import type { JsonValue } from "./canonical.ts";
import type { CrdtDocument } from "./document.ts";
import type { Mutation } from "./operation.ts";

/**
 * There is no work item with that story id (`Pipeline.move`, `Pipeline.delete`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { HuskiesNode, ItemNotFoundError } from "@huskies/sync";
 *
 * await using node = await HuskiesNode.open();
 * assert.throws(() => node.pipeline.move("S-404", "qa"), ItemNotFoundError);
 * ```
 */
export class ItemNotFoundError extends Error {
  /** The story id that was asked for. */
  readonly storyId: string;

  /** Creates the error: "Cannot <action>: no item <storyId>". */
  constructor(action: string, storyId: string) {
    super(`Cannot ${action}: no item ${storyId}`);
    this.name = "ItemNotFoundError";
    this.storyId = storyId;
  }
}

/** The stages a work item moves through, in order. */
export const STAGES = ["backlog", "coding", "qa", "merge", "done", "archived"] as const;

/** One of {@link STAGES}. */
export type Stage = typeof STAGES[number];

/** A work item as read from the document. */
export interface WorkItem {
  /** The story id: 1 to 128 characters of `[A-Za-z0-9._:-]`. */
  story_id: string;
  /** Current stage. @default "backlog" */
  stage: Stage;
  /** Human-readable name. @default the story id */
  name: string;
  /** Node id or name of the agent working on it. @default null */
  agent: string | null;
  /** How often the item was retried. @default 0 */
  retry_count: number;
  /** Whether the item is blocked. @default false */
  blocked: boolean;
  /** Whether the item is frozen. @default false */
  frozen: boolean;
  /** Story ids this item depends on. @default [] */
  depends_on: string[];
}

/** A stage transition in the event log. */
export interface StageEvent {
  /** The item's story id. */
  story: string;
  /** The previous stage, `null` when the item was created. */
  from: Stage | null;
  /** The new stage. */
  to: Stage;
  /** Node id of the node that made the change. */
  node: string;
  /** Wall-clock time of the change, in milliseconds since the epoch. */
  time: number;
}

/** Fields to change on a work item; absent (or `undefined`) fields are left alone. */
export type WorkItemPatch = Partial<Omit<WorkItem, "story_id">>;

/** What a {@link Pipeline} writes through: the Replica, or a fake in tests. */
export interface PipelineHost {
  /** Node id recorded in stage events. */
  readonly nodeId: string;
  /** The document to read. */
  readonly document: CrdtDocument;
  /** Turns mutations into signed operations and applies them, in order. */
  commit(mutations: Mutation[]): unknown;
}

const STORY_ID = /^[A-Za-z0-9._:-]{1,128}$/;
const MAX_NAME = 1024;
const MAX_AGENT = 256;
const MAX_DEPENDENCIES = 256;
const FIELDS: readonly string[] = [
  "stage",
  "name",
  "agent",
  "retry_count",
  "blocked",
  "frozen",
  "depends_on",
];

function isStage(value: unknown): value is Stage {
  return typeof value === "string" && (STAGES as readonly string[]).includes(value);
}

function isStoryId(value: unknown): value is string {
  return typeof value === "string" && STORY_ID.test(value);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * Checks a story id: 1 to 128 characters of `[A-Za-z0-9._:-]`. Throws
 * `TypeError` "Cannot <action>: <name> must be ...".
 *
 * @example
 * ```ts
 * import { validateStoryId } from "./pipeline.ts";
 * validateStoryId("story-42"); // fine
 * // validateStoryId("a b") throws TypeError
 * ```
 */
export function validateStoryId(
  id: unknown,
  name = "storyId",
  action = "use story id",
): asserts id is string {
  if (!isStoryId(id)) {
    throw new TypeError(
      `Cannot ${action}: ${name} must be 1 to 128 characters of A-Z a-z 0-9 . _ : -, got ${
        JSON.stringify(id) ?? String(id)
      }`,
    );
  }
}

/**
 * Checks a {@link WorkItemPatch}. Throws `TypeError` for an unknown field or a
 * value of the wrong type, `RangeError` for a value out of range, each naming
 * the field. `storyId`, when given, is the item the patch is for (it may not
 * depend on itself).
 *
 * @example
 * ```ts
 * import { validatePatch } from "./pipeline.ts";
 * validatePatch({ stage: "qa", retry_count: 1 }); // fine
 * // validatePatch({ retry_count: -1 }) throws RangeError
 * ```
 */
export function validatePatch(
  patch: unknown,
  storyId?: string,
  action = "update item",
): asserts patch is WorkItemPatch {
  const fail = (Kind: typeof TypeError, reason: string): never => {
    throw new Kind(`Cannot ${action}: ${reason}`);
  };
  if (!isPlainObject(patch)) fail(TypeError, "patch must be an object");
  for (const [field, value] of Object.entries(patch as Record<string, unknown>)) {
    if (!FIELDS.includes(field)) fail(TypeError, `unknown field ${JSON.stringify(field)}`);
    if (value === undefined) continue;
    switch (field) {
      case "stage":
        if (typeof value !== "string") fail(TypeError, "stage must be a string");
        if (!isStage(value)) {
          fail(
            RangeError,
            `stage must be one of ${STAGES.join(", ")}, got ${JSON.stringify(value)}`,
          );
        }
        break;
      case "name":
        if (typeof value !== "string") fail(TypeError, "name must be a string");
        if ((value as string).length < 1 || (value as string).length > MAX_NAME) {
          fail(RangeError, `name must have 1 to ${MAX_NAME} characters`);
        }
        break;
      case "agent":
        if (value === null) break;
        if (typeof value !== "string") fail(TypeError, "agent must be a string or null");
        if ((value as string).length < 1 || (value as string).length > MAX_AGENT) {
          fail(RangeError, `agent must have 1 to ${MAX_AGENT} characters`);
        }
        break;
      case "retry_count":
        if (typeof value !== "number") fail(TypeError, "retry_count must be a number");
        if (!Number.isSafeInteger(value) || (value as number) < 0) {
          fail(RangeError, `retry_count must be a non-negative safe integer, got ${value}`);
        }
        break;
      case "blocked":
      case "frozen":
        if (typeof value !== "boolean") fail(TypeError, `${field} must be a boolean`);
        break;
      case "depends_on": {
        if (!Array.isArray(value)) fail(TypeError, "depends_on must be an array of story ids");
        const ids = value as unknown[];
        if (ids.length > MAX_DEPENDENCIES) {
          fail(RangeError, `depends_on must have at most ${MAX_DEPENDENCIES} entries`);
        }
        ids.forEach((id, i) => validateStoryId(id, `depends_on[${i}]`, action));
        if (new Set(ids).size !== ids.length) fail(RangeError, "depends_on has duplicates");
        if (storyId !== undefined && ids.includes(storyId)) {
          fail(RangeError, `depends_on must not contain the item itself (${storyId})`);
        }
        break;
      }
    }
  }
}

/**
 * Reads the work item `storyId`, or `undefined` when there is none. A field
 * holding a value of the wrong type reads as its default.
 */
export function readItem(doc: CrdtDocument, storyId: string): WorkItem | undefined {
  return toItem(storyId, doc.get(["items", storyId]));
}

/**
 * Every work item (optionally only those in `stage`), sorted by story id.
 * Entries under keys that are not valid story ids are skipped.
 */
export function listItems(doc: CrdtDocument, stage?: Stage): WorkItem[] {
  const items = doc.get(["items"]);
  if (!isPlainObject(items)) return [];
  const out: WorkItem[] = [];
  for (const id of Object.keys(items).sort()) {
    const item = isStoryId(id) ? toItem(id, items[id]) : undefined;
    if (item && (stage === undefined || item.stage === stage)) out.push(item);
  }
  return out;
}

/**
 * The stage events (optionally only those of `story`) in log order. Entries
 * that are not objects with a string `story` and a valid `to` stage are
 * skipped; other fields of the wrong type read as `from: null`, `node: ""`,
 * `time: 0`.
 */
export function readEvents(doc: CrdtDocument, story?: string): StageEvent[] {
  const out: StageEvent[] = [];
  for (const entry of doc.list(["event_log"])) {
    if (!isPlainObject(entry) || typeof entry.story !== "string" || !isStage(entry.to)) continue;
    if (story !== undefined && entry.story !== story) continue;
    out.push({
      story: entry.story,
      from: isStage(entry.from) ? entry.from : null,
      to: entry.to,
      node: typeof entry.node === "string" ? entry.node : "",
      time: Number.isSafeInteger(entry.time) ? entry.time as number : 0,
    });
  }
  return out;
}

function toItem(storyId: string, value: JsonValue | undefined): WorkItem | undefined {
  if (!isPlainObject(value)) return undefined;
  const v = value;
  const ids = v.depends_on;
  return {
    story_id: storyId,
    stage: isStage(v.stage) ? v.stage : "backlog",
    name: typeof v.name === "string" ? v.name : storyId,
    agent: typeof v.agent === "string" ? v.agent : null,
    retry_count: Number.isSafeInteger(v.retry_count) && (v.retry_count as number) >= 0
      ? v.retry_count as number
      : 0,
    blocked: typeof v.blocked === "boolean" ? v.blocked : false,
    frozen: typeof v.frozen === "boolean" ? v.frozen : false,
    depends_on: Array.isArray(ids) && ids.every(isStoryId) ? [...ids] : [],
  };
}

/**
 * Reads and changes pipeline state through a {@link PipelineHost}. Every
 * change is validated before anything is committed, and one call commits its
 * mutations (item fields plus stage event) in a single `commit`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { HuskiesNode, Identity, Pipeline, Replica } from "@huskies/sync";
 *
 * await using node = await HuskiesNode.open();
 * node.pipeline.put("s1", { name: "Login page" });
 * node.pipeline.move("s1", "coding");
 * assert.equal(node.pipeline.get("s1")?.stage, "coding");
 * assert.deepEqual(node.pipeline.list({ stage: "coding" }).map((item) => item.story_id), ["s1"]);
 * assert.deepEqual(
 *   node.pipeline.events({ story: "s1" }).map((event) => [event.from, event.to]),
 *   [[null, "backlog"], ["backlog", "coding"]],
 * );
 *
 * // A pipeline over a bare replica (a replica is a PipelineHost).
 * const replica = Replica.open({ identity: Identity.generate() });
 * new Pipeline(replica).put("s2", {});
 * assert.equal(new Pipeline(replica).get("s2")?.stage, "backlog");
 * replica.close();
 * ```
 */
export class Pipeline {
  readonly #host: PipelineHost;
  readonly #now: () => number;

  /**
   * Creates a pipeline over `host`.
   *
   * @param host Where mutations go and the document is read from.
   * @param now Wall clock for stage events, in milliseconds. @default Date.now
   */
  constructor(host: PipelineHost, now: () => number = Date.now) {
    this.#host = host;
    this.#now = now;
  }

  /**
   * Creates or updates an item. A new item gets defaults for the fields the
   * patch leaves out (stage "backlog", name = story id, agent null,
   * retry_count 0, blocked/frozen false, depends_on []). When the item is new
   * or its stage changes, a {@link StageEvent} is appended in the same commit.
   * Throws `TypeError`/`RangeError` for bad input, before committing anything.
   */
  put(storyId: string, patch: WorkItemPatch): WorkItem {
    validateStoryId(storyId, "storyId", "put item");
    validatePatch(patch, storyId, "put item");
    const existing = this.get(storyId);
    const given: Record<string, JsonValue> = {};
    for (const [field, value] of Object.entries(patch)) {
      if (value !== undefined) given[field] = Array.isArray(value) ? [...value] : value;
    }
    const fields: Record<string, JsonValue> = existing ? given : {
      stage: "backlog",
      name: storyId,
      agent: null,
      retry_count: 0,
      blocked: false,
      frozen: false,
      depends_on: [],
      ...given,
    };
    const mutations: Mutation[] = [];
    if (Object.keys(fields).length > 0) {
      mutations.push({ type: "update", path: ["items", storyId], fields });
    }
    const to = (fields.stage ?? existing?.stage) as Stage;
    if (!existing || to !== existing.stage) {
      const event: StageEvent = {
        story: storyId,
        from: existing?.stage ?? null,
        to,
        node: this.#host.nodeId,
        time: Math.floor(this.#now()),
      };
      mutations.push({ type: "append", path: ["event_log"], value: { ...event } });
    }
    if (mutations.length > 0) this.#host.commit(mutations);
    // The host normally applies synchronously; otherwise report what was committed.
    return this.get(storyId) ?? toItem(storyId, { ...existing, ...fields } as JsonValue)!;
  }

  /**
   * Moves an existing item to `stage`, appending a {@link StageEvent} when the
   * stage changes. Throws {@link ItemNotFoundError} when there is no such item.
   */
  move(storyId: string, stage: Stage): WorkItem {
    validateStoryId(storyId, "storyId", "move item");
    validatePatch({ stage }, storyId, "move item");
    if (!this.get(storyId)) throw new ItemNotFoundError("move item", storyId);
    return this.put(storyId, { stage });
  }

  /** Removes an existing item. Throws {@link ItemNotFoundError} when there is no such item. */
  delete(storyId: string): void {
    validateStoryId(storyId, "storyId", "delete item");
    if (!this.get(storyId)) throw new ItemNotFoundError("delete item", storyId);
    this.#host.commit([{ type: "remove", path: ["items", storyId] }]);
  }

  /** The item `storyId`, or `undefined` when there is none. */
  get(storyId: string): WorkItem | undefined {
    validateStoryId(storyId, "storyId", "get item");
    return readItem(this.#host.document, storyId);
  }

  /** Every item, optionally only those in `filter.stage`, sorted by story id. */
  list(filter: { stage?: Stage } = {}): WorkItem[] {
    return listItems(this.#host.document, filter.stage);
  }

  /** Stage events in log order, optionally only those of `filter.story`. */
  events(filter: { story?: string } = {}): StageEvent[] {
    return readEvents(this.#host.document, filter.story);
  }
}
