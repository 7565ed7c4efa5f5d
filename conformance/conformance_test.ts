/**
 * `deno test -A conformance/conformance_test.ts` checks the peer named by
 * HUSKIES_PEER_URL (optionally HUSKIES_PEER_TOKEN, a join token, and
 * HUSKIES_KEY_FILE, the suite's fixed identity); without it every case is
 * skipped with a message saying so.
 * @module
 */

import { loadOrCreateKey } from "./key_file.ts";
import { registerConformanceTests } from "./register_tests.ts";

const keyFile = Deno.env.get("HUSKIES_KEY_FILE");
registerConformanceTests({
  url: Deno.env.get("HUSKIES_PEER_URL"),
  token: Deno.env.get("HUSKIES_PEER_TOKEN"),
  key: keyFile ? await loadOrCreateKey(keyFile) : undefined,
  slow: Deno.env.get("HUSKIES_CONFORMANCE_SLOW") === "1",
});
