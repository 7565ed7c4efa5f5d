/**
 * Small file helpers shared by the key, trust and token stores: private data
 * directories, atomic writes of owner-only files, advisory locks and change
 * detection by file identity. Internal to `auth/`; only {@link DataFileError}
 * is re-exported.
 * @module
 */
import { randomBytes } from "node:crypto";

/** Mode of every file the auth stores write: owner read/write only. */
export const PRIVATE_FILE_MODE = 0o600;
/** Mode of a data directory the auth stores create. */
export const PRIVATE_DIR_MODE = 0o700;

const IS_WINDOWS = Deno.build.os === "windows";

/** Joins a directory and a file name with `/` (accepted on every platform). */
export function joinPath(dir: string, name: string): string {
  return dir.endsWith("/") || dir.endsWith("\\") ? dir + name : `${dir}/${name}`;
}

function parentDir(path: string): string {
  const cut = Math.max(path.lastIndexOf("/"), path.lastIndexOf("\\"));
  return cut <= 0 ? (cut === 0 ? "/" : ".") : path.slice(0, cut);
}

/** Creates `dir` (and parents) with mode 0700 when it does not exist. */
export function ensureDirSync(dir: string): void {
  Deno.mkdirSync(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
}

/** Async form of {@link ensureDirSync}. */
export async function ensureDir(dir: string): Promise<void> {
  await Deno.mkdir(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
}

/** Permission bits of `info`, or `null` where the platform has none (Windows). */
export function permissionBits(info: Deno.FileInfo): number | null {
  if (IS_WINDOWS || info.mode === null) return null;
  return info.mode & 0o777;
}

/** Formats permission bits as a four-digit octal string, e.g. `0644`. */
export function formatMode(bits: number): string {
  return "0" + bits.toString(8).padStart(3, "0");
}

function tempPathFor(path: string): string {
  return `${path}.tmp-${randomBytes(6).toString("hex")}`;
}

function syncDirSync(dir: string): void {
  try {
    const handle = Deno.openSync(dir, { read: true });
    try {
      handle.syncSync();
    } finally {
      handle.close();
    }
  } catch {
    // Directory fsync is best effort: not every platform or filesystem allows it.
  }
}

function writeTempSync(path: string, text: string): string {
  const temp = tempPathFor(path);
  const file = Deno.openSync(temp, { write: true, createNew: true, mode: PRIVATE_FILE_MODE });
  try {
    if (!IS_WINDOWS) Deno.chmodSync(temp, PRIVATE_FILE_MODE);
    const bytes = new TextEncoder().encode(text);
    let written = 0;
    while (written < bytes.length) written += file.writeSync(bytes.subarray(written));
    file.syncSync();
  } catch (error) {
    file.close();
    removeQuietlySync(temp);
    throw error;
  }
  file.close();
  return temp;
}

function removeQuietlySync(path: string): void {
  try {
    Deno.removeSync(path);
  } catch {
    // Already gone.
  }
}

/**
 * Writes `text` to `path` atomically with mode 0600: a temp file in the same
 * directory is written, flushed and renamed over `path`. With
 * `exclusive: true` the file is linked into place instead, which fails with
 * `Deno.errors.AlreadyExists` when `path` exists (no overwrite, no race).
 */
export function writePrivateFileSync(
  path: string,
  text: string,
  options: { exclusive?: boolean } = {},
): void {
  const temp = writeTempSync(path, text);
  try {
    if (options.exclusive) {
      linkExclusiveSync(temp, path);
      removeQuietlySync(temp);
    } else {
      Deno.renameSync(temp, path);
    }
  } catch (error) {
    removeQuietlySync(temp);
    throw error;
  }
  syncDirSync(parentDir(path));
}

function linkExclusiveSync(temp: string, path: string): void {
  try {
    Deno.linkSync(temp, path);
  } catch (error) {
    if (error instanceof Deno.errors.AlreadyExists) throw error;
    // Filesystems without hard links: fall back to check-then-rename.
    let exists = true;
    try {
      Deno.lstatSync(path);
    } catch (statError) {
      if (!(statError instanceof Deno.errors.NotFound)) throw statError;
      exists = false;
    }
    if (exists) throw new Deno.errors.AlreadyExists(`${path} already exists`);
    Deno.renameSync(temp, path);
  }
}

/**
 * Runs `fn` while holding an exclusive advisory lock on `<path>.lock`, so
 * read-modify-write cycles on `path` from several processes do not lose
 * updates. The lock file is created with mode 0600 and left in place.
 */
export function withFileLockSync<T>(path: string, fn: () => T): T {
  const lock = Deno.openSync(`${path}.lock`, {
    read: true,
    write: true,
    create: true,
    mode: PRIVATE_FILE_MODE,
  });
  try {
    lock.lockSync(true);
    try {
      return fn();
    } finally {
      lock.unlockSync();
    }
  } finally {
    lock.close();
  }
}

/** What identifies one version of a file: inode, size and modification time. */
export interface FileVersion {
  /** Inode number (null where unknown). */
  ino: number | null;
  /** Size in bytes. */
  size: number;
  /** Modification time in ms (null where unknown). */
  mtime: number | null;
}

/** Version of the file at `path`, or `null` when it does not exist. */
export function fileVersionSync(path: string): FileVersion | null {
  try {
    const info = Deno.statSync(path);
    return { ino: info.ino, size: info.size, mtime: info.mtime?.getTime() ?? null };
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
}

/** True when two versions (either possibly missing) describe the same file state. */
export function sameVersion(a: FileVersion | null, b: FileVersion | null): boolean {
  if (a === null || b === null) return a === b;
  return a.ino === b.ino && a.size === b.size && a.mtime === b.mtime;
}

let cachedUid: number | null | undefined;

/**
 * The user id this process runs as, or `null` where unknown (Windows, or
 * neither `--allow-sys=uid` nor a readable `/proc/self`).
 */
export function processUid(): number | null {
  if (cachedUid !== undefined) return cachedUid;
  cachedUid = null;
  if (IS_WINDOWS) return cachedUid;
  try {
    cachedUid = Deno.uid();
  } catch {
    try {
      // Linux: /proc/self belongs to the effective user of the process.
      cachedUid = Deno.statSync("/proc/self").uid;
    } catch {
      // Unknown: the owner check is skipped.
    }
  }
  return cachedUid;
}

/** Checks who owns a data file (pure): `undefined` when the owner is this process's user or unknown. */
export function ownerProblem(fileUid: number | null, uid: number | null): string | undefined {
  if (fileUid === null || uid === null || fileUid === uid) return undefined;
  return `it is owned by another user (uid ${fileUid}; this process runs as uid ${uid})`;
}

/** What is wrong with a data file's kind, owner or mode (not its content). */
export type FileAccessProblem = "symlink" | "not-file" | "replaced" | "owner" | "mode";

/** A data file refused for its kind, owner or mode; the message says how to fix it. */
export class FileAccessError extends Error {
  /** Which check failed. */
  readonly problem: FileAccessProblem;
  /** Creates the error. */
  constructor(problem: FileAccessProblem, message: string) {
    super(message);
    this.name = "FileAccessError";
    this.problem = problem;
  }
}

/** Options for {@link readVersionedSync}. */
export interface ReadDataFileOptions {
  /**
   * For secrets: refuse a symbolic link instead of following it, and refuse a
   * file that was swapped between the check and the open.
   */
  noFollow?: boolean;
  /** Refuse these permission bits. @default {0o022 (writable by group or others)} */
  forbiddenBits?: number;
}

/**
 * Opens `path` for reading, or returns `null` when missing. With `noFollow`
 * a symbolic link is refused (lstat, then the opened file must be the same
 * inode). Then the file must be a regular file owned by this process's user
 * with none of `forbiddenBits` set. Errors say what is wrong and how to fix it.
 */
function openDataFileSync(
  path: string,
  options: ReadDataFileOptions,
): { file: Deno.FsFile; info: Deno.FileInfo } | null {
  let link: Deno.FileInfo | undefined;
  try {
    if (options.noFollow) link = Deno.lstatSync(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
  if (link?.isSymlink) {
    throw new FileAccessError(
      "symlink",
      "it is a symbolic link, and secrets are never read through a link; " +
        `replace it with the file itself (\`cp --remove-destination "$(readlink -f ${path})" ${path}\`)`,
    );
  }
  let file: Deno.FsFile;
  try {
    file = Deno.openSync(path, { read: true });
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
  try {
    const info = file.statSync();
    if (link && (link.ino !== info.ino || link.dev !== info.dev)) {
      throw new FileAccessError("replaced", "it was replaced while being opened; try again");
    }
    if (!info.isFile) throw new FileAccessError("not-file", "it is not a regular file");
    const owner = ownerProblem(info.uid, processUid());
    if (owner) {
      throw new FileAccessError("owner", `${owner}; fix it with \`chown $(id -u) ${path}\``);
    }
    const bits = permissionBits(info);
    const forbidden = options.forbiddenBits ?? 0o022;
    if (bits !== null && (bits & forbidden) !== 0) {
      const who = (forbidden & 0o044) !== 0 ? "accessible" : "writable";
      throw new FileAccessError(
        "mode",
        `it is ${who} by group or others (mode ${formatMode(bits)}); ` +
          `fix it with \`chmod 600 ${path}\``,
      );
    }
    return { file, info };
  } catch (error) {
    file.close();
    throw error;
  }
}

/**
 * Reads `path` and its version, or `null` when missing. Refuses a file
 * another user owns or that group or others may write, and with
 * `noFollow` a symbolic link (the error message says how to fix it).
 */
export function readVersionedSync(
  path: string,
  options: ReadDataFileOptions = {},
): { text: string; version: FileVersion } | null {
  const opened = openDataFileSync(path, options);
  if (opened === null) return null;
  const { file, info } = opened;
  try {
    const chunks: Uint8Array[] = [];
    const buffer = new Uint8Array(16384);
    let total = 0;
    for (;;) {
      const n = file.readSync(buffer);
      if (n === null || n === 0) break;
      chunks.push(buffer.slice(0, n));
      total += n;
    }
    const all = new Uint8Array(total);
    let offset = 0;
    for (const chunk of chunks) {
      all.set(chunk, offset);
      offset += chunk.length;
    }
    return {
      text: new TextDecoder("utf-8", { fatal: true }).decode(all),
      version: { ino: info.ino, size: info.size, mtime: info.mtime?.getTime() ?? null },
    };
  } finally {
    file.close();
  }
}

/**
 * Reads a small secret file (for example the admin token) as text, or
 * `null` when it is missing: never through a symbolic link, only when this
 * process's user owns it and group and others cannot access it.
 * @throws {Error} "it is a symbolic link…", "it is owned by another user…", a mode problem, or an I/O error.
 */
export function readSecretFileSync(path: string): string | null {
  return readVersionedSync(path, { noFollow: true, forbiddenBits: 0o077 })?.text ?? null;
}

/**
 * Parses the JSON text of a versioned data file (pure): an object with
 * `version` equal to `version` and an array under `listKey`, which is
 * returned. Throws `SyntaxError` describing the problem.
 */
export function parseVersionedList(text: string, version: number, listKey: string): unknown[] {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new SyntaxError("it is not valid JSON");
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new SyntaxError("it is not a JSON object");
  }
  const record = value as Record<string, unknown>;
  if (record.version !== version) {
    throw new SyntaxError(`unsupported version (expected ${version})`);
  }
  const list = record[listKey];
  if (!Array.isArray(list)) throw new SyntaxError(`${listKey} must be an array`);
  return list;
}

/**
 * A trust or token file that cannot be read: unreadable, corrupt, writable
 * by others, owned by another user, or (a token file) a symbolic link. The file is left as it is; the message says which file and why.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { DataFileError, HuskiesNode } from "@huskies/sync";
 *
 * const dir = Deno.makeTempDirSync();
 * Deno.writeTextFileSync(`${dir}/trust.json`, "{ not json", { mode: 0o600 });
 * await assert.rejects(HuskiesNode.open({ dataDir: dir }), DataFileError);
 * Deno.removeSync(dir, { recursive: true });
 * ```
 */
export class DataFileError extends Error {
  /** Creates the error; `message` names the file and the problem. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "DataFileError";
  }
}

/**
 * Reads and parses a data file (`what` names it in errors, e.g. "trust
 * file"). Returns `null` when the file does not exist. Any failure is a
 * {@link DataFileError}; the file is never changed.
 */
export function loadDataFile<T>(
  path: string,
  what: string,
  parse: (text: string) => T,
  options: ReadDataFileOptions = {},
): { value: T; version: FileVersion } | null {
  let loaded: ReturnType<typeof readVersionedSync>;
  try {
    loaded = readVersionedSync(path, options);
  } catch (error) {
    throw new DataFileError(`Cannot read ${what} ${path}: ${(error as Error).message}`, {
      cause: error,
    });
  }
  if (loaded === null) return null;
  try {
    return { value: parse(loaded.text), version: loaded.version };
  } catch (error) {
    throw new DataFileError(
      `Cannot read ${what} ${path}: ${(error as Error).message}; fix or remove the file`,
      { cause: error },
    );
  }
}
