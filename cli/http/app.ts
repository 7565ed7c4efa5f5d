/**
 * The HTTP side of `huskies serve`, next to the sync endpoint: every route
 * of `routes.ts`, with its access checks (`guard.ts`), the status snapshot,
 * metrics, the status page and its event stream, and the admin API
 * (`admin.ts`). Admin and API errors are `{"error": "..."}`.
 * @module
 */
import { encodedSize } from "../../crdt/operation.ts";
import { STAGES } from "../../crdt/pipeline.ts";
import type { Logger } from "../../sync/logger.ts";
import type { HuskiesNode, NodeStatus } from "../../sync/node.ts";
import { isoTime, type ItemJson, itemJson, type PeerJson, peerJson, wholeMs } from "../json.ts";
import { applyHistograms, renderMetrics, SAMPLE_INTERVAL_MS, SessionTracker } from "../metrics.ts";
import { EventLoopLagMonitor, sampleProcess } from "../process_metrics.ts";
import { LOCAL_ORIGIN } from "../../crdt/replica.ts";
import { STATUS_PAGE_CSP, STATUS_PAGE_HTML } from "../status_page.ts";
import { type AdminHandler, adminHandlers } from "./admin.ts";
import { type MemberJson, memberJson } from "./members.ts";
import { EventStreams } from "./events.ts";
import { bearerMatches, hostAllowed, isLoopback, originAllowed, redactUrl } from "./guard.ts";
import { failure, json } from "./respond.ts";
import { type Access, matchRoute, type RouteName, ROUTES } from "./routes.ts";

/** What `/api/status` and `/admin/status` return (see the JSON convention in `cli/json.ts`). */
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
  /** Hash of the visible state: equal on nodes that have converged. */
  stateHash: string;
  /** Pending buffer size. */
  pending: { count: number; bytes: number };
  /** Authors caught equivocating. */
  forks: string[];
  /**
   * Whether the node signs writes now: `state` open, starting, lost-history,
   * claim or own-key-forked; `reason` the message a write gets (null when
   * open); `until` when the refusal ends at the latest (ISO), if known.
   */
  writeGate: {
    state: NodeStatus["writeGate"]["state"];
    reason: string | null;
    retryable: boolean;
    until: string | null;
    lostHistory: { recorded: number; held: number } | null;
  };
  /** Operations applied and refused since start. */
  counters: NodeStatus["counters"];
  /** Live sessions. */
  peers: PeerJson[];
  /** Peers whose sessions ended and that have not come back (the most recent 32). */
  departedPeers: { peer: string; label: string | null; direction: string; lastSeenAt: string }[];
  /** Outbound rendezvous clients (URLs without credentials). */
  rendezvous: {
    url: string;
    state: NodeStatus["rendezvous"][number]["state"];
    failures: number;
    lastError: string | null;
    /** When the next dial is due, while `waiting` (when the node reports it). */
    nextRetryAt: string | null;
  }[];
  /** The pipeline stages, in order. */
  stages: readonly string[];
  /** The mesh's members (empty when the node belongs to no mesh). */
  members: MemberJson[];
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
  /** Show node and peer ids in `/metrics` and `/healthz` to non-loopback clients. @default false */
  publicMetrics?: boolean;
  /**
   * Host names (besides loopback names and IP literals) that requests may
   * carry in `Host`, e.g. the name the status page is reached by.
   */
  publicHosts?: readonly string[];
  /** Whether the mesh is open (shown on the status page). */
  open: boolean;
  /** Logger (requests at debug level; never headers). */
  logger: Logger;
  /** Start time, ms since the epoch. @default Date.now() */
  startedAt?: number;
  /** Called when an admin client asks the node to stop (`POST /admin/stop`). */
  onStopRequest?: () => void;
}

/** What a route handler gets. */
interface RouteContext {
  request: Request;
  url: URL;
  /** The client's address. */
  remote: string;
}

/**
 * When a rendezvous client dials next, if the node says (pure). Read
 * defensively: older nodes report only state, failures and the last error.
 */
function nextRetry(info: object): number | undefined {
  const value = (info as { nextRetryAt?: unknown }).nextRetryAt;
  if (typeof value === "number" && Number.isFinite(value)) return value;
  if (value instanceof Date) return value.getTime();
  return undefined;
}

/** `A`, `A or B`, `A, B or C` (pure). */
function orList(words: string[]): string {
  return words.length < 2 ? words.join("") : `${words.slice(0, -1).join(", ")} or ${words.at(-1)}`;
}

function remoteHost(info?: Deno.ServeHandlerInfo): string {
  const addr = info?.remoteAddr as Deno.NetAddr | undefined;
  return addr && "hostname" in addr ? addr.hostname : "";
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
  readonly #apply = applyHistograms();
  readonly #lag = new EventLoopLagMonitor();
  readonly #events: EventStreams;
  readonly #sampler: ReturnType<typeof setInterval>;
  readonly #unsubscribe: () => void;
  readonly #routes: Record<Exclude<RouteName, "sync">, (c: RouteContext) => Promise<Response>>;
  #closed = false;

  /** Creates the app and starts sampling sessions. */
  constructor(options: HttpAppOptions) {
    this.#options = options;
    this.#node = options.node;
    this.#startedAt = options.startedAt ?? Date.now();
    this.#events = new EventStreams(() => JSON.stringify(this.snapshot(true)));
    this.#sampler = setInterval(() => this.#sample(), SAMPLE_INTERVAL_MS);
    this.#unsubscribe = this.#node.replica.onApplied((ops, origin) => {
      const local = origin === LOCAL_ORIGIN;
      let bytes = 0;
      for (const op of ops) bytes += encodedSize(op); // measured once per operation, cached
      (local ? this.#apply.batchOps.local : this.#apply.batchOps.peer).observe(ops.length);
      (local ? this.#apply.batchBytes.local : this.#apply.batchBytes.peer).observe(bytes);
      this.#events.schedulePush();
    });
    const admin = adminHandlers({
      node: this.#node,
      status: () => this.snapshot(false),
      onStopRequest: options.onStopRequest,
      observeWrite: (seconds) => this.#apply.localWrite.observe(seconds),
    });
    const adminRoute = (handler: AdminHandler) => (c: RouteContext) => handler(c.request, c.url);
    const page = () =>
      Promise.resolve(
        new Response(STATUS_PAGE_HTML, {
          headers: {
            "content-type": "text/html; charset=utf-8",
            "cache-control": "no-store",
            "content-security-policy": STATUS_PAGE_CSP,
            "x-content-type-options": "nosniff",
            "referrer-policy": "no-referrer",
          },
        }),
      );
    this.#routes = {
      health: (c) =>
        Promise.resolve(
          json(this.#revealIds(c) ? { status: "ok", nodeId: this.#node.nodeId } : { status: "ok" }),
        ),
      metrics: (c) =>
        Promise.resolve(
          new Response(this.metrics({ ids: this.#revealIds(c) }), {
            headers: {
              "content-type": "text/plain; version=0.0.4; charset=utf-8",
              "cache-control": "no-store",
            },
          }),
        ),
      page,
      pageIndex: page,
      apiStatus: () => Promise.resolve(json(this.snapshot(true))),
      apiEvents: () => Promise.resolve(this.#events.open()),
      adminStatus: adminRoute(admin.adminStatus),
      adminItems: adminRoute(admin.adminItems),
      adminItemGet: adminRoute(admin.adminItemGet),
      adminItemPut: adminRoute(admin.adminItemPut),
      adminItemDelete: adminRoute(admin.adminItemDelete),
      adminItemMove: adminRoute(admin.adminItemMove),
      adminEvents: adminRoute(admin.adminEvents),
      adminStop: adminRoute(admin.adminStop),
      adminMembers: adminRoute(admin.adminMembers),
      adminMembersInit: adminRoute(admin.adminMembersInit),
      adminMembersGrant: adminRoute(admin.adminMembersGrant),
      adminMembersRevoke: adminRoute(admin.adminMembersRevoke),
      adminMembersImportTrust: adminRoute(admin.adminMembersImportTrust),
    };
  }

  #sample(): void {
    if (!this.#closed) this.#tracker.sample(this.#node.sessions());
  }

  /** A status snapshot; `items` adds the pipeline board. */
  snapshot(items: boolean): StatusSnapshot {
    this.#sample();
    const status = this.#node.status();
    const now = Date.now();
    const labels = new Map<string, string>();
    for (const entry of this.#node.trust.list()) {
      if (entry.label) labels.set(entry.key, entry.label);
    }
    const members = this.#node.members.list().map(memberJson);
    for (const member of members) if (member.label) labels.set(member.key, member.label);
    const snapshot: StatusSnapshot = {
      nodeId: status.nodeId,
      version: this.#options.version,
      startedAt: isoTime(this.#startedAt),
      uptimeMs: wholeMs(now - this.#startedAt),
      open: this.#options.open,
      urls: this.#options.urls,
      operations: status.operations,
      stateHash: status.stateHash,
      pending: status.pending,
      forks: status.forks,
      writeGate: {
        state: status.writeGate.state,
        reason: status.writeGate.reason,
        retryable: status.writeGate.retryable,
        until: isoTime(status.writeGate.until),
        lostHistory: status.writeGate.lostHistory ?? null,
      },
      counters: status.counters,
      peers: this.#tracker.peers().map((p) =>
        peerJson(p, labels.get(p.peer) ?? null, this.#node.behind(p.peer) ?? null)
      ),
      departedPeers: this.#tracker.departed().map((p) => ({
        peer: p.peer,
        label: labels.get(p.peer) ?? null,
        direction: p.direction,
        lastSeenAt: isoTime(p.lastSeen),
      })),
      rendezvous: status.rendezvous.map((r) => ({
        url: redactUrl(r.url),
        state: r.state,
        failures: r.failures,
        lastError: r.lastError ?? null,
        nextRetryAt: r.state === "waiting" ? isoTime(nextRetry(r)) : null,
      })),
      stages: STAGES,
      members,
    };
    if (items) snapshot.items = this.#node.pipeline.list().map(itemJson);
    return snapshot;
  }

  /**
   * Whether a request may learn node and peer ids: from loopback under one of
   * the node's names, or from anywhere with `publicStatus` or `publicMetrics`.
   */
  #revealIds(c: RouteContext): boolean {
    if (this.#options.publicStatus || this.#options.publicMetrics) return true;
    return isLoopback(c.remote) &&
      hostAllowed(c.request.headers.get("host"), this.#options.publicHosts ?? []);
  }

  /** The `/metrics` body; `ids: false` leaves out node and peer ids. */
  metrics(options: { ids?: boolean } = {}): string {
    this.#sample();
    return renderMetrics({
      status: this.#node.status(),
      peers: this.#tracker.peers(),
      totals: this.#tracker.totals(),
      catchup: this.#tracker.catchup,
      apply: this.#apply,
      process: sampleProcess(),
      lag: this.#lag.take(),
      version: this.#options.version,
      startedAt: this.#startedAt,
      ids: options.ids ?? true,
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
      response = await this.#route(request, url, remote);
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

  /** Why a request may not use a route of `access`, or `undefined` when it may. */
  #refusal(access: Access, request: Request, remote: string): Response | undefined {
    if (access === "status" || access === "admin") {
      // A DNS rebinding page reaches us from the operator's browser, so from loopback:
      // only the names it uses tell it apart.
      const hosts = this.#options.publicHosts ?? [];
      const host = request.headers.get("host");
      if (!hostAllowed(host, hosts)) {
        return failure(
          403,
          `Cannot answer for host ${JSON.stringify(host)}: it is not a name of this node ` +
            "(start serve with --public-host NAME if it is)",
        );
      }
      if (!originAllowed(request.headers.get("origin"), host, hosts)) {
        return failure(403, "Cannot answer a cross-origin request: only the status page may ask");
      }
    }
    const loopback = isLoopback(remote);
    if (access === "status" && !loopback && !this.#options.publicStatus) {
      return failure(
        403,
        "Cannot show the status page: it is only served to loopback clients " +
          "(start serve with --public-status to serve it to everyone)",
      );
    }
    if (access === "admin") {
      if (!loopback) {
        return failure(
          403,
          "Cannot use the admin API: it only answers requests from loopback addresses",
        );
      }
      if (!bearerMatches(request.headers.get("authorization"), this.#options.adminToken)) {
        return failure(403, "Cannot use the admin API: the bearer token is missing or wrong");
      }
    }
    return undefined;
  }

  #route(request: Request, url: URL, remote: string): Promise<Response> {
    const match = matchRoute(request.method, url.pathname);
    if (match.kind === "none") {
      const refused = match.access && this.#refusal(match.access, request, remote);
      if (refused) return Promise.resolve(refused);
      return Promise.resolve(failure(404, `Cannot find ${request.method} ${url.pathname}`));
    }
    if (match.kind === "wrong-method") {
      return Promise.resolve(
        failure(405, `Cannot use ${match.path}: use ${orList(match.allow)}`, {
          allow: match.allow.join(", "),
        }),
      );
    }
    if (match.name === "sync") {
      return Promise.resolve(failure(400, "Cannot open a sync connection: use a WebSocket"));
    }
    const refused = this.#refusal(ROUTES[match.name].access, request, remote);
    if (refused) return Promise.resolve(refused);
    return this.#routes[match.name]({ request, url, remote });
  }

  /** Ends every event stream and stops the timers. Safe to call twice. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#sampler);
    this.#lag.stop();
    this.#unsubscribe();
    this.#events.close();
  }
}
