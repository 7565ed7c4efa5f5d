/**
 * The cases as `deno test` tests: one test per case, sharing one run's
 * sessions, so `deno test --filter` picks cases.
 * @module
 */

import { CASES } from "./cases/mod.ts";
import { type ConformanceOptions, Context } from "./context.ts";
import { runCase } from "./runner.ts";

/**
 * Registers one `Deno.test` per case against `options.url`; without a URL,
 * registers one ignored test whose name says how to give one.
 */
export function registerConformanceTests(options: ConformanceOptions): void {
  if (!options.url) {
    Deno.test({
      name: "conformance: set HUSKIES_PEER_URL=ws://HOST:PORT/crdt-sync to check a peer",
      ignore: true,
      fn() {},
    });
    return;
  }
  let ctx: Context | undefined;
  for (const testCase of CASES) {
    Deno.test({
      name: `${testCase.id}: ${testCase.title}`,
      sanitizeOps: false,
      sanitizeResources: false,
      async fn() {
        ctx ??= new Context(options);
        const result = await runCase(testCase, ctx);
        if (result.status === "SKIP") console.log(`SKIP ${testCase.id}: ${result.why}`);
        if (result.status === "FAIL") {
          throw new Error(`${testCase.id}: expected ${result.expected}; saw ${result.seen}`);
        }
      },
    });
  }
  Deno.test({
    name: "conformance: close the suite's connections",
    sanitizeOps: false,
    sanitizeResources: false,
    fn: () => ctx?.close(),
  });
}
