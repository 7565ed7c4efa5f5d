/**
 * The huskies-sync conformance suite: the executable form of PROTOCOL.md.
 *
 * It checks a peer over the wire only, with its own small implementation
 * of the protocol pieces (canonical JSON, operation ids and signatures, the
 * handshake, frames, the document rules); it shares no code with the
 * huskies-sync node, so a bug in the node cannot hide behind the same bug
 * in the suite.
 *
 * @example Check a peer's handshake and operation rules
 * ```ts
 * import assert from "node:assert/strict";
 * import { crdtSyncHandler, HuskiesNode } from "@huskies/sync";
 * import { formatResult, formatSummary, runConformance } from "@huskies/sync/conformance";
 *
 * // The peer under test: here a huskies-sync node, open to any key.
 * await using peer = await HuskiesNode.open({ open: true, inBandHandshake: "allow" });
 * await using server = Deno.serve(
 *   { hostname: "127.0.0.1", port: 0, onListen() {} },
 *   crdtSyncHandler(peer),
 * );
 * const report = await runConformance({
 *   url: `ws://127.0.0.1:${server.addr.port}/crdt-sync`,
 *   only: ["sync.clock-first", "document"], // areas or case ids; omit to run every case
 *   onResult: (result) => assert.ok(formatResult(result).includes(result.id)),
 * });
 * assert.equal(report.failed, 0, formatSummary(report));
 * assert.ok(report.passed > 0);
 * ```
 *
 * @example As `deno test` tests, one per case
 * ```ts ignore
 * // peer_test.ts; run: HUSKIES_PEER_URL=ws://127.0.0.1:3001/crdt-sync deno test -A peer_test.ts
 * import { registerConformanceTests } from "@huskies/sync/conformance";
 *
 * registerConformanceTests({ url: Deno.env.get("HUSKIES_PEER_URL") });
 * ```
 * @module
 */

export { CASE_LIST, type CaseInfo } from "./cases/mod.ts";
export {
  type CaseResult,
  type ConformanceOptions,
  type JoinToken,
  parseJoinToken,
} from "./context.ts";
export { type ConformanceReport, formatResult, formatSummary, runConformance } from "./runner.ts";
export { ListenServer } from "./listen.ts";
export { registerConformanceTests } from "./register_tests.ts";
export { loadOrCreateKey } from "./key_file.ts";
export { KeyPair } from "./wire/ed25519.ts";
export type {
  BinaryFrame,
  CloseEvent,
  Conn,
  ConnEvent,
  TextFrame,
  TimeoutEvent,
} from "./wire/socket.ts";
