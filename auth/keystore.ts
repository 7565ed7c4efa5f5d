/**
 * The node identity on disk: `<dataDir>/node.key`, a JSON file
 * `{"version":1,"seed":"<64 hex>"}` plus a newline, mode 0600.
 *
 * A key file that group or others may read or write is refused (never
 * silently fixed), a corrupt one is refused and left untouched, and the seed
 * never appears in an error message or log line.
 *
 * @example Load the identity, creating it on first run
 * ```ts
 * import { loadOrCreateIdentity } from "./keystore.ts";
 * const dir = await Deno.makeTempDir();
 * const { identity, created } = await loadOrCreateIdentity(dir);
 * console.log(identity.nodeId, created); // "<64 hex>" true
 * await Deno.remove(dir, { recursive: true });
 * ```
 * @module
 */
import { KEY_FILE_NAME } from "../data_dir.ts";
import { Identity } from "../crdt/identity.ts";
import { toHex } from "../protocol/bytes.ts";
import {
  ensureDir,
  FileAccessError,
  joinPath,
  readVersionedSync,
  writePrivateFileSync,
} from "./files.ts";

/** Version number written in (and required of) the key file. */
export const KEY_FILE_VERSION = 1;

/** Path of the key file for `dataDir`. */
export function keyFilePath(dataDir: string): string {
  return joinPath(dataDir, KEY_FILE_NAME);
}

/** Base class of the key file errors; `path` names the file concerned. *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { HuskiesNode, KeyFileError } from "@huskies/sync";
 *
 * const dir = Deno.makeTempDirSync();
 * Deno.writeTextFileSync(`${dir}/node.key`, "not a key\n", { mode: 0o600 });
 * await assert.rejects(HuskiesNode.open({ dataDir: dir }), (error) => {
 *   assert.ok(error instanceof KeyFileError);
 *   assert.equal(error.path, `${dir}/node.key`);
 *   return true;
 * });
 * Deno.removeSync(dir, { recursive: true });
 * ```
 */
export class KeyFileError extends Error {
  /** The key file. */
  readonly path: string;
  /** Creates the error for `path`. */
  constructor(path: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.path = path;
  }
}

/** The key file may be read or written by group or others. */
export class KeyFilePermissionError extends KeyFileError {}
/** The key file exists but is not a valid key file. It is never overwritten. */
export class KeyFileCorruptError extends KeyFileError {}
/** A key file already exists and `force` was not given. */
export class KeyFileExistsError extends KeyFileError {}
/** No key file exists. */
export class KeyFileMissingError extends KeyFileError {}

/** Options for {@link createIdentityFile}. */
export interface CreateIdentityOptions {
  /** Replace an existing key file. @default {false} */
  force?: boolean;
  /** Use this 32-byte seed instead of a fresh random one. */
  seed?: Uint8Array;
}

/** Options for {@link importIdentity}. */
export interface ImportIdentityOptions {
  /** Replace an existing key file. @default {false} */
  force?: boolean;
}

/** Encodes a seed as key file text (pure). */
export function encodeKeyFile(seed: Uint8Array): string {
  if (!(seed instanceof Uint8Array) || seed.length !== 32) {
    throw new TypeError("Cannot encode key file: seed must be 32 bytes");
  }
  return JSON.stringify({ version: KEY_FILE_VERSION, seed: toHex(seed) }) + "\n";
}

const SEED_HEX = /^[0-9a-fA-F]{64}$/;

/**
 * Decodes key file text (pure). Returns the seed, or a problem description
 * that never contains the seed.
 */
export function decodeKeyFile(text: string): { seed: Uint8Array } | { problem: string } {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { problem: "it is not valid JSON" };
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return { problem: "it is not a JSON object" };
  }
  const record = value as Record<string, unknown>;
  if (record.version !== KEY_FILE_VERSION) {
    return { problem: `unsupported version (expected ${KEY_FILE_VERSION})` };
  }
  if (typeof record.seed !== "string" || !SEED_HEX.test(record.seed)) {
    return { problem: "seed must be 64 hex characters" };
  }
  return { seed: Uint8Array.fromHex(record.seed) };
}

function readKeyFile(path: string): Identity | null {
  let loaded: ReturnType<typeof readVersionedSync>;
  try {
    loaded = readVersionedSync(path, { noFollow: true, forbiddenBits: 0o077 });
  } catch (error) {
    const message = (error as Error).message;
    if (error instanceof FileAccessError && error.problem === "not-file") {
      throw new KeyFileCorruptError(path, `Cannot read key file ${path}: ${message}`);
    }
    if (error instanceof FileAccessError) {
      throw new KeyFilePermissionError(path, `Cannot use key file ${path}: ${message}`);
    }
    if (error instanceof TypeError) {
      throw new KeyFileCorruptError(path, `Cannot read key file ${path}: it is not UTF-8 text`);
    }
    throw new Error(`Cannot read key file ${path}: ${message}`, { cause: error });
  }
  if (loaded === null) return null;
  const decoded = decodeKeyFile(loaded.text);
  if ("problem" in decoded) {
    throw new KeyFileCorruptError(
      path,
      `Cannot read key file ${path}: ${decoded.problem}. The file was left untouched; ` +
        `restore it from a backup, or move it away to create a new identity`,
    );
  }
  try {
    return Identity.fromSeed(decoded.seed);
  } finally {
    decoded.seed.fill(0);
  }
}

function writeKeyFile(path: string, seed: Uint8Array, force: boolean): void {
  try {
    writePrivateFileSync(path, encodeKeyFile(seed), { exclusive: !force });
  } catch (error) {
    if (error instanceof Deno.errors.AlreadyExists) {
      throw new KeyFileExistsError(
        path,
        `Cannot create key file ${path}: it already exists (use force to replace it)`,
      );
    }
    throw new Error(`Cannot write key file ${path}: ${(error as Error).message}`, {
      cause: error,
    });
  }
}

/**
 * Reads the identity in `<dataDir>/node.key`, creating a new random one (and
 * the data directory, mode 0700) on first use. `created` tells which.
 * @throws {KeyFilePermissionError} the file is accessible by group or others.
 * @throws {KeyFileCorruptError} the file is not a valid key file (left intact).
 */
export async function loadOrCreateIdentity(
  dataDir: string,
): Promise<{ identity: Identity; created: boolean }> {
  const path = keyFilePath(dataDir);
  const existing = readKeyFile(path);
  if (existing) return { identity: existing, created: false };
  try {
    return { identity: await createIdentityFile(dataDir), created: true };
  } catch (error) {
    // Another process created it between our read and our write: use theirs.
    if (!(error instanceof KeyFileExistsError)) throw error;
    return { identity: await readIdentity(dataDir), created: false };
  }
}

/**
 * Creates `<dataDir>/node.key` with a new random seed (or `options.seed`) and
 * returns the identity. Never replaces an existing file unless `force`.
 * @throws {KeyFileExistsError} a key file exists and `force` is not set.
 */
export async function createIdentityFile(
  dataDir: string,
  options: CreateIdentityOptions = {},
): Promise<Identity> {
  const { force = false } = options;
  if (options.seed !== undefined) {
    if (!(options.seed instanceof Uint8Array) || options.seed.length !== 32) {
      throw new TypeError("Cannot create identity file: options.seed must be 32 bytes");
    }
  }
  await ensureDir(dataDir);
  const identity = options.seed ? Identity.fromSeed(options.seed) : Identity.generate();
  const seed = identity.exportSeed();
  try {
    writeKeyFile(keyFilePath(dataDir), seed, force);
  } finally {
    seed.fill(0);
  }
  return identity;
}

/**
 * Reads the identity in `<dataDir>/node.key`.
 * @throws {KeyFileMissingError} there is no key file.
 * @throws {KeyFilePermissionError} the file is accessible by group or others.
 * @throws {KeyFileCorruptError} the file is not a valid key file.
 */
export function readIdentity(dataDir: string): Promise<Identity> {
  const path = keyFilePath(dataDir);
  try {
    const identity = readKeyFile(path);
    if (identity === null) {
      throw new KeyFileMissingError(path, `Cannot read key file ${path}: it does not exist`);
    }
    return Promise.resolve(identity);
  } catch (error) {
    return Promise.reject(error);
  }
}

/**
 * Writes the seed given as 64 hex characters to `<dataDir>/node.key` and
 * returns its identity. Never replaces an existing file unless `force`.
 * @throws {TypeError} `seedHex` is not 64 hex characters (the value is not echoed).
 * @throws {KeyFileExistsError} a key file exists and `force` is not set.
 */
export async function importIdentity(
  dataDir: string,
  seedHex: string,
  options: ImportIdentityOptions = {},
): Promise<Identity> {
  const trimmed = typeof seedHex === "string" ? seedHex.trim() : "";
  if (!SEED_HEX.test(trimmed)) {
    throw new TypeError("Cannot import identity: seed must be 64 hex characters (32 bytes)");
  }
  const seed = Uint8Array.fromHex(trimmed);
  try {
    return await createIdentityFile(dataDir, { force: options.force, seed });
  } finally {
    seed.fill(0);
  }
}
