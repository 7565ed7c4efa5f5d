/**
 * The one JSON convention of the CLI and of the node's HTTP API (`--json`
 * output, `/api/status`, `/admin/...`), documented in `cli/USAGE.md`:
 *
 * - keys are camelCase (`storyId`, `retryCount`, `dependsOn`);
 * - times are ISO 8601 strings in UTC (`2026-12-01T22:30:06.123Z`);
 * - durations are whole milliseconds, in keys ending in `Ms`;
 * - a value that is absent is `null`, not a missing key.
 *
 * The library keeps its own field names (the replicated document's are
 * snake_case); every conversion between the two lives here. All pure.
 * @module
 */
import type { TokenInfo, TrustEntry } from "../auth/mod.ts";
import type { Stage, StageEvent, WorkItem, WorkItemPatch } from "../crdt/pipeline.ts";
import type { PeerView } from "./metrics.ts";

/** A time (ms since the epoch) as an ISO 8601 string; `null` stays `null`. */
export function isoTime(ms: number): string;
/** A time (ms since the epoch) as an ISO 8601 string; `null` stays `null`. */
export function isoTime(ms: number | null | undefined): string | null;
export function isoTime(ms: number | null | undefined): string | null {
  return ms === null || ms === undefined ? null : new Date(ms).toISOString();
}

/** A duration in ms as a whole number of milliseconds. */
export function wholeMs(ms: number): number {
  return Math.round(ms);
}

/** A work item in the JSON convention. */
export interface ItemJson {
  /** The story id. */
  storyId: string;
  /** Current stage. */
  stage: Stage;
  /** Human-readable name. */
  name: string;
  /** Assigned agent, or `null`. */
  agent: string | null;
  /** Retry count. */
  retryCount: number;
  /** Blocked flag. */
  blocked: boolean;
  /** Frozen flag. */
  frozen: boolean;
  /** Story ids the item depends on. */
  dependsOn: string[];
}

/** A work item as JSON. */
export function itemJson(item: WorkItem): ItemJson {
  return {
    storyId: item.story_id,
    stage: item.stage,
    name: item.name,
    agent: item.agent,
    retryCount: item.retry_count,
    blocked: item.blocked,
    frozen: item.frozen,
    dependsOn: [...item.depends_on],
  };
}

/** The fields of an item change (`PUT /admin/item`), in the JSON convention. */
export type ItemPatchJson = Partial<Omit<ItemJson, "storyId">>;

const PATCH_FIELDS: Record<keyof ItemPatchJson, keyof WorkItemPatch> = {
  stage: "stage",
  name: "name",
  agent: "agent",
  retryCount: "retry_count",
  blocked: "blocked",
  frozen: "frozen",
  dependsOn: "depends_on",
};

/**
 * Reads an item change sent as JSON into the library's patch. Values are
 * checked by the pipeline; only the keys are checked here.
 * @throws {TypeError} the body is not an object or has an unknown key.
 */
export function itemPatchFromJson(body: unknown): WorkItemPatch {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new TypeError("Cannot put item: the body must be a JSON object of fields");
  }
  const patch: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(body)) {
    const field = PATCH_FIELDS[key as keyof ItemPatchJson];
    if (field === undefined) {
      throw new TypeError(
        `Cannot put item: unknown field "${key}" (expected ${
          Object.keys(PATCH_FIELDS).join(", ")
        })`,
      );
    }
    patch[field] = value;
  }
  return patch as WorkItemPatch;
}

/** A stage event in the JSON convention. */
export interface EventJson {
  /** ISO 8601 time of the change. */
  time: string;
  /** The item's story id. */
  storyId: string;
  /** The previous stage, `null` when the item was created. */
  from: Stage | null;
  /** The new stage. */
  to: Stage;
  /** The node that made the change. */
  nodeId: string;
}

/** A stage event as JSON. */
export function eventJson(event: StageEvent): EventJson {
  return {
    time: isoTime(event.time),
    storyId: event.story,
    from: event.from,
    to: event.to,
    nodeId: event.node,
  };
}

/** A trusted key as JSON. */
export function trustJson(entry: TrustEntry): {
  key: string;
  scope: string;
  label: string | null;
  addedAt: string | null;
  source: "trust.json" | "project.toml";
} {
  return {
    key: entry.key,
    scope: entry.scope,
    label: entry.label ?? null,
    addedAt: isoTime(entry.addedAt),
    source: entry.source === "config" ? "project.toml" : "trust.json",
  };
}

/** A join token's public facts as JSON (there is never a secret to show). */
export function tokenJson(token: TokenInfo): {
  id: string;
  status: TokenInfo["status"];
  scope: string;
  usesLeft: number;
  createdAt: string;
  expiresAt: string | null;
  label: string | null;
} {
  return {
    id: token.id,
    status: token.status,
    scope: token.scope,
    usesLeft: token.usesLeft,
    createdAt: isoTime(token.createdAt),
    expiresAt: isoTime(token.expiresAt),
    label: token.label ?? null,
  };
}

/** A peer session in the JSON convention. */
export type PeerJson = Omit<PeerView, "since" | "liveAt" | "catchupMs"> & {
  /** The label the peer's key is trusted with, or `null`. */
  label: string | null;
  /** When the session was authenticated. */
  since: string;
  /** When it went live, or `null` while it is catching up. */
  liveAt: string | null;
  /** Time from authentication to live, or `null` while catching up. */
  catchupMs: number | null;
  /**
   * Operations the peer's latest clock counts that this node lacks (how far
   * behind it this node is, e.g. during catch-up), or `null` before it sent one.
   */
  behind: number | null;
};

/** A peer session as JSON. */
export function peerJson(
  peer: PeerView,
  label: string | null = null,
  behind: number | null = null,
): PeerJson {
  return {
    ...peer,
    label,
    behind,
    since: isoTime(peer.since),
    liveAt: isoTime(peer.liveAt),
    catchupMs: peer.catchupMs === undefined ? null : wholeMs(peer.catchupMs),
  };
}

/** A verify report as JSON: its duration in whole ms instead of fractional seconds. */
export function verifyReportJson<T extends { seconds: number }>(
  report: T,
): Omit<T, "seconds"> & { durationMs: number } {
  const { seconds, ...rest } = report;
  return { ...rest, durationMs: wholeMs(seconds * 1000) };
}

/** The JSON of a `--json` error, written on standard error. */
export interface ErrorJson {
  /** What failed. */
  error: {
    /** The exit code's name, e.g. `NOT_FOUND` (see `ExitCode`). */
    code: string;
    /** The process exit code. */
    exitCode: number;
    /** "Cannot <action>: <reason>". */
    message: string;
    /** Advice, or `null`. */
    hint: string | null;
  };
}

/** Formats a value as `--json` output: indented, one document. */
export function toJsonText(value: unknown): string {
  return JSON.stringify(value, null, 2);
}
