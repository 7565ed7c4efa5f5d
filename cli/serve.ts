/**
 * `huskies serve`: opens the node of a data folder, listens for peers and
 * HTTP clients, dials rendezvous peers, and stops cleanly on SIGINT/SIGTERM.
 * {@link resolveServeSettings} (flags over `project.toml` over defaults) is
 * pure; {@link runServe} does the I/O.
 * @module
 */
import { parseJoinToken } from "../auth/mod.ts";
import { ReplayError } from "../crdt/replica.ts";
import { StoreCorruptError, StoreLockedError } from "../crdt/sqlite_store.ts";
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
  checkRendezvousUrl,
  DEFAULT_LISTEN,
  hostPort,
  type ListenAddress,
  locate,
  parseListen,
  type ProjectConfig,
} from "./config.ts";
import { classifyError, CliError, ExitCode, UsageError } from "./errors.ts";
import { HttpApp, isLoopback, redactUrl } from "./http.ts";
import { newAdminToken, removeRuntimeFiles, type ServeInfo, writeRuntimeFiles } from "./runtime.ts";
import { shellQuote } from "./format.ts";

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
    logJson: flagOption(args, "log-json"),
    logLevel: logLevel as LogLevel,
  };
}

/** Explains why the node of `dataDir` could not be opened (pure). */
export function openFailure(error: unknown, dataDir: string): CliError {
  if (error instanceof StoreLockedError) {
    return new CliError(
      ExitCode.LOCKED,
      `Cannot start the node: data folder ${dataDir} is locked by another process ` +
        "(is `huskies serve` already running for it?)",
      {
        cause: error,
        hint: "Stop the other process, or give this node its own folder with --data-dir.",
      },
    );
  }
  const message = (error as Error)?.message ?? String(error);
  if (error instanceof StoreCorruptError || error instanceof ReplayError) {
    return new CliError(ExitCode.DATA_INVALID, message, {
      cause: error,
      hint: `Run \`huskies verify --data-dir ${shellQuote(dataDir)}\` for details.`,
    });
  }
  const classified = classifyError(error);
  if (classified !== error && classified.exitCode === ExitCode.FAILURE) {
    return new CliError(ExitCode.FAILURE, `Cannot open data folder ${dataDir}: ${message}`, {
      cause: error,
    });
  }
  return classified;
}

/** Explains why listening on `listen` failed (pure). */
export function listenFailure(error: unknown, listen: ListenAddress): CliError {
  const where = hostPort(listen.hostname, listen.port);
  const hint = "Pick another address with --listen HOST:PORT (127.0.0.1:0 picks a free port).";
  if (error instanceof Deno.errors.AddrInUse) {
    return new CliError(
      ExitCode.LISTEN,
      `Cannot listen on ${where}: the address is already in use`,
      {
        cause: error,
        hint: `Stop the process using it, or ${hint[0].toLowerCase()}${hint.slice(1)}`,
      },
    );
  }
  if (error instanceof Deno.errors.AddrNotAvailable) {
    return new CliError(
      ExitCode.LISTEN,
      `Cannot listen on ${where}: no such address on this host`,
      {
        cause: error,
        hint,
      },
    );
  }
  if (error instanceof Deno.errors.PermissionDenied) {
    return new CliError(
      ExitCode.LISTEN,
      `Cannot listen on ${where}: permission denied (ports below 1024 need privileges)`,
      { cause: error, hint },
    );
  }
  return new CliError(ExitCode.LISTEN, `Cannot listen on ${where}: ${(error as Error).message}`, {
    cause: error,
    hint,
  });
}

function isWildcard(hostname: string): boolean {
  return hostname === "0.0.0.0" || hostname === "::" || hostname === "[::]";
}

/** The address other local processes use to reach a listener bound to `hostname` (pure). */
export function localAddress(hostname: string): string {
  if (hostname === "0.0.0.0") return "127.0.0.1";
  if (hostname === "::" || hostname === "[::]") return "::1";
  return hostname;
}

/** The lines printed on start (pure). */
export function startBanner(options: {
  version: string;
  nodeId: string;
  dataDir: string;
  bound: ListenAddress;
  syncUrl: string;
  statusUrl: string;
  adminUrl: string;
  settings: ServeSettings;
}): string[] {
  const { settings, bound } = options;
  const loopbackOnly = isLoopback(bound.hostname) || bound.hostname === "localhost";
  const publicUrl = isWildcard(bound.hostname)
    ? `ws://<this host>:${bound.port}${SYNC_PATH}`
    : options.syncUrl;
  const dataDirArg = `--data-dir ${shellQuote(options.dataDir)}`;
  const lines = [
    `huskies ${options.version}: node running`,
    `  node id      ${options.nodeId}`,
    `  sync         ${options.syncUrl}`,
    `  status page  ${options.statusUrl}`,
    `  metrics      ${new URL("metrics", options.statusUrl)}`,
  ];
  if (isWildcard(bound.hostname)) {
    lines.push(`  listening    ${hostPort(bound.hostname, bound.port)} (every interface)`);
  }
  if (!options.adminUrl.startsWith(options.statusUrl)) {
    lines.push(`  admin API    ${options.adminUrl} (loopback only)`);
  }
  lines.push(
    `  data folder  ${options.dataDir}`,
    `  mesh         ${
      settings.open
        ? "OPEN: any node may connect and write"
        : "closed: only trusted keys and join tokens"
    }`,
  );
  for (const url of settings.rendezvous) {
    lines.push(
      `  rendezvous   ${redactUrl(url)}${
        settings.join ? ` (joining with token ${settings.join.id})` : ""
      }`,
    );
  }
  lines.push(
    "",
    "To let another node join this one:",
    `  1. here:            huskies token create ${dataDirArg}`,
    `  2. on the other:    huskies serve --rendezvous ${publicUrl} --join <token>`,
  );
  if (loopbackOnly) {
    lines.push(
      `  (this node listens on loopback only; use --listen 0.0.0.0:${bound.port} to accept other hosts)`,
    );
  }
  lines.push("Stop with Ctrl+C.");
  return lines;
}

function waitForSignal(ctx: CliContext): Promise<Deno.Signal> {
  const { promise, resolve } = Promise.withResolvers<Deno.Signal>();
  let count = 0;
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    try {
      Deno.addSignalListener(signal, () => {
        count++;
        if (count === 1) return resolve(signal);
        ctx.err("error: second signal received; exiting without a clean stop");
        Deno.exit(ExitCode.INTERRUPTED);
      });
    } catch {
      // SIGTERM is not available on every platform.
    }
  }
  return promise;
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

/** Runs `huskies serve` until a signal stops it; resolves to the exit code. */
export async function runServe(args: ParsedArgs, ctx: CliContext): Promise<number> {
  const location = await locate(args);
  const settings = resolveServeSettings(args, location.config);
  const { dataDir } = location;
  // Listen for signals before anything starts, so that an early Ctrl+C still stops cleanly.
  const stopSignal = waitForSignal(ctx);
  const logger: Logger = consoleLogger({ json: settings.logJson, level: settings.logLevel });
  if (location.configFile) logger.log("info", "configuration read", { file: location.configFile });

  let node: HuskiesNode;
  try {
    node = await HuskiesNode.open({
      dataDir,
      trustedKeys: settings.trustedKeys,
      open: settings.open,
      inBandHandshake: settings.allowInBandHandshake ? "allow" : "refuse",
      logger,
    });
  } catch (error) {
    throw openFailure(error, dataDir);
  }
  if (settings.open) {
    logger.log(
      "warn",
      "open mesh: any node that can reach this listener may connect and write operations; " +
        "prefer trusted keys (huskies trust add) or join tokens (huskies token create)",
    );
  }
  const startedAt = Date.now();
  const adminToken = newAdminToken();
  const urls = { sync: "", status: "" };
  const app = new HttpApp({
    node,
    version: ctx.version,
    adminToken,
    urls,
    publicStatus: settings.publicStatus,
    open: settings.open,
    logger,
    startedAt,
  });
  const handler = (request: Request, info: Deno.ServeHandlerInfo<Deno.NetAddr>) =>
    app.handle(request, info);
  const servers: Deno.HttpServer<Deno.NetAddr>[] = [];
  const stopAll = async () => {
    app.close();
    await node.close();
    await Promise.all(servers.map((server) => server.shutdown()));
  };
  try {
    servers.push(listen(settings.listen, handler));
    const bound = { hostname: servers[0].addr.hostname, port: servers[0].addr.port };
    const local = hostPort(localAddress(bound.hostname), bound.port);
    urls.sync = `ws://${local}${SYNC_PATH}`;
    urls.status = `http://${local}/`;
    let adminUrl = urls.status;
    if (!isLoopback(bound.hostname) && !isWildcard(bound.hostname)) {
      // Admin requests must come from loopback: give them a loopback listener of their own.
      servers.push(listen({ hostname: "127.0.0.1", port: 0 }, handler));
      adminUrl = `http://127.0.0.1:${servers[1].addr.port}/`;
    }
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
    throw error;
  }

  const signal = await stopSignal;
  logger.log("info", "stopping", { signal });
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

Settings come from flags, then <data folder>/project.toml (keys: listen,
rendezvous, trusted_keys, data_dir, open, public_status), then defaults.
SIGINT or SIGTERM stops the node cleanly (exit 0); a second signal forces exit 130.`,
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
        "(at most 2 at once; each can make the node hold ~190 MiB)",
    },
    "public-status": {
      type: "boolean",
      description: "serve the status page and /api/* to non-loopback clients too",
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
