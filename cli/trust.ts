/**
 * `huskies trust add|remove|list`: the trusted keys in `<data dir>/trust.json`.
 * A running node rereads the file by itself (within about half a second) and
 * closes sessions of keys that are no longer trusted.
 * @module
 */
import { isScope, type Scope, type TrustEntry, TrustStore } from "../auth/mod.ts";
import {
  type Command,
  DATA_DIR_OPTION,
  flagOption,
  JSON_OPTION,
  type ParsedArgs,
  stringOption,
} from "./args.ts";
import { locate, type ResolvedLocation } from "./config.ts";
import { asUsageError, CliError, ExitCode, UsageError } from "./errors.ts";
import { formatTime, table } from "./format.ts";
import { toJsonText, trustJson } from "./json.ts";

/** Reads `--scope` (pure); `write` when absent. */
export function scopeOption(args: ParsedArgs, command: string): Scope {
  const scope = stringOption(args, "scope") ?? "write";
  if (!isScope(scope)) {
    throw new UsageError(command, `Cannot use --scope "${scope}": expected write or read`);
  }
  return scope;
}

/** Normalises a key typed by a person: trimmed, lower case (pure). */
export function normaliseKey(key: string): string {
  return key.trim().toLowerCase();
}

function openTrust(location: ResolvedLocation): TrustStore {
  return TrustStore.open(location.dataDir, { configKeys: location.config.trustedKeys ?? [] });
}

/** Formats trust entries as a table (pure). */
export function formatTrust(entries: TrustEntry[]): string {
  return table(
    ["KEY", "SCOPE", "SOURCE", "ADDED", "LABEL"],
    entries.map((e) => [
      e.key,
      e.scope,
      e.source === "config" ? "project.toml" : "trust.json",
      e.addedAt === undefined ? "-" : formatTime(e.addedAt),
      e.label ?? "",
    ]),
  );
}

const SCOPE_HELP = "write (sync and author operations) or read (sync only); default write";

/** `huskies trust add`. */
export const trustAddCommand: Command = {
  path: ["trust", "add"],
  summary: "trust a node key (write or read scope)",
  description:
    "Adds the key to <data dir>/trust.json, or changes its scope (and its label, if --label is given).",
  positionals: [{
    name: "key",
    description: "the node id (64 hex), e.g. from `huskies keys export-public`",
  }],
  options: {
    scope: { type: "string", value: "write|read", description: SCOPE_HELP },
    label: { type: "string", value: "L", description: "a note, e.g. the host name" },
    ...JSON_OPTION,
    ...DATA_DIR_OPTION,
  },
  async run(args, ctx) {
    const scope = scopeOption(args, "trust add");
    const key = normaliseKey(args.positionals[0]);
    const label = stringOption(args, "label");
    const location = await locate(args);
    const trust = openTrust(location);
    // Changing the scope keeps the label unless a new one is given.
    const existing = trust.list().find((e) => e.key === key && e.source === "store");
    try {
      trust.add(key, scope, label ?? existing?.label);
    } catch (error) {
      throw asUsageError("trust add", error);
    }
    if (flagOption(args, "json")) {
      const entry = trust.list().find((e) => e.key === key && e.source === "store");
      ctx.out(toJsonText(entry ? trustJson(entry) : { key, scope, label: label ?? null }));
    } else {
      const before = existing === undefined
        ? ""
        : existing.scope === scope
        ? " (it was trusted already)"
        : ` (it had ${existing.scope} scope)`;
      ctx.out(`Trusted ${key} with ${scope} scope${before}.`);
    }
    return ExitCode.OK;
  },
};

/** `huskies trust remove`. */
export const trustRemoveCommand: Command = {
  path: ["trust", "remove"],
  summary: "stop trusting a node key",
  description:
    "A running node closes that key's sessions. Exit code 3 when the key is not in trust.json.",
  positionals: [{ name: "key", description: "the node id (64 hex)" }],
  options: DATA_DIR_OPTION,
  async run(args, ctx) {
    const key = normaliseKey(args.positionals[0]);
    const location = await locate(args);
    const trust = openTrust(location);
    if (trust.remove(key)) {
      ctx.out(`Removed ${key}.`);
      return ExitCode.OK;
    }
    if (location.config.trustedKeys?.includes(key)) {
      throw new CliError(
        ExitCode.NOT_FOUND,
        `Cannot remove ${key}: it comes from trusted_keys in ${location.configFile}`,
        { hint: `Edit ${location.configFile} to remove it.` },
      );
    }
    throw new CliError(ExitCode.NOT_FOUND, `Cannot remove ${key}: it is not trusted`);
  },
};

/** `huskies trust list`. */
export const trustListCommand: Command = {
  path: ["trust", "list"],
  summary: "list trusted keys (trust.json and trusted_keys from project.toml)",
  options: { ...JSON_OPTION, ...DATA_DIR_OPTION },
  async run(args, ctx) {
    const entries = openTrust(await locate(args)).list();
    if (flagOption(args, "json")) ctx.out(toJsonText(entries.map(trustJson)));
    else ctx.out(entries.length === 0 ? "No trusted keys." : formatTrust(entries));
    return ExitCode.OK;
  },
};
