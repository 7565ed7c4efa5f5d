/**
 * The suite's fixed identity (`--key-file`): a 32-byte seed as 64 hex
 * characters, created with mode 0600 when missing.
 * @module
 */

import { hex, random, unhex } from "./wire/bytes.ts";
import { KeyPair } from "./wire/ed25519.ts";

/**
 * Loads the key in `path`, creating it (0600) when the file does not exist.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadOrCreateKey } from "@huskies/sync/conformance";
 *
 * const dir = Deno.makeTempDirSync();
 * const key = await loadOrCreateKey(`${dir}/suite.key`);
 * assert.equal((await loadOrCreateKey(`${dir}/suite.key`)).id, key.id); // the same key next time
 * assert.equal(Deno.statSync(`${dir}/suite.key`).mode! & 0o777, 0o600);
 * Deno.removeSync(dir, { recursive: true });
 * ```
 */
export async function loadOrCreateKey(path: string): Promise<KeyPair> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) {
      throw new Error(`Cannot read key file ${path}: ${(error as Error).message}`);
    }
    const seed = random(32);
    const file = await Deno.open(path, { write: true, createNew: true, mode: 0o600 });
    try {
      await file.write(new TextEncoder().encode(hex(seed) + "\n"));
    } finally {
      file.close();
    }
    return KeyPair.fromSeed(seed);
  }
  if (Deno.build.os !== "windows") {
    const mode = (await Deno.stat(path)).mode ?? 0;
    if ((mode & 0o077) !== 0) {
      throw new Error(`Cannot use key file ${path}: it is readable by others (chmod 600 it)`);
    }
  }
  const seed = text.trim();
  if (!/^[0-9a-f]{64}$/.test(seed)) {
    throw new Error(`Cannot use key file ${path}: expected 64 lowercase hex characters (a seed)`);
  }
  return KeyPair.fromSeed(unhex(seed));
}
