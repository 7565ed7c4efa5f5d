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
  /** Ends the hold (the store was closed, or failed to open). */
  release(): void;
}

/**
 * Claims the store file at `path` for an open. Refuses it with
 * {@link StoreLockedError} while this process has it open for writing, before
 * touching the file: closing any descriptor of a file drops every `fcntl`
 * lock the process holds on it, SQLite's included. For writing (not
 * read-only, and not on Windows, where locks are mandatory and SQLite's
 * exclusive locking mode stands in), takes the writer's lock: an exclusive
 * `flock` on the file (created 0600 when missing), held until released.
 * SQLite's own locks are `fcntl` locks, which `flock` neither takes nor
 * drops, so the store's connections share the file while a second process
 * is refused.
 *
 * @throws {StoreLockedError} this or another process has it open.
 */
export function claimStoreFile(path: string, readOnly: boolean): StoreClaim | undefined {
  const real = realPathOf(path);
  if (openHere.has(real)) throw lockedError(path, "it is already open in this process");
  if (readOnly || Deno.build.os === "windows") return undefined;
  let file: Deno.FsFile;
  try {
    file = Deno.openSync(path, { read: true, write: true, create: true, mode: STORE_FILE_MODE });
  } catch (error) {
    throw openError(path, error);
  }
  let locked: boolean;
  try {
    locked = file.tryLockSync(true);
  } catch (error) {
    file.close();
    throw openError(path, error);
  }
  if (!locked) {
    file.close();
    throw lockedError(path, "another process has it open");
  }
  openHere.add(real);
  return {
    release() {
      if (openHere.delete(real)) file.close();
    },
  };
}
