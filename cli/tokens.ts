/**
 * `huskies token create|list|revoke`: join tokens in `<data dir>/tokens.json`.
 * A token embeds this node's id (the hub key the joining node pins); the hub
 * keeps only a hash of its secret, so `list` can never show it.
 * @module
 */
import { checkMayIssueTokens } from "./members.ts";
import { loadOrCreateIdentity, parseTtl, type TokenInfo, TokenStore } from "../auth/mod.ts";
import { SYNC_PATH } from "../sync/node.ts";
import { type Command, DATA_DIR_OPTION, flagOption, JSON_OPTION, stringOption } from "./args.ts";
import { DEFAULT_LISTEN, locate } from "./config.ts";
import { asUsageError, CliError, ExitCode, UsageError } from "./errors.ts";
import { formatDuration, formatTime, table } from "./format.ts";
import { readServeInfo } from "./runtime.ts";
import { isoTime, toJsonText, tokenJson } from "./json.ts";
import { scopeOption } from "./trust.ts";

/** Default lifetime of a token. */
export const DEFAULT_TTL = "1h";

/** Formats tokens as a table (pure); never shows secrets, which are not stored. */
export function formatTokens(tokens: TokenInfo[], now: number = Date.now()): string {
  return table(
    ["ID", "STATUS", "SCOPE", "USES LEFT", "EXPIRES", "CREATED", "LABEL"],
    tokens.map((t) => [
      t.id,
      t.status,
      t.scope,
      t.usesLeft,
      t.expiresAt === null
        ? "never"
        : `${formatTime(t.expiresAt)}${
          t.expiresAt > now ? ` (in ${formatDuration(t.expiresAt - now)})` : ""
        }`,
      formatTime(t.createdAt),
      t.label ?? "",
    ]),
  );
}

/** Parses `--uses` (pure). */
export function parseUses(text: string | undefined): number {
  if (text === undefined) return 1;
  const uses = Number(text);
  if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(uses) || uses < 1) {
    throw new UsageError(
      "token create",
      `Cannot use --uses "${text}": expected a whole number >= 1`,
    );
  }
  return uses;
}

/** `huskies token create`. */
export const tokenCreateCommand: Command = {
  path: ["token", "create"],
  summary: "create a join token that lets a new node in",
  description: `
Prints the token (hjt1.<id>.<secret>.<hub node id>) alone on standard output
and how to use it on standard error. The secret is shown only now: the node
stores only its hash. The joining node's key is trusted with --scope when it
first connects with the token. Creates this data folder's identity if it has none.`,
  options: {
    ttl: {
      type: "string",
      value: "DURATION",
      description: `lifetime, e.g. 30m, 1h, 7d (default ${DEFAULT_TTL})`,
    },
    uses: {
      type: "string",
      value: "N",
      description: "how many nodes may join with it (default 1)",
    },
    scope: {
      type: "string",
      value: "write|read",
      description: "scope the joining key gets (default write)",
    },
    label: { type: "string", value: "L", description: "a note shown by `token list`" },
    ...JSON_OPTION,
    ...DATA_DIR_OPTION,
  },
  examples: ["huskies token create --ttl 30m", "TOKEN=$(huskies token create --uses 3 --ttl 1d)"],
  async run(args, ctx) {
    const command = "token create";
    const ttlText = stringOption(args, "ttl") ?? DEFAULT_TTL;
    let ttlMs: number;
    try {
      ttlMs = parseTtl(ttlText);
    } catch (error) {
      throw asUsageError(command, error);
    }
    const uses = parseUses(stringOption(args, "uses"));
    const scope = scopeOption(args, command);
    const label = stringOption(args, "label");
    const { dataDir } = await locate(args);
    const { identity, created } = await loadOrCreateIdentity(dataDir);
    if (created) {
      ctx.err(`note: created a new identity for ${dataDir} (node id ${identity.nodeId})`);
    }
    await checkMayIssueTokens(dataDir, identity.nodeId);
    const tokens = TokenStore.open(dataDir);
    let made;
    try {
      made = tokens.create({ ttlMs, uses, scope, label }, identity.nodeId);
    } catch (error) {
      throw asUsageError(command, error);
    }
    if (flagOption(args, "json")) {
      ctx.out(toJsonText({
        token: made.token,
        id: made.id,
        hubNodeId: identity.nodeId,
        scope,
        uses,
        expiresAt: isoTime(made.expiresAt),
      }));
      return ExitCode.OK;
    }
    ctx.out(made.token);
    const serve = await readServeInfo(dataDir);
    const port = serve
      ? serve.listen.slice(serve.listen.lastIndexOf(":") + 1)
      : DEFAULT_LISTEN.split(":")[1];
    const expires = made.expiresAt === null
      ? "never expires"
      : `expires ${formatTime(made.expiresAt)}`;
    ctx.err("");
    ctx.err(`Token ${made.id}: ${scope} scope, ${uses} use${uses === 1 ? "" : "s"}, ${expires}.`);
    // Under `TOKEN=$(huskies token create)` the token is not "above": it went to the variable.
    const where = Deno.stdout.isTerminal() ? "the token above" : "the token from standard output";
    ctx.err(`It is shown only once. On the node that should join, run:`);
    ctx.err(`  huskies serve --rendezvous ws://<this host>:${port}${SYNC_PATH} --join <${where}>`);
    if (!serve) ctx.err(`(start this node with \`huskies serve\` so that it can accept the join)`);
    return ExitCode.OK;
  },
};

/** `huskies token list`. */
export const tokenListCommand: Command = {
  path: ["token", "list"],
  summary: "list join tokens (never their secrets)",
  options: { ...JSON_OPTION, ...DATA_DIR_OPTION },
  async run(args, ctx) {
    const { dataDir } = await locate(args);
    const tokens = TokenStore.open(dataDir).list();
    if (flagOption(args, "json")) ctx.out(toJsonText(tokens.map(tokenJson)));
    else ctx.out(tokens.length === 0 ? "No join tokens." : formatTokens(tokens));
    return ExitCode.OK;
  },
};

/** `huskies token revoke`. */
export const tokenRevokeCommand: Command = {
  path: ["token", "revoke"],
  summary: "revoke a join token so nobody can join with it any more",
  description:
    "Keys that already joined with it stay trusted (see `huskies trust remove`). Exit code 3 for an unknown id.",
  positionals: [{ name: "id", description: "the token id (16 hex), from `huskies token list`" }],
  options: DATA_DIR_OPTION,
  async run(args, ctx) {
    const text = args.positionals[0].trim().toLowerCase();
    // Accept a whole token too; only its id part is used (and the secret is never echoed).
    const id = text.startsWith("hjt1.") ? text.split(".")[1] ?? "" : text;
    if (!/^[0-9a-f]{16}$/.test(id)) {
      const shown = text.length <= 32 ? ` "${text}"` : "";
      throw new UsageError(
        "token revoke",
        `Cannot revoke token${shown}: a token id is 16 hex characters`,
      );
    }
    const { dataDir } = await locate(args);
    if (!TokenStore.open(dataDir).revoke(id)) {
      throw new CliError(ExitCode.NOT_FOUND, `Cannot revoke token ${id}: there is no such token`);
    }
    ctx.out(`Revoked token ${id}.`);
    return ExitCode.OK;
  },
};
