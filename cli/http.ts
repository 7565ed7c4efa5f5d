/**
 * The HTTP side of `huskies serve`, next to the sync endpoint:
 *
 * | path | who | what |
 * | --- | --- | --- |
 * | `/crdt-sync` | peers | WebSocket sync (the node's own handler) |
 * | `/healthz` | anyone | `{"status":"ok","nodeId":...}` |
 * | `/metrics` | anyone | Prometheus text format 0.0.4 |
 * | `/`, `/api/status`, `/api/events` | loopback (or anyone with `public_status`) | status page, JSON snapshot, Server-Sent Events |
 * | `/admin/...` | loopback **and** `Authorization: Bearer <admin.token>` | item commands, status |
 *
 * Admin API (JSON in and out; errors are `{"error": "..."}`):
 * `GET /admin/status`, `GET /admin/items[?stage=S]`, `GET|PUT|DELETE /admin/item?id=ID`
 * (PUT takes a patch object), `POST /admin/item/move?id=ID` with `{"stage": S}`,
 * `GET /admin/events[?story=ID]`. Bad input is 400, a missing item 404.
 * @module
 */
import { Buffer } from "node:buffer";
import { createHash, timingSafeEqual } from "node:crypto";
import { type Stage, STAGES } from "../crdt/pipeline.ts";
import type { HuskiesNode, NodeStatus } from "../sync/node.ts";
import type { Logger } from "../sync/logger.ts";
import { renderMetrics, SAMPLE_INTERVAL_MS, SessionTracker } from "./metrics.ts";
import { STATUS_PAGE_CSP, STATUS_PAGE_HTML } from "./status_page.ts";
import {
  eventJson,
  isoTime,
  type ItemJson,
  itemJson,
  itemPatchFromJson,
  type PeerJson,
  peerJson,
  wholeMs,
} from "./json.ts";

/** Largest admin request body accepted, bytes. */
export const MAX_ADMIN_BODY_BYTES = 64 * 1024;
/** Most status page event streams served at once. */
export const MAX_EVENT_STREAMS = 32;

/** What `/api/status` and `/admin/status` return. */
export interface StatusSnapshot {
  /** This node's id. */
  nodeId: string;
  /** CLI version. */
  version: string;
  /** Start time, ISO 8601. */
  startedAt: string;
  /** Time since start, ms. */
  uptimeMs: number;
  /** Whether unknown keys may connect. */
  open: boolean;
  /** Where the node listens. */
  urls: { sync: string; status: string };
  /** Operations held. */
  operations: number;
  /** Pending buffer size. */
  pending: { count: number; bytes: number };
  /** Authors caught equivocating. */
  forks: string[];
  /** Operations applied and refused since start. */
  counters: NodeStatus["counters"];
  /** Live sessions. */
  peers: PeerJson[];
  /** Outbound rendezvous clients (URLs without credentials). */
  rendezvous: {
    url: string;
    state: NodeStatus["rendezvous"][number]["state"];
    failures: number;
    lastError: string | null;
  }[];
  /** The pipeline stages, in order. */
  stages: readonly Stage[];
  /** Every work item (omitted where not asked for). */
  items?: ItemJson[];
}

/** Options for {@link HttpApp}. */
export interface HttpAppOptions {
  /** The node. */
  node: HuskiesNode;
  /** CLI version. */
  version: string;
  /** The admin secret (contents of `admin.token`). */
  adminToken: string;
  /** Sync and status page URLs, for the snapshot. */
  urls: { sync: string; status: string };
  /** Serve `/` and `/api/*` to non-loopback clients. @default false */
  publicStatus?: boolean;
  /** Whether the mesh is open (shown on the status page). */
  open: boolean;
  /** Logger (requests at debug level; never headers). */
  logger: Logger;
  /** Start time, ms since the epoch. @default Date.now() */
  startedAt?: number;
  /** Called when an admin client asks the node to stop (`POST /admin/stop`). */
  onStopRequest?: () => void;
}

/**
 * True for loopback addresses: 127.0.0.0/8, ::1, and IPv4-mapped 127.x (pure).
 */
export function isLoopback(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, "").toLowerCase();
  if (host === "::1" || host === "0:0:0:0:0:0:0:1") return true;
  const v4 = host.startsWith("::ffff:") ? host.slice(7) : host;
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(v4);
}

/** Compares a presented bearer secret with the expected one in constant time (pure). */
export function bearerMatches(header: string | null, expected: string): boolean {
  const presented = /^Bearer\s+(\S+)\s*$/i.exec(header ?? "")?.[1] ?? "";
  const a = createHash("sha256").update(presented).digest();
  const b = createHash("sha256").update(expected).digest();
  return timingSafeEqual(Buffer.from(a), Buffer.from(b)) && presented.length > 0;
}

/** Removes user name and password from a URL for display (pure). */
export function redactUrl(text: string): string {
  try {
    const url = new URL(text);
    if (!url.username && !url.password) return text;
    url.username = "";
    url.password = "";
    return url.toString();
  } catch {
    return text;
  }
}

const JSON_HEADERS = {
  "content-type": "application/json; charset=utf-8",
  "cache-control": "no-store",
};

function json(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body) + "\n", { status, headers: JSON_HEADERS });
}

function failure(status: number, message: string): Response {
  return json({ error: message }, status);
}

function remoteHost(info?: Deno.ServeHandlerInfo): string {
  const addr = info?.remoteAddr as Deno.NetAddr | undefined;
  return addr && "hostname" in addr ? addr.hostname : "";
}

async function readLimited(request: Request, limit: number): Promise<string | undefined> {
  if (!request.body) return "";
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > limit) {
      await reader.cancel().catch(() => {});
      return undefined;
    }
    chunks.push(value);
  }
  const all = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) (all.set(chunk, offset), offset += chunk.byteLength);
  return new TextDecoder().decode(all);
}

/**
 * Serves every HTTP path of a running node. Create it once the node is open;
 * call {@link HttpApp.close} before shutting the server down, so that event
 * streams end and timers stop.
 */
export class HttpApp {
  readonly #options: HttpAppOptions;
  readonly #node: HuskiesNode;
  readonly #startedAt: number;
  readonly #tracker = new SessionTracker();
  readonly #streams = new Set<ReadableStreamDefaultController<Uint8Array>>();
  readonly #sampler: ReturnType<typeof setInterval>;
  readonly #unsubscribe: () => void;
  #ticker: ReturnType<typeof setInterval> | undefined;
  #pushScheduled = false;
  #closed = false;

  /** Creates the app and starts sampling sessions. */
  constructor(options: HttpAppOptions) {
    this.#options = options;
    this.#node = options.node;
    this.#startedAt = options.startedAt ?? Date.now();
    this.#sampler = setInterval(() => this.#sample(), SAMPLE_INTERVAL_MS);
    this.#unsubscribe = this.#node.replica.onApplied(() => this.#schedulePush());
  }

  #sample(): void {
    if (!this.#closed) this.#tracker.sample(this.#node.sessions());
  }

  /** A status snapshot; `items` adds the pipeline board. */
  snapshot(items: boolean): StatusSnapshot {
    this.#sample();
    const status = this.#node.status();
    const now = Date.now();
    const snapshot: StatusSnapshot = {
      nodeId: status.nodeId,
      version: this.#options.version,
      startedAt: isoTime(this.#startedAt),
      uptimeMs: wholeMs(now - this.#startedAt),
      open: this.#options.open,
      urls: this.#options.urls,
      operations: status.operations,
      pending: status.pending,
      forks: status.forks,
      counters: status.counters,
      peers: this.#tracker.peers().map(peerJson),
      rendezvous: status.rendezvous.map((r) => ({
        url: redactUrl(r.url),
        state: r.state,
        failures: r.failures,
        lastError: r.lastError ?? null,
      })),
      stages: STAGES,
    };
    if (items) snapshot.items = this.#node.pipeline.list().map(itemJson);
    return snapshot;
  }

  /** The `/metrics` body. */
  metrics(): string {
    this.#sample();
    return renderMetrics({
      status: this.#node.status(),
      peers: this.#tracker.peers(),
      totals: this.#tracker.totals(),
      catchup: this.#tracker.catchup,
      version: this.#options.version,
      startedAt: this.#startedAt,
    });
  }

  /**
   * Handles one request; never throws. The sync endpoint is answered
   * synchronously, as the WebSocket upgrade requires.
   */
  handle(request: Request, info?: Deno.ServeHandlerInfo): Response | Promise<Response> {
    // Read the peer address first: it cannot be read once a socket is upgraded.
    const remote = remoteHost(info);
    try {
      const sync = this.#node.handleRequest(request, info);
      if (sync) return sync;
    } catch (error) {
      // For example a malformed upgrade request.
      return failure(400, `Cannot open a sync connection: ${(error as Error).message}`);
    }
    return this.#handleHttp(request, remote);
  }

  async #handleHttp(request: Request, remote: string): Promise<Response> {
    const url = new URL(request.url);
    let response: Response;
    try {
      response = await this.#route(request, url, isLoopback(remote));
    } catch (error) {
      this.#options.logger.log("error", "request failed", {
        method: request.method,
        path: url.pathname,
        error: (error as Error).message,
      });
      response = failure(500, `Cannot handle request: ${(error as Error).message}`);
    }
    this.#options.logger.log("debug", "http request", {
      method: request.method,
      path: url.pathname,
      status: response.status,
      remote,
    });
    return response;
  }

  async #route(request: Request, url: URL, loopback: boolean): Promise<Response> {
    const path = url.pathname;
    if (path === "/healthz") {
      return json({ status: "ok", nodeId: this.#node.nodeId });
    }
    if (path === "/metrics") {
      return new Response(this.metrics(), {
        headers: {
          "content-type": "text/plain; version=0.0.4; charset=utf-8",
          "cache-control": "no-store",
        },
      });
    }
    if (path === "/" || path === "/index.html" || path.startsWith("/api/")) {
      if (!loopback && !this.#options.publicStatus) {
        return failure(
          403,
          "Cannot show the status page: it is only served to loopback clients " +
            "(start serve with --public-status to serve it to everyone)",
        );
      }
      if (request.method !== "GET" && request.method !== "HEAD") return failure(405, "use GET");
      if (path === "/api/status") return json(this.snapshot(true));
      if (path === "/api/events") return this.#eventStream();
      if (path.startsWith("/api/")) return failure(404, `Cannot find ${path}`);
      return new Response(STATUS_PAGE_HTML, {
        headers: {
          "content-type": "text/html; charset=utf-8",
          "cache-control": "no-store",
          "content-security-policy": STATUS_PAGE_CSP,
          "x-content-type-options": "nosniff",
          "referrer-policy": "no-referrer",
        },
      });
    }
    if (path === "/admin" || path.startsWith("/admin/")) {
      if (!loopback) {
        return failure(
          403,
          "Cannot use the admin API: it only answers requests from loopback addresses",
        );
      }
      if (!bearerMatches(request.headers.get("authorization"), this.#options.adminToken)) {
        return failure(403, "Cannot use the admin API: the bearer token is missing or wrong");
      }
      return await this.#admin(request, url);
    }
    return new Response("not found\n", { status: 404 });
  }

  async #admin(request: Request, url: URL): Promise<Response> {
    const pipeline = this.#node.pipeline;
    const method = request.method;
    const path = url.pathname;
    const id = url.searchParams.get("id");
    const readBody = async (): Promise<unknown> => {
      const text = await readLimited(request, MAX_ADMIN_BODY_BYTES);
      if (text === undefined) {
        throw new RangeError(`Cannot read request: body over ${MAX_ADMIN_BODY_BYTES} bytes`);
      }
      try {
        return text ? JSON.parse(text) : {};
      } catch {
        throw new SyntaxError("Cannot read request: the body is not valid JSON");
      }
    };
    const needId = (action: string): string => {
      if (id === null) throw new TypeError(`Cannot ${action}: the id query parameter is missing`);
      return id;
    };
    const missing = (action: string, storyId: string) =>
      failure(404, `Cannot ${action}: no item ${storyId}`);
    try {
      if (path === "/admin/status" && method === "GET") return json(this.snapshot(false));
      if (path === "/admin/stop") {
        if (method !== "POST") return failure(405, "Cannot stop the node: use POST");
        if (!this.#options.onStopRequest) {
          return failure(
            501,
            "Cannot stop the node: this server was not started by `huskies serve`",
          );
        }
        this.#options.onStopRequest();
        return json({ stopping: true, nodeId: this.#node.nodeId }, 202);
      }
      if (path === "/admin/items" && method === "GET") {
        const stage = url.searchParams.get("stage");
        if (stage !== null && !(STAGES as readonly string[]).includes(stage)) {
          throw new RangeError(
            `Cannot list items: stage must be one of ${STAGES.join(", ")}, got ${
              JSON.stringify(stage)
            }`,
          );
        }
        return json(pipeline.list(stage === null ? {} : { stage: stage as Stage }).map(itemJson));
      }
      if (path === "/admin/events" && method === "GET") {
        const story = url.searchParams.get("story");
        return json(pipeline.events(story === null ? {} : { story }).map(eventJson));
      }
      if (path === "/admin/item") {
        if (method === "GET") {
          const storyId = needId("get item");
          const item = pipeline.get(storyId);
          return item ? json(itemJson(item)) : missing("get item", storyId);
        }
        if (method === "PUT") {
          const storyId = needId("put item");
          const patch = itemPatchFromJson(await readBody());
          return json(itemJson(pipeline.put(storyId, patch)));
        }
        if (method === "DELETE") {
          const storyId = needId("delete item");
          if (!pipeline.get(storyId)) return missing("delete item", storyId);
          pipeline.delete(storyId);
          return json({ deleted: storyId });
        }
        return failure(405, "Cannot use /admin/item: use GET, PUT or DELETE");
      }
      if (path === "/admin/item/move") {
        if (method !== "POST") return failure(405, "Cannot move item: use POST");
        const storyId = needId("move item");
        const body = await readBody() as { stage?: unknown };
        if (typeof body !== "object" || body === null || typeof body.stage !== "string") {
          throw new TypeError('Cannot move item: the body must be {"stage": "<stage>"}');
        }
        if (!pipeline.get(storyId)) return missing("move item", storyId);
        return json(itemJson(pipeline.move(storyId, body.stage as Stage)));
      }
      return failure(404, `Cannot find ${method} ${path} in the admin API`);
    } catch (error) {
      if (
        error instanceof TypeError || error instanceof RangeError || error instanceof SyntaxError
      ) {
        return failure(400, error.message);
      }
      throw error;
    }
  }

  #eventStream(): Response {
    if (this.#closed) return failure(503, "Cannot stream events: the node is shutting down");
    if (this.#streams.size >= MAX_EVENT_STREAMS) {
      return failure(503, `Cannot stream events: ${MAX_EVENT_STREAMS} streams are open already`);
    }
    let controller!: ReadableStreamDefaultController<Uint8Array>;
    const body = new ReadableStream<Uint8Array>({
      start: (c) => {
        controller = c;
        this.#streams.add(c);
        c.enqueue(this.#event(JSON.stringify(this.snapshot(true))));
        this.#ticker ??= setInterval(() => this.#push(), 1000);
      },
      cancel: () => this.#dropStream(controller),
    });
    return new Response(body, {
      headers: {
        "content-type": "text/event-stream; charset=utf-8",
        "cache-control": "no-store",
        "x-accel-buffering": "no",
      },
    });
  }

  #event(data: string): Uint8Array {
    return new TextEncoder().encode(`event: status\ndata: ${data}\n\n`);
  }

  #dropStream(controller: ReadableStreamDefaultController<Uint8Array>): void {
    this.#streams.delete(controller);
    if (this.#streams.size === 0 && this.#ticker !== undefined) {
      clearInterval(this.#ticker);
      this.#ticker = undefined;
    }
  }

  #schedulePush(): void {
    if (this.#pushScheduled || this.#streams.size === 0) return;
    this.#pushScheduled = true;
    setTimeout(() => {
      this.#pushScheduled = false;
      this.#push();
    }, 50);
  }

  #push(): void {
    if (this.#closed || this.#streams.size === 0) return;
    const frame = this.#event(JSON.stringify(this.snapshot(true)));
    for (const controller of [...this.#streams]) {
      try {
        controller.enqueue(frame);
      } catch {
        this.#dropStream(controller);
      }
    }
  }

  /** Ends every event stream and stops the timers. Safe to call twice. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#sampler);
    if (this.#ticker !== undefined) clearInterval(this.#ticker);
    this.#unsubscribe();
    for (const controller of this.#streams) {
      try {
        controller.close();
      } catch {
        // Already closed by the client.
      }
    }
    this.#streams.clear();
  }
}
