/**
 * Why `huskies serve` could not start, as CLI errors with exit codes and
 * hints (pure): the node could not open its data folder, or could not listen.
 * @module
 */
import { ReplayError } from "../crdt/replica.ts";
import { StoreCorruptError, StoreLockedError } from "../crdt/sqlite_store.ts";
import { hostPort, type ListenAddress } from "./config.ts";
import { classifyError, CliError, ExitCode } from "./errors.ts";
import { shellQuote } from "./format.ts";

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
  if (
    classified !== error && classified.exitCode === ExitCode.FAILURE &&
    !classified.message.startsWith("Cannot ")
  ) {
    return new CliError(
      ExitCode.FAILURE,
      `Cannot open data folder ${dataDir}: ${classified.message}`,
      { cause: error },
    );
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
