/**
 * The writer's lock on a SQLite store file: one process (and one open store
 * in it) writes a data folder at a time.
 * @module
 */
import { basename, dirname, join, resolve } from "node:path";
import { lockedError, openError, STORE_FILE_MODE } from "./sqlite_file.ts";

/** Real paths of the store files this process has open for writing. */
const openHere = new Set<string>();

/** The path `path` names once symbolic links are followed (its folder's, while it is missing). */
function realPathOf(path: string): string {
  const absolute = resolve(path);
  try {
    return Deno.realPathSync(absolute);
  } catch {
    // Missing: the folder decides.
  }
  try {
    return join(Deno.realPathSync(dirname(absolute)), basename(absolute));
  } catch {
    return absolute; // the open reports the missing folder
  }
}

/** The writer's hold on a store file, from {@link claimStoreFile}. */
export interface StoreClaim {
  /**
   * True when the hold is an `flock`, so the store's connections may share
   * the file; false where none can be taken (Windows, or a file system
   * without `flock`): SQLite's exclusive locking mode must stand in.
   */
  readonly flocked: boolean;
  /** Ends the hold (the store was closed, or failed to open). */
  release(): void;
}

/**
 * Claims the store file at `path` for an open. Refuses it with
 * {@link StoreLockedError} while this process has it open for writing, before
 * touching the file: closing any descriptor of a file drops every `fcntl`
 * lock the process holds on it, SQLite's included. For writing, takes the
 * writer's lock: an exclusive `flock` on the file (created 0600 when
 * missing), held until released. SQLite's own locks are `fcntl` locks, which
 * `flock` neither takes nor drops, so the store's connections share the file
 * while a second process is refused. Returns undefined for a read-only open.
 *
 * @throws {StoreLockedError} this or another process has it open.
 */
export function claimStoreFile(path: string, readOnly: boolean): StoreClaim | undefined {
  const real = realPathOf(path);
  if (openHere.has(real)) throw lockedError(path, "it is already open in this process");
  if (readOnly) return undefined;
  let file: Deno.FsFile | undefined;
  // On Windows locks are mandatory: an flock would bar SQLite's own reads and writes.
  if (Deno.build.os !== "windows") {
    try {
      file = Deno.openSync(path, { read: true, write: true, create: true, mode: STORE_FILE_MODE });
    } catch (error) {
      throw openError(path, error);
    }
    let locked: boolean | undefined;
    try {
      locked = file.tryLockSync(true);
    } catch {
      // No flock on this file system: SQLite's exclusive locking stands in.
    }
    if (locked === false) {
      file.close();
      throw lockedError(path, "another process has it open");
    }
    if (locked === undefined) {
      file.close();
      file = undefined;
    }
  }
  openHere.add(real);
  return {
    flocked: file !== undefined,
    release() {
      if (openHere.delete(real)) file?.close();
    },
  };
}
