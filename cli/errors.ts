/**
 * Exit codes of the `huskies` CLI and the errors that carry them.
 *
 * Every command returns one of {@link ExitCode}. A command signals a failure
 * by throwing a {@link CliError} (or a {@link UsageError} for bad flags and
 * arguments); {@link classifyError} maps the library's named errors (a locked
 * or corrupt data folder, an existing key file) to the right code.
 * @module
 */
import {
  DataFileError,
  KeyFileCorruptError,
  KeyFileExistsError,
  KeyFileMissingError,
  KeyFilePermissionError,
} from "../auth/mod.ts";
import { ReplayError } from "../crdt/replica.ts";
import { StoreCorruptError, StoreLockedError } from "../crdt/sqlite_store.ts";

/** Exit codes, documented in `cli/USAGE.md`. */
export const ExitCode = {
  /** The command did what was asked. */
  OK: 0,
  /** Something failed that no more specific code covers. */
  FAILURE: 1,
  /** Bad flags, arguments or input values (nothing was changed). */
  USAGE: 2,
  /** The named item, token, trusted key or key file does not exist. */
  NOT_FOUND: 3,
  /** No node is running for the data folder (for commands that need one). */
  NOT_RUNNING: 4,
  /** The data folder is in use by another process (its store is locked). */
  LOCKED: 5,
  /** A file in the data folder is corrupt or unsafe (store, key file). */
  DATA_INVALID: 6,
  /** The configuration file (`project.toml`) is malformed. */
  CONFIG: 7,
  /** The HTTP/WebSocket listener could not start (e.g. the port is in use). */
  LISTEN: 8,
  /** `huskies verify` found problems in the store. */
  VERIFY_FAILED: 9,
  /** Refused to overwrite something that exists (a key file without `--force`). */
  EXISTS: 10,
  /** `huskies verify`: the store is sound but this node's own key is forked (used elsewhere). */
  OWN_KEY_FORKED: 11,
  /**
   * The node refused to sign the write (nothing was changed): retryable while
   * it starts or waits for its own operations from peers; not retryable when
   * its own key is forked. The message says which and what to do.
   */
  WRITE_REFUSED: 12,
  /**
   * `--wait-peers`: the write is applied and durable on this node, but fewer
   * peers than asked confirmed holding it within the timeout.
   */
  PEERS_TIMEOUT: 13,
  /** A later SIGINT/SIGTERM (after the duplicate window) forced the process to exit. */
  INTERRUPTED: 130,
} as const;

/** One of the values of {@link ExitCode}. */
export type ExitCodeValue = typeof ExitCode[keyof typeof ExitCode];

/** The name of an exit code, e.g. `NOT_FOUND` for 3 (pure); `FAILURE` for unknown codes. */
export function exitCodeName(code: number): keyof typeof ExitCode {
  const entry = Object.entries(ExitCode).find(([, value]) => value === code);
  return (entry?.[0] ?? "FAILURE") as keyof typeof ExitCode;
}

/** Options for {@link CliError}. */
export interface CliErrorOptions extends ErrorOptions {
  /** A line of advice printed after the message. */
  hint?: string;
}

/** An error the CLI reports with a message (and optional hint) and an exit code. */
export class CliError extends Error {
  /** The process exit code. */
  readonly exitCode: ExitCodeValue;
  /** Optional advice printed after the message. */
  readonly hint?: string;

  /** Creates the error; `message` should read "Cannot <action>: <reason>". */
  constructor(exitCode: ExitCodeValue, message: string, options: CliErrorOptions = {}) {
    super(message, options);
    this.name = new.target.name;
    this.exitCode = exitCode;
    this.hint = options.hint;
  }
}

/** Bad flags or arguments: exit code 2, with a pointer to the command's `--help`. */
export class UsageError extends CliError {
  /** The command whose help explains the usage, e.g. `item put` (empty for the root). */
  readonly command: string;

  /** Creates the error for `command` (words after `huskies`). */
  constructor(command: string, message: string, options: CliErrorOptions = {}) {
    super(ExitCode.USAGE, message, {
      ...options,
      hint: options.hint ?? `Run \`huskies${command ? " " + command : ""} --help\` for usage.`,
    });
    this.command = command;
  }
}

const OS_ACTIONS: Record<string, string> = {
  mkdir: "create folder",
  open: "open",
  stat: "read",
  lstat: "read",
  readfile: "read",
  writefile: "write",
  rename: "replace",
  remove: "remove",
  chmod: "change the mode of",
  copyfile: "copy",
};

function osReason(reason: string, op: string): string {
  switch (reason.toLowerCase()) {
    case "no such file or directory":
      return op === "mkdir"
        ? "a folder above it does not exist or does not allow new folders"
        : "it does not exist";
    case "file exists":
      return op === "mkdir"
        ? "a file of that name is in the way (it must be a folder)"
        : "it exists";
    case "not a directory":
      return "a part of the path is a file, not a folder";
    case "permission denied":
      return "permission denied";
    case "read-only file system":
      return "the file system is read-only";
    case "is a directory":
      return "it is a folder, not a file";
    default:
      return reason.toLowerCase();
  }
}

const OS_ERROR = /([A-Z][\w -]*?) \(os error \d+\)(?:: (\w+) '([^']*)')?/;

/**
 * Rewrites an operating-system error message such as
 * `Not a directory (os error 20): open '/d/trust.json'` as
 * "Cannot open /d/trust.json: a part of the path is a file, not a folder"
 * (pure). Inside a longer message only the raw part is replaced.
 */
export function readableOsMessage(message: string): string {
  const match = OS_ERROR.exec(message);
  if (!match) return message;
  const [raw, reason, op = "", path] = match;
  const why = osReason(reason, op.toLowerCase());
  if (match.index === 0 && path !== undefined) {
    return `Cannot ${OS_ACTIONS[op.toLowerCase()] ?? op} ${path}: ${why}`;
  }
  return message.replace(raw, why);
}

/**
 * Maps any thrown value to a {@link CliError} (pure): library errors about
 * the data folder get their own codes, anything else is a general failure.
 */
export function classifyError(error: unknown): CliError {
  if (error instanceof CliError) return error;
  if (error instanceof StoreLockedError) {
    return new CliError(ExitCode.LOCKED, error.message, { cause: error });
  }
  if (
    error instanceof StoreCorruptError || error instanceof ReplayError ||
    error instanceof DataFileError || error instanceof KeyFileCorruptError ||
    error instanceof KeyFilePermissionError
  ) {
    return new CliError(ExitCode.DATA_INVALID, readableOsMessage(error.message), { cause: error });
  }
  if (error instanceof KeyFileExistsError) {
    return new CliError(ExitCode.EXISTS, error.message, { cause: error });
  }
  if (error instanceof KeyFileMissingError) {
    return new CliError(ExitCode.NOT_FOUND, error.message, {
      cause: error,
      hint: "Create an identity with `huskies keys create` (or start `huskies serve` once).",
    });
  }
  const message = readableOsMessage(error instanceof Error ? error.message : String(error));
  return new CliError(ExitCode.FAILURE, message, { cause: error });
}

/** Turns a library input error (TypeError, RangeError, SyntaxError) into a {@link UsageError}. */
export function asUsageError(command: string, error: unknown): unknown {
  if (error instanceof TypeError || error instanceof RangeError || error instanceof SyntaxError) {
    return new UsageError(command, error.message, { cause: error });
  }
  return error;
}
