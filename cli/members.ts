/**
 * `huskies members init|list|grant|revoke|import-trust`: mesh membership
 * (PROTOCOL.md §5b), acting on the node running for a data folder through
 * its admin API. `members init` also works with no node running: it signs
 * the genesis into the data folder's store. Formatting is pure.
 * @module
 */
import { SCOPES } from "../crdt/membership_ops.ts";
import { HuskiesNode } from "../sync/node.ts";
import {
  type Command,
  DATA_DIR_OPTION,
  flagOption,
  JSON_OPTION,
  type OptionSpec,
  type ParsedArgs,
  stringOption,
} from "./args.ts";
import { locate } from "./config.ts";
import { CliError, ExitCode } from "./errors.ts";
import { formatTime, shortId, table } from "./format.ts";
import type { MemberJson } from "./http/members.ts";
import { toJsonText } from "./json.ts";
import { AdminClient } from "./runtime.ts";

/** What `members list` prints (and `--json` gives). */
export interface MembersListJson {
  /** The mesh id, `null` when the node belongs to no mesh. */
  mesh: string | null;
  /** The members. */
  members: MemberJson[];
}

/** Formats the member list as a table, labels first (pure). */
export function formatMembers(list: MembersListJson): string {
  if (list.mesh === null) return "This node belongs to no mesh (run `huskies members init`).";
  const rows = list.members.map((m) => [
    m.label || "-",
    m.key,
    m.scope ?? "revoked",
    shortId(m.grantedBy),
    formatTime(Date.parse(m.grantedAt)),
    m.revokedAtSeq === null ? "-" : String(m.revokedAtSeq),
  ]);
  return `mesh ${list.mesh}\n` +
    table(["LABEL", "KEY", "SCOPE", "GRANTED BY", "WHEN", "REVOKED AT SEQ"], rows);
}

const COMMON: Record<string, OptionSpec> = { ...JSON_OPTION, ...DATA_DIR_OPTION };
const KEY = { name: "key", description: "the member's node id (64 hex, `huskies keys show`)" };
const NOTE = "Acts on the node running for the data folder (through its admin API).";

async function admin(args: ParsedArgs, command: string): Promise<AdminClient> {
  const { dataDir } = await locate(args);
  return await AdminClient.open(dataDir, command);
}

/**
 * Refuses to issue a join token when the node running for `dataDir` is in a
 * mesh and is no admin of it (a grant needs an admin). Without a running
 * node it cannot tell and allows it.
 * @throws {CliError} exit 1: the running node is no admin of its mesh.
 */
export async function checkMayIssueTokens(dataDir: string, nodeId: string): Promise<void> {
  let list: MembersListJson;
  try {
    list = await (await AdminClient.open(dataDir, "token create")).call<MembersListJson>(
      "adminMembers",
    );
  } catch (error) {
    if (error instanceof CliError && error.exitCode === ExitCode.NOT_RUNNING) return;
    throw error;
  }
  if (list.mesh === null) return;
  const own = list.members.find((m) => m.key === nodeId);
  if (own?.scope !== "admin") {
    throw new CliError(
      ExitCode.FAILURE,
      "Cannot create token: this node's key is not an admin of its mesh",
      { hint: "Create the token on an admin (see `huskies members list`)." },
    );
  }
}

/** `huskies members init`. */
export const membersInitCommand: Command = {
  path: ["members", "init"],
  summary: "create a mesh with this node's key as its first admin",
  description: `Signs the mesh's genesis operation and records the mesh id in the data folder
(mesh.json). Other nodes join with a join token from an admin (\`huskies token create\`) and
learn the mesh id from it. Works on the running node, or on the data folder when none runs.`,
  options: {
    label: { type: "string", value: "L", description: "this node's label in member lists" },
    ...COMMON,
  },
  examples: ["huskies members init --label hub"],
  async run(args, ctx) {
    const label = stringOption(args, "label") ?? "";
    const { dataDir } = await locate(args);
    let result: { mesh: string };
    try {
      const client = await AdminClient.open(dataDir, "members init");
      result = await client.call<{ mesh: string }>("adminMembersInit", {}, { label });
    } catch (error) {
      if (!(error instanceof CliError) || error.exitCode !== ExitCode.NOT_RUNNING) throw error;
      const node = await HuskiesNode.open({ dataDir, open: false });
      try {
        result = { mesh: node.members.init(label) };
      } finally {
        await node.close();
      }
    }
    ctx.out(
      flagOption(args, "json")
        ? toJsonText(result)
        : `Created mesh ${result.mesh}; this node is its first admin.`,
    );
    return ExitCode.OK;
  },
};

/** `huskies members list`. */
export const membersListCommand: Command = {
  path: ["members", "list"],
  summary: "list the mesh's members",
  description: `Key, scope, label, granting admin, when, and the cut of a revocation. ${NOTE}`,
  options: COMMON,
  async run(args, ctx) {
    const list = await (await admin(args, "members list")).call<MembersListJson>("adminMembers");
    ctx.out(flagOption(args, "json") ? toJsonText(list) : formatMembers(list));
    return ExitCode.OK;
  },
};

/** `huskies members grant`. */
export const membersGrantCommand: Command = {
  path: ["members", "grant"],
  summary: "grant a key membership of the mesh (admins only)",
  description: `Signs a grant that replicates to every node: the key may then connect to any
node and, with write or admin scope, write. ${NOTE}`,
  positionals: [KEY],
  options: {
    scope: { type: "string", value: SCOPES.join("|"), description: "the scope (default: write)" },
    label: { type: "string", value: "L", description: "a label shown in member lists" },
    ...COMMON,
  },
  examples: ["huskies members grant 3b6a…e1 --scope read --label dashboard"],
  async run(args, ctx) {
    const key = args.positionals[0];
    const body = {
      key,
      scope: stringOption(args, "scope") ?? "write",
      label: stringOption(args, "label") ?? "",
    };
    const done = await (await admin(args, "members grant")).call<{ scope: string }>(
      "adminMembersGrant",
      {},
      body,
    );
    ctx.out(flagOption(args, "json") ? toJsonText(done) : `Granted ${done.scope} to ${key}.`);
    return ExitCode.OK;
  },
};

/** `huskies members revoke`. */
export const membersRevokeCommand: Command = {
  path: ["members", "revoke"],
  summary: "revoke a member (admins only)",
  description: `Signs a revocation whose cut is this node's view of the member's chain: every
node keeps the member's operations up to the cut and refuses the rest, and closes its sessions
(4403). ${NOTE}`,
  positionals: [KEY],
  options: COMMON,
  async run(args, ctx) {
    const key = args.positionals[0];
    const done = await (await admin(args, "members revoke")).call<{ cut: number }>(
      "adminMembersRevoke",
      {},
      { key },
    );
    ctx.out(
      flagOption(args, "json")
        ? toJsonText(done)
        : `Revoked ${key}: its operations after seq ${done.cut} are refused.`,
    );
    return ExitCode.OK;
  },
};

/** `huskies members import-trust`. */
export const membersImportTrustCommand: Command = {
  path: ["members", "import-trust"],
  summary: "grant write to every write-trusted key (migration from trust.json)",
  description: `Turns this node's write-trusted keys (trust.json and trusted_keys) into grants
that replicate. Read-trusted keys stay local. Admins only. ${NOTE}`,
  options: COMMON,
  async run(args, ctx) {
    const done = await (await admin(args, "members import-trust")).call<
      { granted: { key: string }[]; skipped: string[] }
    >("adminMembersImportTrust", {});
    ctx.out(
      flagOption(args, "json")
        ? toJsonText(done)
        : `Granted write to ${done.granted.length} key(s); ${done.skipped.length} already members.`,
    );
    return ExitCode.OK;
  },
};
