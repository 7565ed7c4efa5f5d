/**
 * Configuration: `project.toml`, the data folder lookup, the listen address
 * and rendezvous URLs. Parsing and merging are pure; {@link loadProjectConfig}
 * and {@link resolveDataDir} read files.
 *
 * Keys of `project.toml` (every key optional, an unknown key is an error):
 *
 * ```toml
 * listen = "127.0.0.1:3001"                 # HOST:PORT of the HTTP/WebSocket listener
 * rendezvous = "ws://hub:3001/crdt-sync"    # or an array of URLs
 * trusted_keys = ["<64 hex>", ...]          # trusted with write scope
 * data_dir = "data"                         # relative to the file's folder
 * open = false                              # open mesh: any key may connect
 * public_status = false                     # serve / and /api/* to non-loopback clients
 * public_host = "hub.example.org"           # or an array: names accepted in Host headers
 * public_metrics = false                    # node and peer ids in /metrics for everyone
 * max_unauthenticated = 64                  # connections still in the handshake, at once
 * attempts_per_minute_per_address = 30      # handshake attempts per source address per minute
 * startup_grace_secs = 10                   # no writes after a restart until a peer caught us up
 * ```
 * @module
 */
import { CONFIG_FILE_NAME } from "../data_dir.ts";
import { dirname, isAbsolute, join } from "node:path";
import { parse as parseToml, TomlError } from "smol-toml";
import { trustKeyProblem } from "../auth/mod.ts";
import { type ParsedArgs, stringOption } from "./args.ts";
import { CliError, ExitCode, readableOsMessage } from "./errors.ts";

/** The data folder used when neither `--data-dir` nor `data_dir` says otherwise. */
export const DEFAULT_DATA_DIR = "./.huskies";
/** The listen address used when neither `--listen` nor `listen` says otherwise. */
export const DEFAULT_LISTEN = "127.0.0.1:3001";

/** A host and port to listen on. */
export interface ListenAddress {
  /** Host name or IP address (IPv6 without brackets). */
  hostname: string;
  /** TCP port; 0 picks a free port. */
  port: number;
}

/** The settings `project.toml` may hold, already validated. */
export interface ProjectConfig {
  /** `listen`. */
  listen?: ListenAddress;
  /** `rendezvous` (a string becomes a one-element list). */
  rendezvous?: string[];
  /** `trusted_keys`. */
  trustedKeys?: string[];
  /** `data_dir`, resolved against the folder of the file. */
  dataDir?: string;
  /** `open`. */
  open?: boolean;
  /** `public_status`. */
  publicStatus?: boolean;
  /** `public_metrics`. */
  publicMetrics?: boolean;
  /** `max_unauthenticated`: connections still in the handshake, at most, at once. */
  maxUnauthenticated?: number;
  /** `attempts_per_minute_per_address`: handshake attempts per source address per minute. */
  attemptsPerMinutePerAddress?: number;
  /** `public_host` (a string becomes a one-element list). */
  publicHosts?: string[];
  /** `startup_grace_secs`: the start-up grace, seconds (0 disables it). */
  startupGraceSecs?: number;
}

/** Keys `project.toml` may contain. */
export const CONFIG_KEYS = [
  "listen",
  "rendezvous",
  "trusted_keys",
  "data_dir",
  "open",
  "public_status",
  "public_host",
  "public_metrics",
  "max_unauthenticated",
  "attempts_per_minute_per_address",
  "startup_grace_secs",
] as const;

/**
 * Parses `HOST:PORT` (IPv6 as `[::1]:3001`) (pure).
 * @throws {TypeError} the text is not of that form, or the port is not 0 to 65535.
 */
export function parseListen(text: string): ListenAddress {
  const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:\s\[\]]+)):(\d{1,5})$/.exec(text.trim());
  if (!match) {
    throw new TypeError(
      `Cannot use listen address "${text}": expected HOST:PORT, e.g. 127.0.0.1:3001 or [::1]:3001`,
    );
  }
  const port = Number(match[3]);
  if (port > 65535) {
    throw new TypeError(`Cannot use listen address "${text}": port must be 0 to 65535`);
  }
  return { hostname: match[1] ?? match[2], port };
}

/** Formats a host and port for a URL, bracketing IPv6 addresses (pure). */
export function hostPort(hostname: string, port: number): string {
  return `${hostname.includes(":") ? `[${hostname}]` : hostname}:${port}`;
}

/**
 * Reads a count for an admission limit (pure): a whole number from 1 to
 * 1,000,000. `name` is the flag or key named in the message.
 * @throws {TypeError} it is not such a number.
 */
export function checkCount(text: string, name: string): number {
  const value = Number(text.trim());
  if (
    !/^\d+$/.test(text.trim()) || !Number.isSafeInteger(value) || value < 1 || value > 1_000_000
  ) {
    throw new TypeError(`Cannot use ${name} "${text}": expected a whole number from 1 to 1000000`);
  }
  return value;
}

/** Longest start-up grace accepted, seconds. */
export const MAX_STARTUP_GRACE_SECS = 3600;

/**
 * Reads the start-up grace (pure): seconds from 0 to
 * {@link MAX_STARTUP_GRACE_SECS}, fractions allowed. `name` is the flag or
 * key named in the message.
 * @throws {TypeError} it is not such a number.
 */
export function checkGraceSeconds(text: string, name: string): number {
  const value = Number(text.trim());
  if (
    !/^\d+(\.\d+)?$/.test(text.trim()) || !(value >= 0 && value <= MAX_STARTUP_GRACE_SECS)
  ) {
    throw new TypeError(
      `Cannot use ${name} "${text}": expected seconds from 0 to ${MAX_STARTUP_GRACE_SECS}`,
    );
  }
  return value;
}

/**
 * Checks a DNS host name for `public_host` (pure); returns it in lower case.
 * @throws {TypeError} it is not a host name.
 */
export function checkHostName(text: string): string {
  const name = text.trim().toLowerCase();
  if (
    !/^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/
      .test(name)
  ) {
    throw new TypeError(
      `Cannot use host name "${text}": expected a DNS name such as hub.example.org (no port)`,
    );
  }
  return name;
}

/**
 * Checks a rendezvous URL (pure): it must parse and use `ws:` or `wss:`.
 * Returns the URL as given (trimmed).
 * @throws {TypeError} naming the URL and the problem.
 */
export function checkRendezvousUrl(text: string): string {
  const trimmed = text.trim();
  let url: URL;
  try {
    url = new URL(trimmed);
  } catch {
    throw new TypeError(
      `Cannot use rendezvous URL "${text}": it is not a URL (expected e.g. ws://host:3001/crdt-sync)`,
    );
  }
  if (url.protocol !== "ws:" && url.protocol !== "wss:") {
    throw new TypeError(
      `Cannot use rendezvous URL "${text}": it must start with ws:// or wss:// ` +
        `(e.g. ws://host:3001/crdt-sync), not ${url.protocol}//`,
    );
  }
  return trimmed;
}

function configError(file: string, reason: string, cause?: unknown, hint?: string): CliError {
  return new CliError(ExitCode.CONFIG, `Cannot read config file ${file}: ${reason}`, {
    cause,
    hint: hint ?? `Fix ${file}; known keys: ${CONFIG_KEYS.join(", ")}.`,
  });
}

/**
 * Parses and validates `project.toml` text (pure). `file` names the file in
 * messages and anchors a relative `data_dir`.
 * @throws {CliError} (exit code 7) naming the file and the key at fault.
 */
export function parseProjectConfig(text: string, file: string): ProjectConfig {
  let table: Record<string, unknown>;
  try {
    table = parseToml(text) as Record<string, unknown>;
  } catch (error) {
    const reason = error instanceof TomlError
      ? error.message.replace(/\n+/g, "\n  ").trimEnd()
      : (error as Error).message;
    throw configError(file, `it is not valid TOML: ${reason}`, error);
  }
  const config: ProjectConfig = {};
  for (const [key, value] of Object.entries(table)) {
    const bad = (expected: string) =>
      configError(file, `key "${key}" must be ${expected}, got ${JSON.stringify(value)}`);
    switch (key) {
      case "listen":
        if (typeof value !== "string") throw bad('a string "HOST:PORT"');
        try {
          config.listen = parseListen(value);
        } catch (error) {
          throw configError(file, `key "listen": ${(error as Error).message}`, error);
        }
        break;
      case "rendezvous": {
        const urls = typeof value === "string" ? [value] : value;
        if (!Array.isArray(urls) || !urls.every((u) => typeof u === "string")) {
          throw bad("a ws:// URL or an array of them");
        }
        try {
          config.rendezvous = urls.map(checkRendezvousUrl);
        } catch (error) {
          throw configError(file, `key "rendezvous": ${(error as Error).message}`, error);
        }
        break;
      }
      case "trusted_keys":
        if (!Array.isArray(value)) throw bad("an array of node ids (64 hex characters)");
        value.forEach((item, index) => {
          const problem = trustKeyProblem(item);
          if (problem) {
            throw configError(file, `key "trusted_keys" entry ${index}: ${problem}`);
          }
        });
        config.trustedKeys = value as string[];
        break;
      case "data_dir":
        if (typeof value !== "string" || value.length === 0) throw bad("a non-empty path");
        config.dataDir = isAbsolute(value) ? value : join(dirname(file), value);
        break;
      case "open":
        if (typeof value !== "boolean") throw bad("true or false");
        config.open = value;
        break;
      case "public_status":
        if (typeof value !== "boolean") throw bad("true or false");
        config.publicStatus = value;
        break;
      case "public_metrics":
        if (typeof value !== "boolean") throw bad("true or false");
        config.publicMetrics = value;
        break;
      case "max_unauthenticated":
      case "attempts_per_minute_per_address":
        if (typeof value !== "number" && typeof value !== "bigint") {
          throw bad("a whole number >= 1");
        }
        try {
          const count = checkCount(String(value), key);
          if (key === "max_unauthenticated") config.maxUnauthenticated = count;
          else config.attemptsPerMinutePerAddress = count;
        } catch (error) {
          throw configError(file, (error as Error).message, error);
        }
        break;
      case "startup_grace_secs":
        if (typeof value !== "number" && typeof value !== "bigint") {
          throw bad("a number of seconds");
        }
        try {
          config.startupGraceSecs = checkGraceSeconds(String(value), key);
        } catch (error) {
          throw configError(file, (error as Error).message, error);
        }
        break;
      case "public_host": {
        const names = typeof value === "string" ? [value] : value;
        if (!Array.isArray(names) || !names.every((n) => typeof n === "string")) {
          throw bad("a host name or an array of them");
        }
        try {
          config.publicHosts = names.map(checkHostName);
        } catch (error) {
          throw configError(file, `key "public_host": ${(error as Error).message}`, error);
        }
        break;
      }
      default:
        throw configError(file, `unknown key "${key}"`);
    }
  }
  return config;
}

/**
 * Reads and parses a config file. A missing file yields `undefined` unless
 * `required` (then it is an error).
 * @throws {CliError} exit code 7 for an unreadable or invalid file.
 */
export async function loadProjectConfig(
  file: string,
  options: { required?: boolean } = {},
): Promise<ProjectConfig | undefined> {
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (error) {
    const absent = error instanceof Deno.errors.NotFound ||
      error instanceof Deno.errors.NotADirectory;
    if (absent && !options.required) return undefined;
    if (error instanceof Deno.errors.NotFound || error instanceof Deno.errors.NotADirectory) {
      throw configError(
        file,
        "it does not exist",
        error,
        "Check the path given to --config, or leave --config out to use " +
          `<data folder>/${CONFIG_FILE_NAME} (a missing one is fine).`,
      );
    }
    throw configError(file, readableOsMessage((error as Error).message), error);
  }
  return parseProjectConfig(text, file);
}

/** Flags that locate the data folder and its configuration. */
export interface LocationFlags {
  /** `--data-dir`. */
  dataDir?: string;
  /** `--config`. */
  config?: string;
}

/** The data folder and the configuration that applies to it. */
export interface ResolvedLocation {
  /** The data folder (as given, or resolved from `data_dir`). */
  dataDir: string;
  /** The configuration file that was read, if any. */
  configFile?: string;
  /** Its settings (empty when there is no file). */
  config: ProjectConfig;
}

/**
 * Chooses the configuration file and the data folder (pure): `--config` if
 * given, else `<--data-dir or ./.huskies>/project.toml`; the data folder is
 * `--data-dir`, else the file's `data_dir`, else `./.huskies`.
 */
export function chooseLocation(
  flags: LocationFlags,
  config: ProjectConfig | undefined,
): { dataDir: string } {
  return { dataDir: flags.dataDir ?? config?.dataDir ?? DEFAULT_DATA_DIR };
}

/** The config file to read for `flags` (pure). */
export function configFileFor(flags: LocationFlags): { file: string; required: boolean } {
  if (flags.config !== undefined) return { file: flags.config, required: true };
  return { file: join(flags.dataDir ?? DEFAULT_DATA_DIR, CONFIG_FILE_NAME), required: false };
}

/** Reads the configuration for `flags` and decides the data folder. */
export async function resolveDataDir(flags: LocationFlags): Promise<ResolvedLocation> {
  const { file, required } = configFileFor(flags);
  const config = await loadProjectConfig(file, { required });
  const { dataDir } = chooseLocation(flags, config);
  return { dataDir, configFile: config ? file : undefined, config: config ?? {} };
}

/** {@link resolveDataDir} for a command's parsed `--data-dir` and `--config`. */
export function locate(args: ParsedArgs): Promise<ResolvedLocation> {
  return resolveDataDir({
    dataDir: stringOption(args, "data-dir"),
    config: stringOption(args, "config"),
  });
}
