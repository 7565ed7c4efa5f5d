/**
 * The admin API's member routes (`/admin/members*`): list, init, grant,
 * revoke, import-trust, over `node.members`. Refusals and bad input are
 * mapped by `admin.ts` (409 and 400).
 * @module
 */
import { type Scope, SCOPES } from "../../crdt/membership_ops.ts";
import { isHex64 } from "../../protocol/bytes.ts";
import type { HuskiesNode } from "../../sync/node.ts";
import type { MemberRecord } from "../../sync/members.ts";
import { json, readLimited } from "./respond.ts";

/** One member as the admin API and `members list --json` give it. */
export interface MemberJson {
  /** The member's node id. */
  key: string;
  /** Current scope, `null` when revoked. */
  scope: Scope | null;
  /** The grant's label. */
  label: string;
  /** Node id of the admin whose grant is in force. */
  grantedBy: string;
  /** When that grant was made (ISO 8601). */
  grantedAt: string;
  /** The revocation's cut: the member's operations past this seq are refused. */
  revokedAtSeq: number | null;
  /** Node id of the admin that revoked it. */
  revokedBy: string | null;
  /** Seniority among admins (0: the mesh's first admin), `null` for non-admins. */
  rank: number | null;
}

/** A member record as JSON (pure). */
export function memberJson(record: MemberRecord): MemberJson {
  return {
    key: record.key,
    scope: record.scope ?? null,
    label: record.label,
    grantedBy: record.grantedBy,
    grantedAt: new Date(record.grantedAt).toISOString(),
    revokedAtSeq: record.revokedAtSeq ?? null,
    revokedBy: record.revokedBy ?? null,
    rank: record.rank,
  };
}

const MAX_BODY_BYTES = 16 * 1024;

async function body(request: Request): Promise<Record<string, unknown>> {
  const text = await readLimited(request, MAX_BODY_BYTES);
  if (text === undefined) {
    throw new RangeError(`Cannot read request: body over ${MAX_BODY_BYTES} bytes`);
  }
  let parsed: unknown;
  try {
    parsed = text ? JSON.parse(text) : {};
  } catch {
    throw new SyntaxError("Cannot read request: the body is not valid JSON");
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new TypeError("Cannot read request: the body must be a JSON object");
  }
  return parsed as Record<string, unknown>;
}

function key(fields: Record<string, unknown>, action: string): string {
  if (!isHex64(fields.key)) {
    throw new TypeError(`Cannot ${action}: the key must be a node id (64 lowercase hex)`);
  }
  return fields.key;
}

function label(fields: Record<string, unknown>, action: string): string {
  if (fields.label === undefined) return "";
  if (typeof fields.label !== "string") {
    throw new TypeError(`Cannot ${action}: label must be a string`);
  }
  return fields.label;
}

/** The member routes' names. */
export type MemberRouteName =
  | "adminMembers"
  | "adminMembersInit"
  | "adminMembersGrant"
  | "adminMembersRevoke"
  | "adminMembersImportTrust";

/** The member route handlers (input errors are mapped to 400 by the caller). */
export function memberHandlers(
  node: HuskiesNode,
): Record<MemberRouteName, (request: Request) => Promise<Response>> {
  const listed = () => node.members.list().map(memberJson);
  return {
    adminMembers: () =>
      Promise.resolve(json({ mesh: node.members.mesh ?? null, members: listed() })),
    adminMembersInit: async (request) => {
      const mesh = node.members.init(label(await body(request), "create a mesh"));
      return json({ mesh, members: listed() });
    },
    adminMembersGrant: async (request) => {
      const fields = await body(request);
      const scope = fields.scope ?? "write";
      if (!(SCOPES as readonly unknown[]).includes(scope)) {
        throw new TypeError(`Cannot grant: scope must be one of ${SCOPES.join(", ")}`);
      }
      const op = node.members.grant(key(fields, "grant"), {
        scope: scope as Scope,
        label: label(fields, "grant"),
      });
      return json({ granted: fields.key, scope, operation: op.id });
    },
    adminMembersRevoke: async (request) => {
      const fields = await body(request);
      const op = node.members.revoke(key(fields, "revoke"));
      const cut = (op.mutation.type === "update" ? op.mutation.fields.cut : undefined) ?? 0;
      return json({ revoked: fields.key, cut, operation: op.id });
    },
    adminMembersImportTrust: () => Promise.resolve(json(node.members.importTrust(node.trust))),
  };
}
