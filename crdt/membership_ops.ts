/**
 * Membership mutations: the reserved `["members", <node id>]` part of the
 * document, the three membership actions (genesis, grant, revoke), builders
 * for them, and the validators that tell a well-formed membership mutation
 * from a malformed one and keep pipeline writes out of the reserved part.
 * PROTOCOL.md §5b.2 specifies them.
 * @module
 */
import { isHex64 } from "../protocol/bytes.ts";
import type { NodeId } from "./identity.ts";
import type { Mutation } from "./operation.ts";

/** The first path segment reserved for membership operations. */
export const MEMBERS_ROOT = "members";

/** The scopes a member can hold, from least to most. */
export const SCOPES: readonly Scope[] = ["read", "write", "admin"];

/** A member's scope: `read` (connect and receive), `write` (author pipeline operations), `admin`. */
export type Scope = "read" | "write" | "admin";

/** Longest label, in characters. */
export const MAX_LABEL_LENGTH = 256;

/** A parsed membership action: what a membership operation says. */
export type MembershipAction =
  | { action: "genesis"; target: NodeId; scope: "admin"; label: string; at: number }
  | { action: "grant"; target: NodeId; scope: Scope; label: string; at: number }
  | { action: "revoke"; target: NodeId; cut: number; at: number };

/** Options of the membership mutation builders. */
export interface MembershipMutationOptions {
  /** Shown in member lists (at most 256 characters). @default "" */
  label?: string;
  /** Wall-clock time of the action, in milliseconds since the epoch (informational). */
  at: number;
}

/** True when `mutation` writes at or under the reserved `["members"]` part. */
export function touchesMembers(mutation: Mutation): boolean {
  return mutation.path[0] === MEMBERS_ROOT;
}

function isScope(value: unknown): value is Scope {
  return typeof value === "string" && (SCOPES as readonly string[]).includes(value);
}

function labelProblem(label: unknown): string | undefined {
  if (typeof label !== "string") return "label must be a string";
  if (label.length > MAX_LABEL_LENGTH) {
    return `label must have at most ${MAX_LABEL_LENGTH} characters`;
  }
  return undefined;
}

function atProblem(at: unknown): string | undefined {
  return typeof at === "number" && Number.isSafeInteger(at) && at >= 0
    ? undefined
    : "at must be a time in milliseconds (an integer of at least 0)";
}

function exactFields(fields: Record<string, unknown>, names: string[]): boolean {
  const keys = Object.keys(fields);
  return keys.length === names.length && names.every((name) => Object.hasOwn(fields, name));
}

/**
 * Parses the membership action of a mutation by `author` that touches the
 * reserved part. Returns the action, or a message naming why it is malformed.
 */
export function parseMembershipAction(
  author: NodeId,
  mutation: Mutation,
): MembershipAction | string {
  if (mutation.type !== "update") {
    return `a ${mutation.type} under ["${MEMBERS_ROOT}"] is not a membership operation`;
  }
  const [, target, ...rest] = mutation.path;
  if (!isHex64(target) || rest.length > 0) {
    return `membership operations must write at ["${MEMBERS_ROOT}", <node id>]`;
  }
  const fields = mutation.fields as Record<string, unknown>;
  switch (fields.action) {
    case "genesis": {
      if (!exactFields(fields, ["action", "scope", "label", "at"])) {
        return "a genesis must have exactly the fields action, scope, label, at";
      }
      if (fields.scope !== "admin") return "a genesis must give the scope admin";
      if (target !== author) return "a genesis must name its own author";
      const problem = labelProblem(fields.label) ?? atProblem(fields.at);
      if (problem) return problem;
      const { label, at } = fields as { label: string; at: number };
      return { action: "genesis", target, scope: "admin", label, at };
    }
    case "grant": {
      if (!exactFields(fields, ["action", "scope", "label", "at"])) {
        return "a grant must have exactly the fields action, scope, label, at";
      }
      if (!isScope(fields.scope)) return `a grant's scope must be one of ${SCOPES.join(", ")}`;
      if (target === author) return "a member cannot grant itself";
      const problem = labelProblem(fields.label) ?? atProblem(fields.at);
      if (problem) return problem;
      const { label, at } = fields as { label: string; at: number };
      return { action: "grant", target, scope: fields.scope, label, at };
    }
    case "revoke": {
      if (!exactFields(fields, ["action", "cut", "at"])) {
        return "a revocation must have exactly the fields action, cut, at";
      }
      const cut = fields.cut;
      if (typeof cut !== "number" || !Number.isSafeInteger(cut) || cut < 0) {
        return "a revocation's cut must be an integer of at least 0";
      }
      if (target === author) return "a member cannot revoke itself";
      const problem = atProblem(fields.at);
      if (problem) return problem;
      return { action: "revoke", target, cut, at: fields.at as number };
    }
    default:
      return "a membership operation's action must be genesis, grant or revoke";
  }
}

/**
 * Returns `undefined` when a mutation may be written through the pipeline
 * (ordinary writes), or the reason it may not: it touches the reserved part.
 */
export function pipelineMutationProblem(mutation: Mutation): string | undefined {
  return touchesMembers(mutation)
    ? `Cannot write: the ["${MEMBERS_ROOT}"] part of the document is reserved for membership operations`
    : undefined;
}

function membersPath(target: NodeId): string[] {
  if (!isHex64(target)) {
    throw new TypeError("Cannot build membership operation: the key must be a node id");
  }
  return [MEMBERS_ROOT, target];
}

function checked(options: MembershipMutationOptions): { label: string; at: number } {
  const label = options.label ?? "";
  const problem = labelProblem(label) ?? atProblem(options.at);
  if (problem) throw new TypeError(`Cannot build membership operation: ${problem}`);
  return { label, at: options.at };
}

/** The genesis mutation that makes `admin` (the signing node) the mesh's first admin. */
export function genesisMutation(admin: NodeId, options: MembershipMutationOptions): Mutation {
  const { label, at } = checked(options);
  return {
    type: "update",
    path: membersPath(admin),
    fields: { action: "genesis", at, label, scope: "admin" },
  };
}

/** The mutation granting `member` the scope `scope`. */
export function grantMutation(
  member: NodeId,
  scope: Scope,
  options: MembershipMutationOptions,
): Mutation {
  if (!isScope(scope)) {
    throw new TypeError(`Cannot build membership operation: scope must be one of ${SCOPES}`);
  }
  const { label, at } = checked(options);
  return {
    type: "update",
    path: membersPath(member),
    fields: { action: "grant", at, label, scope },
  };
}

/**
 * The mutation revoking `member`: its operations with `seq` above `cut`
 * (normally the last of them the revoker holds) are refused everywhere.
 */
export function revokeMutation(member: NodeId, cut: number, at: number): Mutation {
  if (!Number.isSafeInteger(cut) || cut < 0) {
    throw new TypeError("Cannot build membership operation: cut must be an integer ≥ 0");
  }
  const problem = atProblem(at);
  if (problem) throw new TypeError(`Cannot build membership operation: ${problem}`);
  return { type: "update", path: membersPath(member), fields: { action: "revoke", at, cut } };
}
