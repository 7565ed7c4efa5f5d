/**
 * The `huskies` command line: parses the command and dispatches to the
 * modules in `cli/`. Run `huskies --help` for the commands, or see
 * `cli/USAGE.md`.
 *
 * @example
 * ```sh
 * deno run --allow-read --allow-write --allow-net --allow-env main.ts serve
 * ```
 * @module
 */
import denoJson from "./deno.json" with { type: "json" };
import { type CliContext, type Command, runCli } from "./cli/args.ts";
import {
  eventsCommand,
  itemDeleteCommand,
  itemGetCommand,
  itemListCommand,
  itemMoveCommand,
  itemPutCommand,
} from "./cli/items.ts";
import {
  keysCreateCommand,
  keysExportPrivateCommand,
  keysExportPublicCommand,
  keysImportCommand,
  keysShowCommand,
} from "./cli/keys.ts";
import {
  membersGrantCommand,
  membersImportTrustCommand,
  membersInitCommand,
  membersListCommand,
  membersRevokeCommand,
} from "./cli/members.ts";
import { serveCommand } from "./cli/serve.ts";
import { statusCommand } from "./cli/status.ts";
import { stopCommand } from "./cli/stop.ts";
import { tokenCreateCommand, tokenListCommand, tokenRevokeCommand } from "./cli/tokens.ts";
import { trustAddCommand, trustListCommand, trustRemoveCommand } from "./cli/trust.ts";
import { verifyCommand } from "./cli/verify.ts";

export type { CliContext, Command, OptionSpec, ParsedArgs, PositionalSpec } from "./cli/args.ts";

/** The CLI version, from deno.json. */
export const VERSION: string = denoJson.version;

/** Every command of the CLI, in the order `huskies --help` lists them. */
export const COMMANDS: readonly Command[] = [
  serveCommand,
  stopCommand,
  statusCommand,
  itemPutCommand,
  itemGetCommand,
  itemListCommand,
  itemMoveCommand,
  itemDeleteCommand,
  eventsCommand,
  verifyCommand,
  keysCreateCommand,
  keysShowCommand,
  keysExportPublicCommand,
  keysExportPrivateCommand,
  keysImportCommand,
  trustAddCommand,
  trustRemoveCommand,
  trustListCommand,
  tokenCreateCommand,
  tokenListCommand,
  tokenRevokeCommand,
  membersInitCommand,
  membersListCommand,
  membersGrantCommand,
  membersRevokeCommand,
  membersImportTrustCommand,
];

/** Runs the CLI with `args` (without the program name) and resolves to the exit code. */
export function main(args: readonly string[], ctx?: Partial<CliContext>): Promise<number> {
  return runCli(COMMANDS, args, {
    out: (line) => console.log(line),
    err: (line) => console.error(line),
    version: VERSION,
    ...ctx,
  });
}

if (import.meta.main) Deno.exit(await main(Deno.args));
