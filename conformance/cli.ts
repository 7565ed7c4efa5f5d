/**
 * `deno task conformance <ws-url> [options]`: runs the conformance suite
 * against a peer and prints one line per case and a summary. Exit 0 when no
 * case failed, 1 when one did, 2 on bad usage.
 * @module
 */

import { parseArgs } from "node:util";
import { type CaseResult, parseJoinToken } from "./context.ts";
import { loadOrCreateKey } from "./key_file.ts";
import { ListenServer } from "./listen.ts";
import { formatResult, formatSummary, runConformance, selectCases } from "./runner.ts";

const USAGE = `Usage: deno task conformance <ws-url> [options]

Checks a huskies-sync peer against PROTOCOL.md over the wire.

  --token TOKEN      join token (hjt1...) to get admitted with
  --key-file FILE    keep the suite's identity in FILE (created 0600 if missing)
  --print-key        print the suite's node id (to trust it on the peer) and exit
  --json             print the results as JSON instead of lines
  --only CASES       comma-separated case ids or areas (e.g. handshake,sync.ping)
  --timeout-ms N     bound for each wait (default 5000)
  --listen HOST:PORT also run the cases where the peer dials the suite there
  --slow             also run the long cases (silences, the admission limit)
  --list             list the case ids and exit
`;

/** Runs the command; returns the exit code. */
export async function main(args: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      options: {
        token: { type: "string" },
        "key-file": { type: "string" },
        "print-key": { type: "boolean" },
        json: { type: "boolean" },
        only: { type: "string", multiple: true },
        "timeout-ms": { type: "string" },
        listen: { type: "string" },
        slow: { type: "boolean" },
        list: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    });
  } catch (error) {
    console.error(`Cannot run conformance: ${(error as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  try {
    const only = values.only?.flatMap((v) => v.split(",")).map((v) => v.trim()).filter(Boolean);
    if (values.list) {
      for (const c of selectCases(only)) console.log(`${c.id}  ${c.title}`);
      return 0;
    }
    const key = values["key-file"] ? await loadOrCreateKey(values["key-file"]) : undefined;
    if (values["print-key"]) {
      if (!key) {
        throw new TypeError("--print-key needs --key-file (a fresh key would be useless to trust)");
      }
      console.log(key.id);
      return 0;
    }
    if (positionals.length !== 1 || !/^wss?:\/\//.test(positionals[0])) {
      throw new TypeError("give the peer's sync URL, ws://HOST:PORT/crdt-sync");
    }
    if (values.token) parseJoinToken(values.token);
    const timeoutMs = values["timeout-ms"] === undefined ? 5000 : Number(values["timeout-ms"]);
    if (!Number.isSafeInteger(timeoutMs) || timeoutMs < 100) {
      throw new TypeError("--timeout-ms must be a whole number >= 100");
    }
    if (only) selectCases(only);
    const listen = values.listen ? await ListenServer.start(values.listen) : undefined;
    if (listen) console.error(`listening for the peer at ${listen.url}`);
    try {
      const report = await runConformance({
        url: positionals[0],
        key,
        token: values.token,
        timeoutMs,
        only,
        slow: values.slow,
        listen,
        onResult: values.json
          ? undefined
          : (result: CaseResult) => console.log(formatResult(result)),
      });
      if (values.json) console.log(JSON.stringify(report, null, 2));
      else console.log(formatSummary(report));
      console.error(`(${report.connections} connections to the peer)`);
      return report.failed > 0 ? 1 : 0;
    } finally {
      await listen?.close();
    }
  } catch (error) {
    console.error(`Cannot run conformance: ${(error as Error).message}`);
    return 2;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
