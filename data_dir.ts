/**
 * Every file name a data folder holds, in one place. Modules that read or
 * write a data folder take their names from here.
 * @module
 */

/** The configuration file (`project.toml`). */
export const CONFIG_FILE_NAME = "project.toml";
/** The node's Ed25519 key seed (0600). */
export const KEY_FILE_NAME = "node.key";
/** The operation database (SQLite). */
export const STORE_FILE_NAME = "ops.db";
/** The node-local trust list. */
export const TRUST_FILE_NAME = "trust.json";
/** Join tokens (hashes only). */
export const TOKEN_FILE_NAME = "tokens.json";
/** Written by a running `huskies serve`: its URLs and process id. */
export const SERVE_FILE_NAME = "serve.json";
/** Bearer token for the running node's loopback admin API (0600). */
export const ADMIN_TOKEN_FILE_NAME = "admin.token";
/** The mesh id this node belongs to (its genesis operation id), once known. */
export const MESH_FILE_NAME = "mesh.json";
