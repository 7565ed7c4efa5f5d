/**
 * `huskies serve`: opens the node of a data folder, listens for peers and
 * HTTP clients, dials rendezvous peers, and stops cleanly on SIGINT/SIGTERM.
 * {@link resolveServeSettings} (flags over `project.toml` over defaults) is
 * pure; {@link runServe} does the I/O.
 * @module
 */
import { join } from "node:path";
import { parseJoinToken } from "../auth/mod.ts";
import { StoreCorruptError } from "../crdt/sqlite_store.ts";
import { STORE_FILE_NAME } from "../data_dir.ts";
import { consoleLogger, type Logger, type LogLevel } from "../sync/logger.ts";
import { HuskiesNode, SYNC_PATH } from "../sync/node.ts";
import {
  type CliContext,
  type Command,
  DATA_DIR_OPTION,
  flagOption,
  listOption,
  type ParsedArgs,
  stringOption,
} from "./args.ts";
import {
  checkCount,
  checkGraceSeconds,
  checkHostName,
  checkRendezvousUrl,
  CONFIG_KEYS,
  DEFAULT_LISTEN,
  hostPort,
  type ListenAddress,
  locate,
  parseListen,
  type ProjectConfig,
} from "./config.ts";
import { ExitCode, UsageError } from "./errors.ts";
import { listenFailure, openFailure } from "./serve_failures.ts";
import { HttpApp } from "./http/app.ts";
import { isLoopback, redactUrl } from "./http/guard.ts";
import { newAdminToken, removeRuntimeFiles, type ServeInfo, writeRuntimeFiles } from "./runtime.ts";
import { DUPLICATE_SIGNAL_WINDOW_MS, listenForStop } from "./signals.ts";
import { isWildcard, localAddress, startBanner } from "./banner.ts";

export { listenFailure, openFailure } from "./serve_failures.ts";

/** Log levels accepted by `--log-level`. */
export const LOG_LEVELS: readonly LogLevel[] = ["debug", "info", "warn", "error"];
/** How long a clean stop may take before the process exits anyway, ms. */
export const SHUTDOWN_TIMEOUT_MS = 10_000;

/** Everything `serve` needs to know, after flags, file and defaults are merged. */
export interface ServeSettings {
  /** Where to listen. */
  listen: ListenAddress;
  /** Peers to dial. */
  rendezvous: string[];
  /** The join token for the rendezvous connections, parsed. */
  join?: { token: string; id: string; hubKey: string };
  /** Keys from `trusted_keys`. */
  trustedKeys: string[];
  /** Open mesh. */
  open: boolean;
  /** Run the in-band handshake for peers that do not pre-authenticate (`--allow-in-band-handshake`). */
  allowInBandHandshake: boolean;
  /** Serve the status page to non-loopback clients. */
  publicStatus: boolean;
  /** Names the status page and admin API answer to, besides loopback names and IPs. */
  publicHosts: string[];
  /** Show node and peer ids in /metrics and /healthz to non-loopback clients. */
  publicMetrics: boolean;
  /** Admission limits for connections that have not authenticated (unset: the node's defaults). */
  admission: { maxUnauthenticated?: number; attemptsPerMinutePerAddress?: number };
  /** Start-up grace, ms (unset: the node's default, 10 s after a restart, 0 for a new key). */
  startupGraceMs?: number;
  /** Accept a lost own history found at open (`--accept-lost-history`, flag only). */
  acceptLostHistory: boolean;
  /** JSON log lines. */
  logJson: boolean;
  /** Lowest log level printed. */
  logLevel: LogLevel;
}

/**
 * Merges flags over `project.toml` over defaults (pure).
 * @throws {UsageError} a flag value is invalid (exit code 2).
 */
export function resolveServeSettings(args: ParsedArgs, config: ProjectConfig): ServeSettings {
  const fail = (message: string) => new UsageError("serve", message);
  let listen = config.listen ?? parseListen(DEFAULT_LISTEN);
  const listenFlag = stringOption(args, "listen");
  if (listenFlag !== undefined) {
    try {
      listen = parseListen(listenFlag);
    } catch (error) {
      throw fail(`${(error as Error).message} (--listen)`);
    }
  }
  let rendezvous = config.rendezvous ?? [];
  const rendezvousFlags = listOption(args, "rendezvous");
  if (rendezvousFlags.length > 0) {
    try {
      rendezvous = rendezvousFlags.map(checkRendezvousUrl);
    } catch (error) {
      throw fail(`${(error as Error).message} (--rendezvous)`);
    }
  }
  let join: ServeSettings["join"];
  const joinFlag = stringOption(args, "join");
  if (joinFlag !== undefined) {
    try {
      const parsed = parseJoinToken(joinFlag);
      join = { token: joinFlag.trim().toLowerCase(), id: parsed.id, hubKey: parsed.hubKey };
    } catch (error) {
      throw fail(`${(error as Error).message} (--join)`);
    }
    if (rendezvous.length === 0) {
      throw fail(
        "Cannot use --join: it needs the hub's address; add --rendezvous ws://HUB:PORT/crdt-sync",
      );
    }
  }
  const logLevel = stringOption(args, "log-level") ?? "info";
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) {
    throw fail(
      `Cannot use --log-level "${logLevel}": expected one of ${LOG_LEVELS.join(", ")}`,
    );
  }
  return {
    listen,
    rendezvous,
    join,
    trustedKeys: config.trustedKeys ?? [],
    open: flagOption(args, "open") || (config.open ?? false),
    allowInBandHandshake: flagOption(args, "allow-in-band-handshake"),
    publicStatus: flagOption(args, "public-status") || (config.publicStatus ?? false),
    publicHosts: publicHosts(args, config),
    publicMetrics: flagOption(args, "public-metrics") || (config.publicMetrics ?? false),
    admission: admissionLimits(args, config),
    ...startupGrace(args, config),
    acceptLostHistory: flagOption(args, "accept-lost-history"),
    logJson: flagOption(args, "log-json"),
    logLevel: logLevel as LogLevel,
  };
}

/** `--max-unauthenticated` and `--attempts-per-minute` over their keys (pure). */
function admissionLimits(args: ParsedArgs, config: ProjectConfig): ServeSettings["admission"] {
  const count = (flag: string, fallback: number | undefined) => {
    const text = stringOption(args, flag);
    if (text === undefined) return fallback;
    try {
      return checkCount(text, `--${flag}`);
    } catch (error) {
      throw new UsageError("serve", (error as Error).message);
    }
  };
  const limits: ServeSettings["admission"] = {};
  const max = count("max-unauthenticated", config.maxUnauthenticated);
  if (max !== undefined) limits.maxUnauthenticated = max;
  const attempts = count("attempts-per-minute", config.attemptsPerMinutePerAddress);
  if (attempts !== undefined) limits.attemptsPerMinutePerAddress = attempts;
  return limits;
}

/** `--startup-grace` over `startup_grace_secs`, in ms (pure); empty when neither is set. */
function startupGrace(args: ParsedArgs, config: ProjectConfig): { startupGraceMs?: number } {
  const text = stringOption(args, "startup-grace");
  let secs = config.startupGraceSecs;
  if (text !== undefined) {
    try {
      secs = checkGraceSeconds(text, "--startup-grace");
    } catch (error) {
      throw new UsageError("serve", (error as Error).message);
    }
  }
  return secs === undefined ? {} : { startupGraceMs: Math.round(secs * 1000) };
}

/** `--public-host` (else `public_host`), checked (pure). */
function publicHosts(args: ParsedArgs, config: ProjectConfig): string[] {
  const flags = listOption(args, "public-host");
  if (flags.length === 0) return config.publicHosts ?? [];
  return flags.map((name) => {
    try {
      return checkHostName(name);
    } catch (error) {
      throw new UsageError("serve", `${(error as Error).message} (--public-host)`);
    }
  });
}

function listen(
  address: ListenAddress,
  handler: Deno.ServeHandler<Deno.NetAddr>,
): Deno.HttpServer<Deno.NetAddr> {
  try {
    return Deno.serve({ hostname: address.hostname, port: address.port, onListen() {} }, handler);
  } catch (error) {
    throw listenFailure(error, address);
  }
}

/** Answers requests that arrive after the listener is bound but before the node is open. */
function notReady(): Response {
  return new Response("Cannot answer yet: the node is starting\n", {
    status: 503,
    headers: { "retry-after": "1" },
  });
}

/**
 * Binds every listener `serve` needs, before anything is written to the
 * data folder: the main one, and a loopback one for the admin API when the
 * main one is on a specific non-loopback address.
 */
function bindListeners(
  address: ListenAddress,
  handler: Deno.ServeHandler<Deno.NetAddr>,
): { servers: Deno.HttpServer<Deno.NetAddr>[]; bound: ListenAddress; adminBase?: string } {
  const servers = [listen(address, handler)];
  const bound = { hostname: servers[0].addr.hostname, port: servers[0].addr.port };
  if (isLoopback(bound.hostname) || isWildcard(bound.hostname)) return { servers, bound };
  try {
    // Admin requests must come from loopback: give them a loopback listener of their own.
    servers.push(listen({ hostname: "127.0.0.1", port: 0 }, handler));
  } catch (error) {
    servers[0].shutdown().catch(() => {});
    throw error;
  }
  return { servers, bound, adminBase: `http://127.0.0.1:${servers[1].addr.port}/` };
}

/** Runs `huskies serve` until a signal stops it; resolves to the exit code. */
export async function runServe(args: ParsedArgs, ctx: CliContext): Promise<number> {
  const location = await locate(args);
  const settings = resolveServeSettings(args, location.config);
  const { dataDir } = location;
  const logger: Logger = consoleLogger({ json: settings.logJson, level: settings.logLevel });
  // Listen for signals before anything starts, so that an early Ctrl+C still stops cleanly.
  const stop = listenForStop({
    ignored: (signal) => logger.log("debug", "duplicate stop signal ignored", { signal }),
    force: (signal) => {
      ctx.err(`error: ${signal} received again while stopping; exiting without a clean stop`);
      Deno.exit(ExitCode.INTERRUPTED);
    },
  });
  if (location.configFile) logger.log("info", "configuration read", { file: location.configFile });

  // Listen first: a node that cannot listen must leave no key or store behind.
  const ready: { app?: HttpApp } = {};
  const handler = (request: Request, info: Deno.ServeHandlerInfo<Deno.NetAddr>) =>
    ready.app ? ready.app.handle(request, info) : notReady();
  let listeners: ReturnType<typeof bindListeners>;
  try {
    listeners = bindListeners(settings.listen, handler);
  } catch (error) {
    stop.dispose();
    throw error;
  }
  const { servers, bound } = listeners;
  const shutdownServers = () => Promise.all(servers.map((server) => server.shutdown()));

  let node: HuskiesNode;
  try {
    node = await HuskiesNode.open({
      dataDir,
      trustedKeys: settings.trustedKeys,
      open: settings.open,
      admission: settings.admission,
      startupGraceMs: settings.startupGraceMs,
      acceptLostHistory: settings.acceptLostHistory,
      inBandHandshake: settings.allowInBandHandshake ? "allow" : undefined,
      logger,
    });
  } catch (error) {
    await shutdownServers();
    stop.dispose();
    throw openFailure(error, dataDir);
  }
  // The background check of the store (sync/store_check.ts) stops the node on a corrupt row. Its
  // first slice runs on a timer, so a listener added before the next await misses nothing.
  const corrupt = node.once("store-corrupt").then((event) => ({ corrupt: event.message }));
  if (settings.open) {
    logger.log(
      "warn",
      "open mesh: any node that can reach this listener may connect and write operations; " +
        "prefer trusted keys (huskies trust add) or join tokens (huskies token create)",
    );
  }
  const startedAt = Date.now();
  const adminToken = newAdminToken();
  const local = hostPort(localAddress(bound.hostname), bound.port);
  const urls = { sync: `ws://${local}${SYNC_PATH}`, status: `http://${local}/` };
  const adminUrl = listeners.adminBase ?? urls.status;
  const stopRequest = Promise.withResolvers<"admin request">();
  const app = ready.app = new HttpApp({
    onStopRequest: () => stopRequest.resolve("admin request"),
    node,
    version: ctx.version,
    adminToken,
    urls,
    publicStatus: settings.publicStatus,
    publicMetrics: settings.publicMetrics,
    // A listener bound to a name (not an address) answers to that name too.
    publicHosts: isWildcard(bound.hostname) || isLoopback(bound.hostname)
      ? settings.publicHosts
      : [...settings.publicHosts, bound.hostname],
    open: settings.open,
    logger,
    startedAt,
  });
  const stopAll = async () => {
    app.close();
    await node.close();
    await shutdownServers();
  };
  try {
    const info: ServeInfo = {
      version: 1,
      pid: Deno.pid,
      nodeId: node.nodeId,
      listen: hostPort(bound.hostname, bound.port),
      url: urls.status,
      syncUrl: urls.sync,
      adminUrl,
      startedAt: new Date(startedAt).toISOString(),
    };
    await writeRuntimeFiles(dataDir, info, adminToken);
    for (const url of settings.rendezvous) {
      node.connect(url, settings.join ? { token: settings.join.token } : {});
      logger.log("info", "dialing rendezvous peer", { url: redactUrl(url) });
    }
    const banner = startBanner({
      version: ctx.version,
      nodeId: node.nodeId,
      dataDir,
      bound,
      syncUrl: urls.sync,
      statusUrl: urls.status,
      adminUrl,
      settings,
    });
    for (const line of banner) ctx.out(line);
    logger.log("info", "listening", {
      nodeId: node.nodeId,
      listen: info.listen,
      sync: urls.sync,
      status: urls.status,
    });
  } catch (error) {
    await removeRuntimeFiles(dataDir);
    await stopAll();
    stop.dispose();
    throw error;
  }

  const cause = await Promise.race([stop.signal, stopRequest.promise, corrupt]);
  if (typeof cause === "object") {
    await removeRuntimeFiles(dataDir);
    await stopAll();
    stop.dispose();
    throw openFailure(
      new StoreCorruptError(join(dataDir, STORE_FILE_NAME), cause.corrupt),
      dataDir,
    );
  }
  logger.log("info", "stopping", cause === "admin request" ? { by: cause } : { signal: cause });
  const timer = setTimeout(() => {
    ctx.err(
      `error: Cannot stop cleanly: still stopping after ${SHUTDOWN_TIMEOUT_MS / 1000} s; exiting`,
    );
    Deno.exit(ExitCode.FAILURE);
  }, SHUTDOWN_TIMEOUT_MS);
  try {
    await removeRuntimeFiles(dataDir);
    await stopAll();
  } finally {
    clearTimeout(timer);
    stop.dispose();
  }
  logger.log("info", "stopped");
  return ExitCode.OK;
}

/** The `serve` command. */
export const serveCommand: Command = {
  path: ["serve"],
  summary: "run a node: sync endpoint, status page, metrics and admin API",
  description: `
Opens the node of the data folder (creating its identity on first run), listens
for peers on ws://HOST:PORT/crdt-sync and serves the status page (/), /healthz,
/metrics and the admin API used by the item commands. Works with no
configuration: data folder ./.huskies, listening on 127.0.0.1:3001, closed mesh.

Settings come from flags, then <data folder>/project.toml (keys: ${CONFIG_KEYS.join(", ")}),
then defaults.
SIGINT or SIGTERM stops the node cleanly (exit 0). Copies of the signal that
arrive within ${
    DUPLICATE_SIGNAL_WINDOW_MS / 1000
  } s (a terminal and a task runner both deliver Ctrl+C) are
ignored; a signal after that forces exit 130.`,
  options: {
    listen: {
      type: "string",
      value: "HOST:PORT",
      description: `address to listen on (default ${DEFAULT_LISTEN}; port 0 picks a free port)`,
    },
    rendezvous: {
      type: "string",
      multiple: true,
      value: "URL",
      description: "peer to dial and keep a session with, ws:// or wss://",
    },
    join: {
      type: "string",
      value: "TOKEN",
      description:
        "join token (hjt1...) from `huskies token create` on the hub; pins the hub's key",
    },
    open: { type: "boolean", description: "open mesh: any node may connect and write (warns)" },
    "allow-in-band-handshake": {
      type: "boolean",
      description: "also admit peers that do not authenticate before the upgrade " +
        "(at most 2 at once; each can make the node hold ~190 MiB; --open implies it)",
    },
    "public-status": {
      type: "boolean",
      description: "serve the status page and /api/* to non-loopback clients too",
    },
    "max-unauthenticated": {
      type: "string",
      value: "N",
      description: "connections still in the handshake, at most, at once (default 64)",
    },
    "attempts-per-minute": {
      type: "string",
      value: "N",
      description: "handshake attempts per source address per minute (default 30); raise it " +
        "for many nodes behind one address (NAT, one host)",
    },
    "public-metrics": {
      type: "boolean",
      description: "show node and peer ids in /metrics and /healthz to non-loopback clients",
    },
    "public-host": {
      type: "string",
      multiple: true,
      value: "NAME",
      description: "a DNS name this node is reached by, accepted in Host headers " +
        "(loopback names and IP addresses always are)",
    },
    "startup-grace": {
      type: "string",
      value: "S",
      description: "after a restart, refuse writes (retryably) until a peer has caught this " +
        "node up, or S seconds passed with none (default 10; 0 disables; a new key needs none)",
    },
    "accept-lost-history": {
      type: "boolean",
      description: "RISKY: after a deliberate restore of an older ops.db, sign again from what " +
        "it holds; if a peer holds the lost operations, the next write forks this node's key " +
        "and peers quarantine its writes. Without it, writes wait until peers send them back",
    },
    "log-json": { type: "boolean", description: "log JSON lines instead of readable text" },
    "log-level": {
      type: "string",
      value: "LEVEL",
      description: "lowest level logged: debug, info, warn or error (default info)",
    },
    ...DATA_DIR_OPTION,
  },
  examples: [
    "huskies serve",
    "huskies serve --listen 0.0.0.0:3001 --data-dir /var/lib/huskies",
    "huskies serve --rendezvous ws://hub.example:3001/crdt-sync --join hjt1.<id>.<secret>.<hub>",
  ],
  run: runServe,
};
