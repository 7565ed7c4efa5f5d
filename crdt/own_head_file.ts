/**
 * The SQLite store's durable record of the node's own chain head, kept in a
 * small file beside the database (`ops.db-head`), not in it: a truncated
 * write-ahead log or an older `ops.db` restored from a backup loses the
 * last transactions whole, so a record inside the database would vanish with
 * the operations it should vouch for. The file is written after each durable
 * commit of own operations (so it may lag the store after a crash, never lead
 * it) as one fixed-size record at offset 0, then flushed to disk.
 *
 * Format: `{"v":1,"author":"<hex64>","seq":<n>,"id":"<hex64>"}` padded with
 * spaces to 255 bytes and a newline.
 * @module
 */
import { dirname, resolve } from "node:path";
import { isHex64 } from "../protocol/bytes.ts";
import { StoreCorruptError } from "./sqlite_file.ts";
import type { OwnHead } from "./store.ts";

/** The record file's name is the store file's plus this suffix. */
export const OWN_HEAD_SUFFIX = "-head";

const RECORD_BYTES = 256;
const FILE_MODE = 0o600;

/** Parses a record; null when it is not one. */
function parseRecord(text: string): OwnHead | null {
  try {
    const value = JSON.parse(text) as Record<string, unknown>;
    if (
      value.v === 1 && isHex64(value.author) && Number.isSafeInteger(value.seq) &&
      (value.seq as number) >= 1 && isHex64(value.id)
    ) return { author: value.author as string, seq: value.seq as number, id: value.id as string };
  } catch {
    // Not JSON: reported below.
  }
  return null;
}

/**
 * Reads the record beside the store at `storePath`; null when there is none.
 *
 * @throws {StoreCorruptError} the file exists but holds no valid record.
 */
export function readOwnHead(storePath: string): OwnHead | null {
  const path = storePath + OWN_HEAD_SUFFIX;
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
  if (text.length === 0) return null; // created, never written
  const head = parseRecord(text);
  if (head === null) {
    throw new StoreCorruptError(
      storePath,
      `Cannot open store at ${storePath}: ${path}, the record of this node's own chain head, ` +
        "is damaged. Move it aside to start without the check that the store did not lose " +
        "the node's own recent operations.",
    );
  }
  return head;
}

/** The record file, open for writing. */
export class OwnHeadFile {
  readonly #file: Deno.FsFile;

  private constructor(file: Deno.FsFile) {
    this.#file = file;
  }

  /**
   * Opens (creating, mode 0600) the record file beside the store at
   * `storePath`; a new file's folder entry is flushed to disk too.
   */
  static open(storePath: string): OwnHeadFile {
    const path = storePath + OWN_HEAD_SUFFIX;
    let created = false;
    try {
      Deno.statSync(path);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
      created = true;
    }
    const file = Deno.openSync(path, { read: true, write: true, create: true, mode: FILE_MODE });
    if (created && Deno.build.os !== "windows") {
      try {
        const folder = Deno.openSync(dirname(resolve(path)), { read: true });
        try {
          folder.syncSync();
        } finally {
          folder.close();
        }
      } catch {
        // Best effort: some file systems cannot flush a folder.
      }
    }
    return new OwnHeadFile(file);
  }

  /**
   * Writes `head` (to the page cache: it survives a kill and any later damage
   * to `ops.db`; it is written after the store's own commit, which is already
   * on disk, so after a power loss it can only lag the store, never lead it).
   * Flushed to disk at {@link OwnHeadFile.close}.
   */
  write(head: OwnHead): void {
    const json = JSON.stringify({ v: 1, author: head.author, seq: head.seq, id: head.id });
    const bytes = new TextEncoder().encode(json.padEnd(RECORD_BYTES - 1) + "\n");
    this.#file.seekSync(0, Deno.SeekMode.Start);
    let written = 0;
    while (written < bytes.length) written += this.#file.writeSync(bytes.subarray(written));
  }

  /** Flushes and closes the file. */
  close(): void {
    try {
      this.#file.syncDataSync();
    } finally {
      this.#file.close();
    }
  }
}
