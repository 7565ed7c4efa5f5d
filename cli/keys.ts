/**
 * `huskies keys create|show|export-public|export-private|import`: the node
 * identity in `<data dir>/node.key` (mode 0600). The seed is printed only by
 * `export-private`, with a warning on standard error.
 * @module
 */
import { decodeKeyFile } from "../auth/keystore.ts";
import {
  createIdentityFile,
  importIdentity,
  KeyFileExistsError,
  keyFilePath,
  readIdentity,
} from "../auth/mod.ts";
import { toHex } from "../protocol/bytes.ts";
import {
  type CliContext,
  type Command,
  DATA_DIR_OPTION,
  flagOption,
  JSON_OPTION,
  type ParsedArgs,
  stringOption,
} from "./args.ts";
import { locate } from "./config.ts";
import { asUsageError, CliError, ExitCode, UsageError } from "./errors.ts";
import { shellQuote } from "./format.ts";
import { readServeInfo, writePrivateFile } from "./runtime.ts";
import { toJsonText } from "./json.ts";

function existsHint(path: string): string {
  return `${path} holds this node's identity; replacing it gives the node a new id. ` +
    "Export it first (`huskies keys export-private --file backup.key`) and add --force to replace it.";
}

/**
 * Reads a seed given to `keys import` (pure): 64 hex characters, or the text
 * of a key file (`{"version":1,"seed":"..."}`). Returns the hex seed.
 * @throws {UsageError} the text is neither (the text is never echoed).
 */
export function seedFromText(text: string): string {
  const trimmed = text.trim();
  if (/^[0-9a-fA-F]{64}$/.test(trimmed)) return trimmed.toLowerCase();
  if (trimmed.startsWith("{")) {
    const decoded = decodeKeyFile(trimmed);
    if ("seed" in decoded) {
      try {
        return toHex(decoded.seed);
      } finally {
        decoded.seed.fill(0);
      }
    }
    throw new UsageError(
      "keys import",
      `Cannot import key: the key file is invalid: ${decoded.problem}`,
    );
  }
  throw new UsageError(
    "keys import",
    "Cannot import key: expected a seed of 64 hex characters or a node.key file",
  );
}

async function readSeedFile(file: string): Promise<string> {
  try {
    if (file === "-") {
      return await new Response(Deno.stdin.readable).text();
    }
    return await Deno.readTextFile(file);
  } catch (error) {
    throw new CliError(
      ExitCode.FAILURE,
      `Cannot import key: cannot read ${file}: ${(error as Error).message}`,
    );
  }
}

async function warnIfRunning(ctx: CliContext, dataDir: string): Promise<void> {
  if (await readServeInfo(dataDir)) {
    ctx.err(
      "warning: a node is running for this data folder; it keeps its old identity until restarted",
    );
  }
}

/** `huskies keys create`. */
export const keysCreateCommand: Command = {
  path: ["keys", "create"],
  summary: "create the node identity (refuses to replace one without --force)",
  description:
    "Writes a new random Ed25519 seed to <data dir>/node.key (mode 0600) and prints the node id.",
  options: {
    force: {
      type: "boolean",
      description: "replace an existing key file (the old identity is lost)",
    },
    ...JSON_OPTION,
    ...DATA_DIR_OPTION,
  },
  async run(args, ctx) {
    const { dataDir } = await locate(args);
    const force = flagOption(args, "force");
    let identity;
    try {
      identity = await createIdentityFile(dataDir, { force });
    } catch (error) {
      if (error instanceof KeyFileExistsError) {
        throw new CliError(
          ExitCode.EXISTS,
          `Cannot create key: ${keyFilePath(dataDir)} already exists`,
          { cause: error, hint: existsHint(keyFilePath(dataDir)) },
        );
      }
      throw error;
    }
    if (force) await warnIfRunning(ctx, dataDir);
    if (flagOption(args, "json")) {
      ctx.out(toJsonText({ nodeId: identity.nodeId, keyFile: keyFilePath(dataDir) }));
    } else {
      ctx.out(`Created ${keyFilePath(dataDir)}`);
      ctx.out(`node id ${identity.nodeId}`);
    }
    return ExitCode.OK;
  },
};

/** `huskies keys show`. */
export const keysShowCommand: Command = {
  path: ["keys", "show"],
  summary: "show the node id and where the key file is",
  description: "Exit code 3 when the data folder has no key file.",
  options: { ...JSON_OPTION, ...DATA_DIR_OPTION },
  async run(args, ctx) {
    const { dataDir } = await locate(args);
    const identity = await readIdentity(dataDir);
    if (flagOption(args, "json")) {
      ctx.out(toJsonText({ nodeId: identity.nodeId, keyFile: keyFilePath(dataDir) }));
    } else {
      ctx.out(`node id   ${identity.nodeId}`);
      ctx.out(`key file  ${keyFilePath(dataDir)}`);
    }
    return ExitCode.OK;
  },
};

/** `huskies keys export-public`. */
export const keysExportPublicCommand: Command = {
  path: ["keys", "export-public"],
  summary: "print the public key (the node id) alone, for `huskies trust add` elsewhere",
  options: DATA_DIR_OPTION,
  examples: ["huskies trust add $(huskies keys export-public --data-dir a) --data-dir b"],
  async run(args, ctx) {
    const { dataDir } = await locate(args);
    ctx.out((await readIdentity(dataDir)).nodeId);
    return ExitCode.OK;
  },
};

/** `huskies keys export-private`. */
export const keysExportPrivateCommand: Command = {
  path: ["keys", "export-private"],
  summary: "print the private seed (to move the node to new hardware)",
  description: `
Prints the 32-byte seed as 64 hex characters on standard output, or writes it
to --file (mode 0600). Anyone holding the seed can sign as this node: keep it
offline and delete copies after \`huskies keys import\` on the new machine.

Prefer moving the whole data folder. A node restored from the seed alone must
catch up with its peers before it changes anything, or it forks its own chain.`,
  options: {
    file: {
      type: "string",
      value: "F",
      description: "write the seed to this file (mode 0600) instead",
    },
    force: { type: "boolean", description: "replace --file if it exists" },
    ...DATA_DIR_OPTION,
  },
  async run(args: ParsedArgs, ctx) {
    const { dataDir } = await locate(args);
    const identity = await readIdentity(dataDir);
    const seed = identity.exportSeed();
    const hex = toHex(seed);
    seed.fill(0);
    const file = stringOption(args, "file");
    ctx.err(
      "warning: this is the node's private key; anyone who has it can sign as " +
        `${identity.nodeId.slice(0, 12)}…. Do not paste it into chats, tickets or logs.`,
    );
    if (file === undefined) {
      ctx.out(hex);
      return ExitCode.OK;
    }
    if (!flagOption(args, "force")) {
      try {
        await Deno.lstat(file);
        throw new CliError(ExitCode.EXISTS, `Cannot export key: ${file} already exists`, {
          hint: "Choose another file, or add --force to replace it.",
        });
      } catch (error) {
        if (!(error instanceof Deno.errors.NotFound)) throw error;
      }
    }
    await writePrivateFile(file, hex + "\n");
    ctx.err(
      `Wrote the seed to ${file} (mode 0600). Import it with \`huskies keys import --file ${
        shellQuote(file)
      }\`.`,
    );
    return ExitCode.OK;
  },
};

/** `huskies keys import`. */
export const keysImportCommand: Command = {
  path: ["keys", "import"],
  summary: "install an exported seed as this data folder's identity",
  description: `
Takes the seed from keys export-private, either as an argument or (better: it
stays out of shell history and process lists) from --file F (- reads standard
input). Refuses to replace an existing key file without --force.`,
  positionals: [{
    name: "seed-hex",
    description: "64 hex characters (prefer --file)",
    optional: true,
  }],
  options: {
    file: {
      type: "string",
      value: "F",
      description: "read the seed (or a node.key file) from F; - for stdin",
    },
    force: { type: "boolean", description: "replace an existing key file" },
    ...JSON_OPTION,
    ...DATA_DIR_OPTION,
  },
  async run(args, ctx) {
    const file = stringOption(args, "file");
    const given = args.positionals[0];
    if ((file === undefined) === (given === undefined)) {
      throw new UsageError("keys import", "Cannot import key: give either <seed-hex> or --file F");
    }
    const { dataDir } = await locate(args);
    if (given !== undefined) {
      ctx.err(
        "warning: a seed on the command line can end up in shell history; prefer --file F (or --file -)",
      );
    }
    const seedHex = seedFromText(file !== undefined ? await readSeedFile(file) : given);
    let identity;
    try {
      identity = await importIdentity(dataDir, seedHex, { force: flagOption(args, "force") });
    } catch (error) {
      if (error instanceof KeyFileExistsError) {
        throw new CliError(
          ExitCode.EXISTS,
          `Cannot import key: ${keyFilePath(dataDir)} already exists`,
          {
            cause: error,
            hint: existsHint(keyFilePath(dataDir)),
          },
        );
      }
      throw asUsageError("keys import", error);
    }
    if (flagOption(args, "force")) await warnIfRunning(ctx, dataDir);
    if (flagOption(args, "json")) {
      ctx.out(toJsonText({ nodeId: identity.nodeId, keyFile: keyFilePath(dataDir) }));
    } else {
      ctx.out(`Imported the identity into ${keyFilePath(dataDir)}`);
      ctx.out(`node id ${identity.nodeId}`);
    }
    return ExitCode.OK;
  },
};
