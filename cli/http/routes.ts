/**
 * Every HTTP route of `huskies serve`, in one table shared by the server
 * (which must handle each one: its handler map is typed by this table) and
 * by the CLI commands that call the admin API. {@link matchRoute} and
 * {@link routePath} are pure.
 *
 * | route | who may use it |
 * | --- | --- |
 * | `sync` | peers, authenticated by the handshake |
 * | `health`, `metrics` | anyone; node and peer ids only for loopback clients (or `public_metrics`) |
 * | `page`, `apiStatus`, `apiEvents` | loopback clients (anyone with `public_status`) |
 * | `admin*` | loopback clients with `Authorization: Bearer <admin.token>` |
 *
 * Every route but `sync` also checks the `Host` header (see `guard.ts`).
 * @module
 */
import { SYNC_PATH } from "../../sync/node.ts";

/** Who may use a route. */
export type Access = "peer" | "anyone" | "status" | "admin";

/** One route: method, path, who may use it, and what it does. */
export interface Route {
  /** HTTP method (`GET` routes answer `HEAD` too). */
  method: "GET" | "POST" | "PUT" | "DELETE";
  /** The path, without query. */
  path: string;
  /** Who may use it. */
  access: Access;
  /** One line for documentation. */
  summary: string;
}

/** The route table. */
export const ROUTES = {
  sync: { method: "GET", path: SYNC_PATH, access: "peer", summary: "WebSocket sync" },
  health: { method: "GET", path: "/healthz", access: "anyone", summary: "liveness and node id" },
  metrics: {
    method: "GET",
    path: "/metrics",
    access: "anyone",
    summary: "Prometheus text format 0.0.4",
  },
  page: { method: "GET", path: "/", access: "status", summary: "the status page" },
  pageIndex: { method: "GET", path: "/index.html", access: "status", summary: "the status page" },
  apiStatus: {
    method: "GET",
    path: "/api/status",
    access: "status",
    summary: "status snapshot with the pipeline board",
  },
  apiEvents: {
    method: "GET",
    path: "/api/events",
    access: "status",
    summary: "Server-Sent Events: a snapshot on every change and every second",
  },
  adminStatus: {
    method: "GET",
    path: "/admin/status",
    access: "admin",
    summary: "status snapshot",
  },
  adminItems: {
    method: "GET",
    path: "/admin/items",
    access: "admin",
    summary: "items, `?stage=S` for one stage",
  },
  adminItemGet: { method: "GET", path: "/admin/item", access: "admin", summary: "`?id=ID`" },
  adminItemPut: {
    method: "PUT",
    path: "/admin/item",
    access: "admin",
    summary: "`?id=ID`, body: the fields to change",
  },
  adminItemDelete: { method: "DELETE", path: "/admin/item", access: "admin", summary: "`?id=ID`" },
  adminItemMove: {
    method: "POST",
    path: "/admin/item/move",
    access: "admin",
    summary: '`?id=ID`, body `{"stage": S}`',
  },
  adminEvents: {
    method: "GET",
    path: "/admin/events",
    access: "admin",
    summary: "stage events, `?story=ID` for one item",
  },
  adminStop: { method: "POST", path: "/admin/stop", access: "admin", summary: "stop cleanly" },
  adminMembers: { method: "GET", path: "/admin/members", access: "admin", summary: "mesh members" },
  adminMembersInit: {
    method: "POST",
    path: "/admin/members/init",
    access: "admin",
    summary: 'create a mesh with this node as first admin, body `{"label": L}`',
  },
  adminMembersGrant: {
    method: "POST",
    path: "/admin/members/grant",
    access: "admin",
    summary: 'body `{"key": K, "scope": "write"|"read"|"admin", "label": L}`',
  },
  adminMembersRevoke: {
    method: "POST",
    path: "/admin/members/revoke",
    access: "admin",
    summary: "body `{\"key\": K}`; the cut is this node's view of the member's chain",
  },
  adminMembersImportTrust: {
    method: "POST",
    path: "/admin/members/import-trust",
    access: "admin",
    summary: "grant write to every write-trusted key that is not a member",
  },
} as const satisfies Record<string, Route>;

/** The name of a route in {@link ROUTES}. */
export type RouteName = keyof typeof ROUTES;

/** The names of the admin routes. */
export type AdminRouteName = {
  [K in RouteName]: typeof ROUTES[K]["access"] extends "admin" ? K : never;
}[RouteName];

/** What {@link matchRoute} found. */
export type RouteMatch =
  | { kind: "route"; name: RouteName }
  | { kind: "wrong-method"; path: string; allow: string[] }
  | { kind: "none"; access?: Access };

const NAMES = Object.keys(ROUTES) as RouteName[];

/** Finds the route for `method` and `path` (pure); `HEAD` matches `GET` routes. */
export function matchRoute(method: string, path: string): RouteMatch {
  const wanted = method === "HEAD" ? "GET" : method;
  const onPath = NAMES.filter((name) => ROUTES[name].path === path);
  const found = onPath.find((name) => ROUTES[name].method === wanted);
  if (found) return { kind: "route", name: found };
  if (onPath.length > 0) {
    return { kind: "wrong-method", path, allow: onPath.map((name) => ROUTES[name].method) };
  }
  // Unknown paths under a guarded prefix get that prefix's access checks first.
  if (path === "/admin" || path.startsWith("/admin/")) return { kind: "none", access: "admin" };
  if (path.startsWith("/api/")) return { kind: "none", access: "status" };
  return { kind: "none" };
}

/** The path and query of a route, e.g. `/admin/item?id=S-1` (pure); absent values are left out. */
export function routePath(name: RouteName, query: Record<string, string | undefined> = {}): string {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value !== undefined) search.set(key, value);
  }
  const text = search.toString();
  return ROUTES[name].path + (text ? `?${text}` : "");
}
