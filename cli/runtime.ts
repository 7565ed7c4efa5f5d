/**
 * The files a running `huskies serve` leaves in its data folder so other
 * commands can reach it: `serve.json` (pid, addresses) and `admin.token`
 * (a random secret, mode 0600, new at every start), plus the client that
 * uses them to call the admin API.
 * @module
 */
import { ADMIN_TOKEN_FILE_NAME, SERVE_FILE_NAME } from "../data_dir.ts";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { CliError, ExitCode, UsageError } from "./errors.ts";
import { FileAccessError, readSecretFileSync } from "../auth/files.ts";
import { type AdminRouteName, routePath, ROUTES } from "./http/routes.ts";
import { isLoopback } from "./http/guard.ts";
import { PEERS_TIMEOUT_CODE, WRITE_REFUSED_CODE } from "./http/admin.ts";

/** Contents of `serve.json`. */
export interface ServeInfo {
  /** Format version. */
  version: 1;
  /** Process id of the node. */
  pid: number;
  /** The node id. */
  nodeId: string;
  /** `HOST:PORT` actually bound. */
  listen: string;
  /** Base URL of the HTTP endpoints, e.g. `http://127.0.0.1:3001/`. */
  url: string;
  /** The sync endpoint, e.g. `ws://127.0.0.1:3001/crdt-sync`. */
  syncUrl: string;
  /** Base URL for the admin API, always on a loopback address. */
  adminUrl: string;
  /** Start time, ISO 8601. */
  startedAt: string;
}

/** Writes `text` to `path` atomically with mode 0600 (temp file + rename). */
export async function writePrivateFile(path: string, text: string): Promise<void> {
  const temp = `${path}.tmp-${randomBytes(6).toString("hex")}`;
  try {
    const file = await Deno.open(temp, { write: true, createNew: true, mode: 0o600 });
    try {
      if (Deno.build.os !== "windows") await Deno.chmod(temp, 0o600);
      await file.write(new TextEncoder().encode(text));
      await file.sync();
    } finally {
      file.close();
    }
    await Deno.rename(temp, path);
  } catch (error) {
    await Deno.remove(temp).catch(() => {});
    throw error;
  }
}

/** A fresh admin secret: 32 random bytes as 64 hex characters. */
export function newAdminToken(): string {
  return randomBytes(32).toString("hex");
}

/** Writes `serve.json` and `admin.token` for a node that has started listening. */
export async function writeRuntimeFiles(
  dataDir: string,
  info: ServeInfo,
  adminToken: string,
): Promise<void> {
  // The token first: whoever sees serve.json can count on the token being current.
  await writePrivateFile(join(dataDir, ADMIN_TOKEN_FILE_NAME), adminToken + "\n");
  await writePrivateFile(join(dataDir, SERVE_FILE_NAME), JSON.stringify(info, null, 2) + "\n");
}

/** Removes `serve.json` and `admin.token` (missing files are fine). */
export async function removeRuntimeFiles(dataDir: string): Promise<void> {
  for (const name of [SERVE_FILE_NAME, ADMIN_TOKEN_FILE_NAME]) {
    await Deno.remove(join(dataDir, name)).catch(() => {});
  }
}

function notRunning(dataDir: string, detail?: string): CliError {
  return new CliError(
    ExitCode.NOT_RUNNING,
    `Cannot reach the node: no node is running for data folder ${dataDir}${
      detail ? ` (${detail})` : ""
    }; start one with \`huskies serve --data-dir ${dataDir}\``,
  );
}

/** Parses `serve.json` text (pure); `undefined` when it is not a valid file. */
export function parseServeInfo(text: string): ServeInfo | undefined {
  try {
    const value = JSON.parse(text) as Partial<ServeInfo>;
    if (
      value?.version !== 1 || typeof value.adminUrl !== "string" ||
      typeof value.nodeId !== "string" || typeof value.url !== "string"
    ) return undefined;
    return value as ServeInfo;
  } catch {
    return undefined;
  }
}

/**
 * Why `serve.json`'s `adminUrl` must not receive the admin token (pure):
 * it must be `http://` to a loopback IP address (`127.x`, `::1`), never a
 * name that DNS or /etc/hosts could point elsewhere.
 */
export function adminUrlProblem(text: string): string | undefined {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return "is not a URL";
  }
  if (url.protocol !== "http:") return `uses ${url.protocol}// instead of http://`;
  if (url.username || url.password) return "holds credentials";
  if (!isLoopback(url.hostname)) return "is not a loopback address";
  return undefined;
}

/** Reads `serve.json` of `dataDir`, or `undefined` when there is none. */
export async function readServeInfo(dataDir: string): Promise<ServeInfo | undefined> {
  try {
    return parseServeInfo(await Deno.readTextFile(join(dataDir, SERVE_FILE_NAME)));
  } catch {
    return undefined;
  }
}

/** An admin API response that was not a success. */
export interface AdminFailure {
  /** HTTP status. */
  status: number;
  /** The server's message. */
  message: string;
}

/** Calls the admin API of the node running for a data folder. */
export class AdminClient {
  /** The running node's `serve.json`. */
  readonly info: ServeInfo;
  readonly #dataDir: string;
  readonly #token: string;
  readonly #command: string;

  private constructor(dataDir: string, info: ServeInfo, token: string, command: string) {
    this.#dataDir = dataDir;
    this.info = info;
    this.#token = token;
    this.#command = command;
  }

  /**
   * Finds the node running for `dataDir` (from `serve.json` and `admin.token`).
   * `command` names the CLI command in usage errors.
   * @throws {CliError} exit code 4 when no node is running.
   */
  static async open(dataDir: string, command: string): Promise<AdminClient> {
    const info = await readServeInfo(dataDir);
    if (!info) throw notRunning(dataDir);
    const problem = adminUrlProblem(info.adminUrl);
    if (problem) {
      throw new CliError(
        ExitCode.DATA_INVALID,
        `Cannot use the admin API: ${join(dataDir, SERVE_FILE_NAME)} gives adminUrl ` +
          `${JSON.stringify(info.adminUrl)}, which ${problem}; the admin token is only ever sent ` +
          "to a loopback address",
        {
          hint: `\`huskies serve\` never writes such a file: remove ${
            join(dataDir, SERVE_FILE_NAME)
          } and check who can write to ${dataDir}.`,
        },
      );
    }
    let token: string;
    try {
      const text = readSecretFileSync(join(dataDir, ADMIN_TOKEN_FILE_NAME));
      if (text === null) throw new Deno.errors.NotFound(ADMIN_TOKEN_FILE_NAME);
      token = text.trim();
    } catch (error) {
      if (error instanceof FileAccessError) {
        throw new CliError(
          ExitCode.FAILURE,
          `Cannot read ${join(dataDir, ADMIN_TOKEN_FILE_NAME)}: ${error.message}`,
        );
      }
      if (error instanceof Deno.errors.PermissionDenied) {
        throw new CliError(
          ExitCode.FAILURE,
          `Cannot read ${join(dataDir, ADMIN_TOKEN_FILE_NAME)}: permission denied; ` +
            "run the command as the user that runs the node",
        );
      }
      throw notRunning(dataDir, "admin.token is missing");
    }
    return new AdminClient(dataDir, info, token, command);
  }

  /**
   * Calls admin route `name` (see `http/routes.ts`) and returns the parsed
   * JSON body. A 400 response becomes a {@link UsageError} (exit 2), 404 a
   * not-found error (exit 3), 403 and others a failure; an unreachable node
   * is exit code 4.
   */
  async call<T>(
    name: AdminRouteName,
    query: Record<string, string | undefined> = {},
    body?: unknown,
    options: { timeoutMs?: number } = {},
  ): Promise<T> {
    const timeoutMs = options.timeoutMs ?? 15_000;
    const method = ROUTES[name].method;
    const url = new URL(routePath(name, query), this.info.adminUrl);
    let response: Response;
    try {
      response = await fetch(url, {
        method,
        headers: {
          authorization: `Bearer ${this.#token}`,
          ...(body === undefined ? {} : { "content-type": "application/json" }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (error) {
      const reason = (error as Error).name === "TimeoutError"
        ? `${this.info.adminUrl} did not answer within ${Math.round(timeoutMs / 1000)} s`
        : `${this.info.adminUrl} is not answering; serve.json may be stale`;
      throw notRunning(this.#dataDir, reason);
    }
    const text = await response.text();
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      parsed = undefined;
    }
    if (response.ok) return parsed as T;
    const message = (parsed as { error?: unknown } | undefined)?.error;
    const reason = typeof message === "string" ? message : `HTTP ${response.status}`;
    if (response.status === 400) throw new UsageError(this.#command, reason);
    if (response.status === 404) throw new CliError(ExitCode.NOT_FOUND, reason);
    const details = parsed as { code?: unknown; retryable?: unknown; retryAfterSecs?: unknown };
    if (details?.code === PEERS_TIMEOUT_CODE) {
      throw new CliError(ExitCode.PEERS_TIMEOUT, reason, {
        hint: "The change is made here; to see how far it got, run `huskies status`.",
      });
    }
    if (details?.code === WRITE_REFUSED_CODE) {
      throw new CliError(ExitCode.WRITE_REFUSED, reason, {
        hint: details.retryable === true
          ? `Nothing was changed. Retryable: run the same command again in ${
            Number(details.retryAfterSecs) || 1
          } s or later.`
          : "Nothing was changed. Not retryable: this node cannot write until an operator " +
            "acts as the message says.",
      });
    }
    if (response.status === 403) {
      throw new CliError(ExitCode.FAILURE, `Cannot use the admin API: ${reason}`, {
        hint: `If no node is running for ${this.#dataDir}, remove the stale ` +
          `${join(this.#dataDir, SERVE_FILE_NAME)}.`,
      });
    }
    throw new CliError(ExitCode.FAILURE, reason);
  }
}
