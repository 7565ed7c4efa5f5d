/**
 * The admin API's handlers, one per admin route of `routes.ts`. Bad input
 * is 400 (the pipeline's TypeError/RangeError, malformed JSON), a missing
 * item 404. Access checks happen before these run (see `app.ts`).
 * @module
 */
import { type Stage, STAGES } from "../../crdt/pipeline.ts";
import type { HuskiesNode } from "../../sync/node.ts";
import { eventJson, itemJson, itemPatchFromJson } from "../json.ts";
import { failure, json, readLimited } from "./respond.ts";
import type { AdminRouteName } from "./routes.ts";
import { memberHandlers } from "./members.ts";
import { MembershipRefusedError } from "../../crdt/replica_members.ts";

/** Largest admin request body accepted, bytes. */
export const MAX_ADMIN_BODY_BYTES = 64 * 1024;

/** Handles one admin request. */
export type AdminHandler = (request: Request, url: URL) => Promise<Response>;

/** What the admin handlers need. */
export interface AdminDeps {
  /** The node. */
  node: HuskiesNode;
  /** The status snapshot (without the board). */
  status(): unknown;
  /** Asks `serve` to stop; absent when the app does not run under `serve`. */
  onStopRequest?: () => void;
  /** Told how long each write (put, move, delete) took, seconds. */
  observeWrite?: (seconds: number) => void;
}

async function readBody(request: Request): Promise<unknown> {
  const text = await readLimited(request, MAX_ADMIN_BODY_BYTES);
  if (text === undefined) {
    throw new RangeError(`Cannot read request: body over ${MAX_ADMIN_BODY_BYTES} bytes`);
  }
  try {
    return text ? JSON.parse(text) : {};
  } catch {
    throw new SyntaxError("Cannot read request: the body is not valid JSON");
  }
}

function needId(url: URL, action: string): string {
  const id = url.searchParams.get("id");
  if (id === null) throw new TypeError(`Cannot ${action}: the id query parameter is missing`);
  return id;
}

function missing(action: string, storyId: string): Response {
  return failure(404, `Cannot ${action}: no item ${storyId}`);
}

/**
 * Input errors become 400, membership refusals (no scope, not an admin) 409;
 * anything else is left to the caller (500).
 */
function inputErrors(handler: AdminHandler): AdminHandler {
  return async (request, url) => {
    try {
      return await handler(request, url);
    } catch (error) {
      if (
        error instanceof TypeError || error instanceof RangeError || error instanceof SyntaxError
      ) {
        return failure(400, error.message);
      }
      if (error instanceof MembershipRefusedError) return failure(409, error.message);
      throw error;
    }
  };
}

/** One handler per admin route (the type makes the table and the handlers agree). */
export function adminHandlers(deps: AdminDeps): Record<AdminRouteName, AdminHandler> {
  const node = deps.node;
  /** Runs a pipeline write and reports its duration. */
  const timed = <T>(write: () => T): T => {
    const started = performance.now();
    const result = write();
    deps.observeWrite?.((performance.now() - started) / 1000);
    return result;
  };
  const pipeline = node.pipeline;
  const handlers: Record<AdminRouteName, AdminHandler> = {
    adminStatus: () => Promise.resolve(json(deps.status())),
    adminItems: (_request, url) => {
      const stage = url.searchParams.get("stage");
      if (stage !== null && !(STAGES as readonly string[]).includes(stage)) {
        throw new RangeError(
          `Cannot list items: stage must be one of ${STAGES.join(", ")}, got ${
            JSON.stringify(stage)
          }`,
        );
      }
      const items = pipeline.list(stage === null ? {} : { stage: stage as Stage });
      return Promise.resolve(json(items.map(itemJson)));
    },
    adminEvents: (_request, url) => {
      const story = url.searchParams.get("story");
      const events = pipeline.events(story === null ? {} : { story });
      return Promise.resolve(json(events.map(eventJson)));
    },
    adminItemGet: (_request, url) => {
      const storyId = needId(url, "get item");
      const item = pipeline.get(storyId);
      return Promise.resolve(item ? json(itemJson(item)) : missing("get item", storyId));
    },
    adminItemPut: async (request, url) => {
      const storyId = needId(url, "put item");
      const patch = itemPatchFromJson(await readBody(request));
      return json(itemJson(timed(() => pipeline.put(storyId, patch))));
    },
    adminItemDelete: (_request, url) => {
      const storyId = needId(url, "delete item");
      if (!pipeline.get(storyId)) return Promise.resolve(missing("delete item", storyId));
      timed(() => pipeline.delete(storyId));
      return Promise.resolve(json({ deleted: storyId }));
    },
    adminItemMove: async (request, url) => {
      const storyId = needId(url, "move item");
      const body = await readBody(request) as { stage?: unknown };
      if (typeof body !== "object" || body === null || typeof body.stage !== "string") {
        throw new TypeError('Cannot move item: the body must be {"stage": "<stage>"}');
      }
      if (!pipeline.get(storyId)) return missing("move item", storyId);
      return json(itemJson(timed(() => pipeline.move(storyId, body.stage as Stage))));
    },
    adminStop: () => {
      if (!deps.onStopRequest) {
        return Promise.resolve(
          failure(501, "Cannot stop the node: this server was not started by `huskies serve`"),
        );
      }
      deps.onStopRequest();
      return Promise.resolve(json({ stopping: true, nodeId: deps.node.nodeId }, 202));
    },
    ...memberHandlers(node),
  };
  for (const name of Object.keys(handlers) as AdminRouteName[]) {
    handlers[name] = inputErrors(handlers[name]);
  }
  return handlers;
}
