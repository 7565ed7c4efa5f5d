/**
 * Mesh membership on a node (PROTOCOL.md §5b): the mesh id
 * file, the library's `node.members` API (list, grant, revoke, init,
 * import-trust), and the node's reactions to membership changes: sessions of
 * keys no longer admitted close with 4403, and a `members-changed` event.
 * @module
 */
import type { TimerHandle, Timers } from "./timers.ts";
import { WriteRefusedError } from "../crdt/write_guard.ts";
import { join } from "node:path";
import { writePrivateFileSync } from "../auth/files.ts";
import type { AccessPolicy, Scope as TrustScope, TrustStore } from "../auth/mod.ts";
import { MESH_FILE_NAME } from "../data_dir.ts";
import type { NodeId } from "../crdt/identity.ts";
import type { MemberRecord } from "../crdt/membership.ts";
import type { Scope } from "../crdt/membership_ops.ts";
import { grantMember, initMesh, revokeMember } from "../crdt/members_api.ts";
import type { Operation, OpId } from "../crdt/operation.ts";
import type { Replica } from "../crdt/replica.ts";
import { isHex64 } from "../protocol/bytes.ts";
import { CloseCode } from "../protocol/close_codes.ts";
import type { NodeEventEmitter } from "./events.ts";
import type { Hub } from "./hub.ts";
import type { Logger } from "./logger.ts";
import type { SessionRunner } from "./session_runner.ts";

export type { MemberRecord } from "../crdt/membership.ts";

/**
 * Reads the mesh id of a data folder: `undefined` when the node belongs to no
 * mesh yet.
 * @throws {Error} the file is unreadable or not a mesh file ("Cannot read ...").
 */
export function readMeshId(dir: string): OpId | undefined {
  const path = join(dir, MESH_FILE_NAME);
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw new Error(`Cannot read ${path}: ${(error as Error).message}`);
  }
  let mesh: unknown;
  try {
    mesh = (JSON.parse(text) as { mesh?: unknown }).mesh;
  } catch {
    mesh = undefined;
  }
  if (!isHex64(mesh)) {
    throw new Error(`Cannot read ${path}: expected {"mesh": "<64 hex genesis id>"}`);
  }
  return mesh;
}

/** Records the mesh id in a data folder (atomically, 0600). */
export function writeMeshId(dir: string, mesh: OpId): void {
  writePrivateFileSync(join(dir, MESH_FILE_NAME), JSON.stringify({ mesh }) + "\n");
}

/** Options of {@link NodeMembers.grant}. */
export interface GrantOptions {
  /** The scope granted. @default "write" */
  scope?: Scope;
  /** Shown in member lists and on the status page. @default "" */
  label?: string;
}

/** What {@link NodeMembers.importTrust} did. */
export interface ImportTrustResult {
  /** Keys granted (with write scope, like their trust). */
  granted: { key: NodeId; scope: Scope }[];
  /** Keys already members, left as they were. */
  skipped: NodeId[];
}

/**
 * The members API of a node (`node.members`). Grants and revocations are
 * signed by this node and replicate like any operation.
 *
 * @example
 * ```ts
 * import { HuskiesNode } from "../mod.ts";
 * const node = await HuskiesNode.open();
 * node.members.init("hub");
 * node.members.list().map((m) => m.scope); // ["admin"]
 * await node.close();
 * ```
 */
export class NodeMembers {
  readonly #replica: Replica;
  readonly #persist: (mesh: OpId) => void;

  /** Wraps `replica`; `persist` records a mesh id learned or created. */
  constructor(replica: Replica, persist: (mesh: OpId) => void) {
    this.#replica = replica;
    this.#persist = persist;
  }

  /** The mesh id, once this node belongs to a mesh. */
  get mesh(): OpId | undefined {
    return this.#replica.members?.mesh;
  }

  /**
   * Creates a mesh with this node as its first admin; returns the mesh id.
   * @throws {MembershipRefusedError} the node belongs to a mesh already.
   */
  init(label = ""): OpId {
    const mesh = initMesh(this.#replica, label);
    this.#persist(mesh);
    return mesh;
  }

  /** Adopts a mesh id learned from a pinned hub (records it). */
  join(mesh: OpId): void {
    if (this.#replica.members?.mesh === mesh) return;
    this.#replica.joinMesh(mesh);
    this.#persist(mesh);
  }

  /** The members, with their standing over everything this node holds (empty without a mesh). */
  list(): MemberRecord[] {
    return this.#replica.members?.list() ?? [];
  }

  /** This node's own scope in the mesh, if any. */
  ownScope(): Scope | undefined {
    return this.#replica.members?.state.scopeOf(this.#replica.nodeId);
  }

  /**
   * Signs a grant for `key`.
   * @throws {MembershipRefusedError} no mesh, this node is no admin, or not senior to `key`.
   */
  grant(key: NodeId, options: { scope?: Scope; label?: string } = {}): Operation {
    return grantMember(this.#replica, key, options.scope ?? "write", options.label ?? "");
  }

  /**
   * Signs a revocation of `key`, cut at the last of its operations this node
   * holds; its later operations are refused on every node.
   * @throws {MembershipRefusedError} no mesh, this node is no admin, or not senior to `key`.
   */
  revoke(key: NodeId): Operation {
    return revokeMember(this.#replica, key);
  }

  /**
   * Grants write scope to every write-trusted key of the local trust list
   * (with its label) that is not a member yet: the migration from
   * `trust.json` and `trusted_keys`. Read-trusted keys stay local.
   * @throws {MembershipRefusedError} no mesh, or this node is no admin.
   */
  importTrust(trust: TrustStore): { granted: { key: NodeId; scope: Scope }[]; skipped: NodeId[] } {
    const members = new Set(this.list().filter((m) => m.scope !== undefined).map((m) => m.key));
    const result: ImportTrustResult = { granted: [], skipped: [] };
    for (const entry of trust.list()) {
      if (entry.scope !== "write") continue; // read-trusted keys stay local: connection only
      if (entry.key === this.#replica.nodeId || members.has(entry.key)) {
        result.skipped.push(entry.key);
        continue;
      }
      this.grant(entry.key, { scope: "write", label: entry.label ?? "" });
      result.granted.push({ key: entry.key, scope: "write" });
    }
    return result;
  }
}

/**
 * Reacts to membership changes: a session whose peer is no longer admitted
 * closes (4403), and the node emits `members-changed`.
 */
export function watchMembers(
  replica: Replica,
  policy: AccessPolicy,
  hub: Hub<SessionRunner>,
  events: NodeEventEmitter,
  logger: Logger,
): void {
  replica.onMembersChanged(() => {
    for (const session of hub.members()) {
      if (policy.connectScope(session.peer) === undefined) {
        logger.log("info", "membership revoked; closing session", { peer: session.peer });
        session.close(CloseCode.NOT_TRUSTED, "key not trusted");
      }
    }
    events.emit("members-changed", { members: replica.members?.list() ?? [] });
  });
}

/**
 * The token admitter of a node: in a mesh where this node is an admin, it
 * signs a grant for the joiner (which replicates); otherwise, or when the
 * grant cannot be signed now, the key is trusted locally as before.
 */
export function joinerAdmitter(
  members: NodeMembers,
  trust: TrustStore,
  logger: Logger,
  timers: Timers,
  signal: AbortSignal,
): (key: NodeId, scope: TrustScope, label: string) => void {
  const pending = new Set<TimerHandle>();
  signal.addEventListener("abort", () => {
    for (const handle of pending) timers.clearTimeout(handle);
    pending.clear();
  }, { once: true });
  /** Grants, or (while the node may not sign yet, e.g. starting) retries every second, 60 times. */
  const grant = (key: NodeId, scope: TrustScope, label: string, attempt: number): boolean => {
    try {
      members.grant(key, { scope, label });
      return true;
    } catch (error) {
      const retry = error instanceof WriteRefusedError && error.retryable && attempt < 60;
      if (retry && !signal.aborted) {
        const handle = timers.setTimeout(() => {
          pending.delete(handle);
          grant(key, scope, label, attempt + 1);
        }, 1000);
        pending.add(handle);
      }
      if (attempt === 0 || !retry) {
        logger.log("warn", "cannot grant membership to a token joiner yet; trusting it locally", {
          key,
          error: (error as Error).message,
          retrying: retry,
        });
      }
      return false;
    }
  };
  return (key, scope, label) => {
    if (members.ownScope() === "admin" && grant(key, scope, label, 0)) return;
    trust.add(key, scope, label);
  };
}
