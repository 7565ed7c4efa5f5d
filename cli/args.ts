/**
 * Command definitions, argument parsing (on `node:util` `parseArgs`), help
 * text and dispatch for the `huskies` CLI. Everything here is pure except
 * {@link runCli}, which prints and returns the exit code.
 * @module
 */
import { parseArgs } from "node:util";
import { classifyError, CliError, ExitCode, exitCodeName, UsageError } from "./errors.ts";
import type { ErrorJson } from "./json.ts";
import { formatCommandHelp, formatGroupHelp, formatRootHelp } from "./help.ts";

/** One option of a command. */
export interface OptionSpec {
  /** `string` options take a value, `boolean` ones do not. */
  type: "string" | "boolean";
  /** One-letter alias, e.g. `h`. */
  short?: string;
  /** The option may be repeated; its value is then a list. */
  multiple?: boolean;
  /** Placeholder for the value in help, e.g. `HOST:PORT`. */
  value?: string;
  /** One line of help. */
  description: string;
}

/** One positional argument of a command. */
export interface PositionalSpec {
  /** Name shown in help, e.g. `story_id`. */
  name: string;
  /** One line of help. */
  description: string;
  /** May be left out. @default false */
  optional?: boolean;
}

/** Parsed arguments handed to a command. */
export interface ParsedArgs {
  /** Option values by long name. */
  values: Record<string, string | boolean | string[] | undefined>;
  /** Positional arguments, in order. */
  positionals: string[];
}

/** Where a command writes and what it knows about the process. */
export interface CliContext {
  /** Writes one line to standard output. */
  out(line: string): void;
  /** Writes one line to standard error. */
  err(line: string): void;
  /** The CLI version (from deno.json). */
  version: string;
}

/** A command of the CLI. */
export interface Command {
  /** Words after `huskies`, e.g. `["item", "put"]`. */
  path: string[];
  /** One line shown in the command list. */
  summary: string;
  /** Paragraphs shown in the command's help. */
  description?: string;
  /** Positional arguments. */
  positionals?: PositionalSpec[];
  /** Options by long name (`--help` is added automatically). */
  options: Record<string, OptionSpec>;
  /** Example invocations shown in help. */
  examples?: string[];
  /** Runs the command and resolves to its exit code. */
  run(args: ParsedArgs, ctx: CliContext): Promise<number>;
}

/** `--data-dir DIR`, shared by every command that uses a data folder. */
export const DATA_DIR_OPTION: Record<string, OptionSpec> = {
  "data-dir": {
    type: "string",
    value: "DIR",
    description: "data folder (default: data_dir from ./.huskies/project.toml, else ./.huskies)",
  },
  config: {
    type: "string",
    value: "FILE",
    description: "configuration file (default: <data folder>/project.toml)",
  },
};

/** `--json`, for commands whose output is data. */
export const JSON_OPTION: Record<string, OptionSpec> = {
  json: { type: "boolean", description: "print JSON instead of text" },
};

/** `--help`, added to every command. */
export const HELP_OPTION: OptionSpec = {
  type: "boolean",
  short: "h",
  description: "show this help",
};

/** Options accepted before the command word, moved after it before parsing. */
const GLOBAL_VALUE_OPTIONS = new Set(["--data-dir", "--config"]);
const GLOBAL_FLAG_OPTIONS = new Set(["--json"]);

/** The command name as typed, e.g. `item put`. */
export function commandName(command: Pick<Command, "path">): string {
  return command.path.join(" ");
}

/** Edit distance between two short strings (pure), for "did you mean". */
export function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1));
      diagonal = above;
    }
  }
  return row[b.length];
}

/** The closest candidate to `word` within an edit distance of 2, if any (pure). */
export function suggest(word: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestDistance = 3;
  for (const candidate of candidates) {
    const distance = editDistance(word, candidate);
    if (distance < bestDistance) (best = candidate, bestDistance = distance);
  }
  return best;
}

/** Rewrites a `parseArgs` error as a short sentence (pure). */
function describeParseError(error: unknown, options: Record<string, OptionSpec>): string {
  const code = (error as { code?: string }).code;
  const message = (error as Error).message ?? String(error);
  const quoted = /'(-[^' ]+)/.exec(message)?.[1] ?? "";
  const option = quoted.replace(/ .*$/, "");
  if (code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") {
    const near = option.startsWith("--")
      ? suggest(option.slice(2), [...Object.keys(options), "help"])
      : undefined;
    return `unknown option ${option}${near ? ` (did you mean --${near}?)` : ""}`;
  }
  if (code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE") {
    if (message.includes("does not take an argument")) return `option ${option} takes no value`;
    if (message.includes("ambiguous")) {
      return `option ${option} needs a value (to give a value that starts with "-", ` +
        `write ${option}=-VALUE)`;
    }
    return `option ${option} needs a value`;
  }
  return message.split("\n")[0];
}

/**
 * Writes `--opt -1` as `--opt=-1` for options that take a value (pure), so
 * that a negative number reaches the command's own range check instead of
 * being read as an option.
 */
function joinNegativeValues(args: string[], options: Record<string, OptionSpec>): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const name = args[i].startsWith("--") ? args[i].slice(2) : undefined;
    const next = args[i + 1];
    if (
      name !== undefined && options[name]?.type === "string" && next !== undefined &&
      /^-\d+(\.\d+)?$/.test(next)
    ) {
      out.push(`${args[i]}=${next}`);
      i++;
    } else out.push(args[i]);
  }
  return out;
}

/**
 * Parses the arguments after the command words against `command` (pure).
 * Returns `"help"` when `--help` was given.
 * @throws {UsageError} unknown options, missing values, wrong number of arguments.
 */
export function parseCommandArgs(command: Command, args: string[]): ParsedArgs | "help" {
  const name = commandName(command);
  let parsed;
  try {
    parsed = parseArgs({
      args: joinNegativeValues(args, command.options),
      options: { ...command.options, help: HELP_OPTION },
      allowPositionals: true,
      strict: true,
    });
  } catch (error) {
    throw new UsageError(
      name,
      `Cannot run \`huskies ${name}\`: ${describeParseError(error, command.options)}`,
    );
  }
  if (parsed.values.help) return "help";
  const specs = command.positionals ?? [];
  const required = specs.filter((p) => !p.optional).length;
  if (parsed.positionals.length < required) {
    const missing = specs.slice(parsed.positionals.length).filter((p) => !p.optional)
      .map((p) => `<${p.name}>`);
    throw new UsageError(name, `Cannot run \`huskies ${name}\`: missing ${missing.join(" ")}`);
  }
  if (parsed.positionals.length > specs.length) {
    const extra = parsed.positionals[specs.length];
    throw new UsageError(name, `Cannot run \`huskies ${name}\`: unexpected argument "${extra}"`);
  }
  const { help: _help, ...values } = parsed.values;
  return { values: values as ParsedArgs["values"], positionals: parsed.positionals };
}

/** What {@link resolveCommand} found (pure). */
export type Resolution =
  | { kind: "root-help" }
  | { kind: "version" }
  | { kind: "group-help"; group: string; missing: boolean }
  | { kind: "command-help"; command: Command }
  | { kind: "command"; command: Command; args: string[] };

/** What `huskies help [words...]` shows (pure). */
function resolveHelp(commands: readonly Command[], words: readonly string[]): Resolution {
  if (words.length === 0) return { kind: "root-help" };
  const resolved = resolveCommand(commands, words);
  switch (resolved.kind) {
    case "command":
      if (resolved.args.length > 0) {
        throw new UsageError(
          "",
          `Cannot show help: "${words.join(" ")}" is not a command (try \`huskies help ${
            commandName(resolved.command)
          }\`)`,
        );
      }
      return { kind: "command-help", command: resolved.command };
    case "group-help":
      return { ...resolved, missing: false };
    default:
      return resolved;
  }
}

/**
 * Finds the command named by `argv` (pure). Global options written before the
 * command (`--data-dir`, `--config`, `--json`) are moved after it.
 * @throws {UsageError} unknown command or option.
 */
export function resolveCommand(commands: readonly Command[], argv: readonly string[]): Resolution {
  const moved: string[] = [];
  // `deno task huskies -- item list` passes the `--` on: it separates nothing here.
  let i = argv[0] === "--" ? 1 : 0;
  for (; i < argv.length && argv[i].startsWith("-"); i++) {
    const arg = argv[i];
    const bare = arg.split("=")[0];
    if (arg === "-h" || arg === "--help") return { kind: "root-help" };
    if (arg === "-V" || arg === "--version") return { kind: "version" };
    if (GLOBAL_FLAG_OPTIONS.has(arg)) moved.push(arg);
    else if (GLOBAL_VALUE_OPTIONS.has(bare)) {
      if (arg.includes("=")) moved.push(arg);
      else if (i + 1 < argv.length) moved.push(arg, argv[++i]);
      else throw new UsageError("", `Cannot run huskies: option ${arg} needs a value`);
    } else {
      throw new UsageError("", `Cannot run huskies: unknown option ${arg} before the command`);
    }
  }
  const words = argv.slice(i);
  if (words.length === 0) return { kind: "root-help" };
  if (words[0] === "help") return resolveHelp(commands, words.slice(1));
  const groups = new Set(commands.filter((c) => c.path.length > 1).map((c) => c.path[0]));
  const first = words[0];
  if (groups.has(first)) {
    const second = words[1];
    if (second === undefined) return { kind: "group-help", group: first, missing: true };
    if (second === "-h" || second === "--help") {
      return { kind: "group-help", group: first, missing: false };
    }
    const command = commands.find((c) => c.path[0] === first && c.path[1] === second);
    if (!command) {
      const names = commands.filter((c) => c.path[0] === first).map((c) => c.path[1]);
      const near = suggest(second, names);
      throw new UsageError(
        first,
        `Cannot run huskies: unknown command "${first} ${second}"${
          near ? ` (did you mean "${first} ${near}"?)` : ""
        }`,
      );
    }
    return { kind: "command", command, args: [...moved, ...words.slice(2)] };
  }
  const command = commands.find((c) => c.path.length === 1 && c.path[0] === first);
  if (!command) {
    const near = suggest(first, [...new Set(commands.map((c) => c.path[0]))]);
    throw new UsageError(
      "",
      `Cannot run huskies: unknown command "${first}"${near ? ` (did you mean "${near}"?)` : ""}`,
    );
  }
  return { kind: "command", command, args: [...moved, ...words.slice(1)] };
}

function debugEnabled(): boolean {
  try {
    return Boolean(Deno.env.get("HUSKIES_DEBUG"));
  } catch {
    return false; // No permission to read the environment.
  }
}

/** The `--json` form of an error (pure). */
export function errorJson(failure: CliError): ErrorJson {
  return {
    error: {
      code: exitCodeName(failure.exitCode),
      exitCode: failure.exitCode,
      message: failure.message,
      hint: failure.hint ?? null,
    },
  };
}

/**
 * Prints an error with its hint and returns its exit code (stack traces with
 * HUSKIES_DEBUG=1). With `json`, prints one {@link ErrorJson} line instead.
 */
export function reportError(error: unknown, ctx: CliContext, json = false): number {
  const failure = classifyError(error);
  if (json) {
    ctx.err(JSON.stringify(errorJson(failure)));
    return failure.exitCode;
  }
  ctx.err(`error: ${failure.message}`);
  if (failure.hint) ctx.err(failure.hint);
  if (failure.exitCode === ExitCode.FAILURE && !(error instanceof CliError)) {
    if (debugEnabled()) ctx.err(String((error as Error)?.stack ?? error));
  }
  return failure.exitCode;
}

/**
 * Runs the CLI: resolves the command, parses its arguments, runs it, and
 * reports errors. Resolves to the exit code.
 */
export async function runCli(
  commands: readonly Command[],
  argv: readonly string[],
  ctx: CliContext,
): Promise<number> {
  try {
    const resolution = resolveCommand(commands, argv);
    switch (resolution.kind) {
      case "root-help":
        ctx.out(formatRootHelp(commands, ctx.version));
        return ExitCode.OK;
      case "version":
        ctx.out(`huskies ${ctx.version}`);
        return ExitCode.OK;
      case "command-help":
        ctx.out(formatCommandHelp(resolution.command));
        return ExitCode.OK;
      case "group-help":
        if (resolution.missing) {
          throw new UsageError(
            resolution.group,
            `Cannot run \`huskies ${resolution.group}\`: missing <command>`,
            { hint: formatGroupHelp(resolution.group, commands) },
          );
        }
        ctx.out(formatGroupHelp(resolution.group, commands));
        return ExitCode.OK;
      case "command": {
        const parsed = parseCommandArgs(resolution.command, resolution.args);
        if (parsed === "help") {
          ctx.out(formatCommandHelp(resolution.command));
          return ExitCode.OK;
        }
        return await resolution.command.run(parsed, ctx);
      }
    }
  } catch (error) {
    return reportError(error, ctx, wantsJson(argv));
  }
}

/** True when `--json` was given (before a `--` that ends the options, if any). */
function wantsJson(argv: readonly string[]): boolean {
  const end = argv.indexOf("--", 1);
  return (end < 0 ? argv : argv.slice(0, end)).includes("--json");
}

/** The string value of option `name`, or `undefined`. */
export function stringOption(args: ParsedArgs, name: string): string | undefined {
  const value = args.values[name];
  return typeof value === "string" ? value : undefined;
}

/** The values of a repeatable option `name` (empty when absent). */
export function listOption(args: ParsedArgs, name: string): string[] {
  const value = args.values[name];
  if (Array.isArray(value)) return value;
  return typeof value === "string" ? [value] : [];
}

/** True when boolean option `name` was given. */
export function flagOption(args: ParsedArgs, name: string): boolean {
  return args.values[name] === true;
}
