/**
 * The admin API's handlers, one per admin route of `routes.ts`. Bad input
 * is 400 (the pipeline's TypeError/RangeError, malformed JSON), a missing
 * item 404. Access checks happen before these run (see `app.ts`).
 * @module
 */
import { type Stage, STAGES } from "../../crdt/pipeline.ts";
import { WriteRefusedError } from "../../crdt/write_guard.ts";
import { type HuskiesNode, PeersTimeoutError } from "../../sync/node.ts";
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

/** The `code` of an admin error body for a write fewer peers than asked confirmed in time. */
export const PEERS_TIMEOUT_CODE = "PEERS_TIMEOUT";
/** Longest `timeoutSecs` of a write that waits for peers. */
export const MAX_WAIT_PEERS_SECS = 3600;
/** `timeoutSecs` when a write waits for peers without one. */
export const DEFAULT_WAIT_PEERS_SECS = 30;

/**
 * Reads a wait for peers (pure): `peers` a whole number from 0 to 9999,
 * `secs` seconds above 0 (default {@link DEFAULT_WAIT_PEERS_SECS}); undefined
 * when `peers` is. `names` are the query parameters or flags in messages.
 * @throws {RangeError} a value is out of range, or `secs` comes alone.
 */
export function parseWaitPeers(
  peers: string | undefined,
  secs: string | undefined,
  action: string,
  names: { peers: string; secs: string } = { peers: "waitPeers", secs: "timeoutSecs" },
): { count: number; timeoutMs: number } | undefined {
  if (peers === undefined) {
    if (secs !== undefined) {
      throw new RangeError(`Cannot ${action}: ${names.secs} needs ${names.peers}`);
    }
    return undefined;
  }
  if (!/^\d{1,4}$/.test(peers.trim())) {
    throw new RangeError(
      `Cannot ${action}: ${names.peers} must be a whole number from 0 to 9999, got "${peers}"`,
    );
  }
  const timeout = secs === undefined ? DEFAULT_WAIT_PEERS_SECS : Number(secs.trim());
  if (
    secs !== undefined &&
    (!/^\d+(\.\d+)?$/.test(secs.trim()) || !(timeout > 0 && timeout <= MAX_WAIT_PEERS_SECS))
  ) {
    throw new RangeError(
      `Cannot ${action}: ${names.secs} must be seconds above 0 and at most ` +
        `${MAX_WAIT_PEERS_SECS}, got "${secs}"`,
    );
  }
  return { count: Number(peers.trim()), timeoutMs: Math.round(timeout * 1000) };
}

/** `waitPeers=N` and `timeoutSecs=S` of an admin write (pure); see {@link parseWaitPeers}. */
function waitPeersQuery(
  url: URL,
  action: string,
): { count: number; timeoutMs: number } | undefined {
  const get = (name: string) => url.searchParams.get(name) ?? undefined;
  return parseWaitPeers(get("waitPeers"), get("timeoutSecs"), action);
}

/** The `code` of an admin error body for a write the node refused to sign. */
export const WRITE_REFUSED_CODE = "WRITE_REFUSED";

/**
 * The response to a write the node refused to sign (pure): 503 with
 * `Retry-After` (seconds) when it may succeed later, 409 when an operator
 * must act (own key forked). The body is `{"error", "code": "WRITE_REFUSED",
 * "reason", "retryable"}`; nothing was signed or stored.
 */
export function writeRefusedResponse(error: WriteRefusedError, now: number): Response {
  const details = { code: WRITE_REFUSED_CODE, reason: error.reason, retryable: error.retryable };
  if (!error.retryable) return failure(409, error.message, {}, details);
  const until = "until" in error.refusal ? error.refusal.until : now + 1000;
  const retryAfter = Math.max(1, Math.ceil((until - now) / 1000));
  return failure(503, error.message, { "retry-after": String(retryAfter) }, {
    ...details,
    retryAfterSecs: retryAfter,
  });
}

/**
 * Input errors become 400, refused writes 503/409 (see
 * {@link writeRefusedResponse}), membership refusals (no scope, not an admin)
 * 409; anything else is left to the caller (500).
 */
function inputErrors(handler: AdminHandler, now: () => number): AdminHandler {
  return async (request, url) => {
    try {
      return await handler(request, url);
    } catch (error) {
      if (error instanceof WriteRefusedError) return writeRefusedResponse(error, now());
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
  /**
   * Answers a write that returned (so it is applied and durably stored): at
   * once, or with `waitPeers`, once that many peers' clocks count it (504
   * with code PEERS_TIMEOUT when they do not in time).
   */
  const acknowledge = async (url: URL, action: string, body: unknown): Promise<Response> => {
    const wait = waitPeersQuery(url, action);
    const head = node.ownHead();
    if (wait === undefined || head === undefined) return json(body);
    try {
      await node.waitForPeers(head, wait.count, { timeoutMs: wait.timeoutMs });
    } catch (error) {
      if (!(error instanceof PeersTimeoutError)) throw error;
      return failure(504, error.message, {}, {
        code: PEERS_TIMEOUT_CODE,
        wanted: error.wanted,
        reached: error.reached.length,
      });
    }
    return json(body);
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
      waitPeersQuery(url, "put item");
      return acknowledge(url, "put item", itemJson(timed(() => pipeline.put(storyId, patch))));
    },
    adminItemDelete: (_request, url) => {
      const storyId = needId(url, "delete item");
      waitPeersQuery(url, "delete item");
      if (!pipeline.get(storyId)) return Promise.resolve(missing("delete item", storyId));
      timed(() => pipeline.delete(storyId));
      return acknowledge(url, "delete item", { deleted: storyId });
    },
    adminItemMove: async (request, url) => {
      const storyId = needId(url, "move item");
      const body = await readBody(request) as { stage?: unknown };
      if (typeof body !== "object" || body === null || typeof body.stage !== "string") {
        throw new TypeError('Cannot move item: the body must be {"stage": "<stage>"}');
      }
      waitPeersQuery(url, "move item");
      if (!pipeline.get(storyId)) return missing("move item", storyId);
      const moved = itemJson(timed(() => pipeline.move(storyId, body.stage as Stage)));
      return acknowledge(url, "move item", moved);
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
    handlers[name] = inputErrors(handlers[name], () => node.timers.now());
  }
  return handlers;
}
