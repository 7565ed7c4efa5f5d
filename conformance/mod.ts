/**
 * The huskies-sync conformance suite: the executable form of PROTOCOL.md.
 *
 * It checks a peer over the wire only, with its own small implementation
 * of the protocol pieces (canonical JSON, operation ids and signatures, the
 * handshake, frames, the document rules); it shares no code with the
 * huskies-sync node, so a bug in the node cannot hide behind the same bug
 * in the suite.
 *
 * @example Run every case against an open peer
 * ```ts
 * import { formatResult, formatSummary, runConformance } from "./mod.ts";
 *
 * const report = await runConformance({
 *   url: "ws://127.0.0.1:3001/crdt-sync",
 *   onResult: (result) => console.log(formatResult(result)),
 * });
 * console.log(formatSummary(report));
 * if (report.failed > 0) Deno.exitCode = 1;
 * ```
 *
 * @example As `deno test` tests, one per case
 * ```ts ignore
 * // peer_test.ts; run: HUSKIES_PEER_URL=ws://127.0.0.1:3001/crdt-sync deno test -A peer_test.ts
 * import { registerConformanceTests } from "./mod.ts";
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
