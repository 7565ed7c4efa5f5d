/**
 * Runs cases against a peer and reports each one.
 * @module
 */

import type { Case } from "./case.ts";
import { CASES } from "./cases/mod.ts";
import { CaseFailure, CaseSkip } from "./check.ts";
import { type CaseResult, type ConformanceOptions, Context } from "./context.ts";

/** The outcome of a run. */
export interface ConformanceReport {
  /** One result per case run, in order. */
  results: CaseResult[];
  /** Cases that passed. */
  passed: number;
  /** Cases that failed. */
  failed: number;
  /** Cases skipped. */
  skipped: number;
  /** Connections opened to the peer. */
  connections: number;
}

/**
 * The cases `only` selects: an exact id (`sync.resume`) or an area
 * (`handshake`, `handshake.`); all when `only` is empty.
 */
export function selectCases(only: string[] | undefined, cases: readonly Case[] = CASES): Case[] {
  if (!only || only.length === 0) return [...cases];
  const matches = (id: string, name: string) =>
    id === name || id.startsWith(name.endsWith(".") ? name : `${name}.`);
  const picked = cases.filter((c) => only.some((name) => matches(c.id, name)));
  if (picked.length === 0) {
    throw new TypeError(`Cannot select cases: no case is ${only.join(" or ")} or in that area`);
  }
  return picked;
}

/** Runs one case, turning its outcome into a result. */
export async function runCase(testCase: Case, ctx: Context): Promise<CaseResult> {
  const start = Date.now();
  const done = (result: Omit<CaseResult, "id" | "ms">): CaseResult => ({
    id: testCase.id,
    ...result,
    ms: Date.now() - start,
  });
  try {
    await testCase.run(ctx);
    return done({ status: "PASS" });
  } catch (error) {
    if (error instanceof CaseSkip) return done({ status: "SKIP", why: error.why });
    if (error instanceof CaseFailure) {
      return done({ status: "FAIL", expected: error.expected, seen: error.seen });
    }
    return done({
      status: "FAIL",
      expected: "the case to run",
      seen: (error as Error)?.message ?? String(error),
    });
  }
}

/**
 * Runs the conformance cases (all, or those `options.only` selects) against
 * the peer at `options.url` and, with `options.listen`, the cases where the
 * peer dials the suite.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { crdtSyncHandler, HuskiesNode } from "@huskies/sync";
 * import { runConformance } from "@huskies/sync/conformance";
 *
 * await using peer = await HuskiesNode.open({ open: true, inBandHandshake: "allow" });
 * await using server = Deno.serve(
 *   { hostname: "127.0.0.1", port: 0, onListen() {} },
 *   crdtSyncHandler(peer),
 * );
 * const report = await runConformance({
 *   url: `ws://127.0.0.1:${server.addr.port}/crdt-sync`,
 *   only: ["sync.clock-first"],
 * });
 * assert.deepEqual(report.results.map((r) => [r.id, r.status]), [["sync.clock-first", "PASS"]]);
 * ```
 */
export async function runConformance(options: ConformanceOptions): Promise<ConformanceReport> {
  const cases = selectCases(options.only);
  const ctx = new Context(options);
  const results: CaseResult[] = [];
  try {
    for (const testCase of cases) {
      const result = await runCase(testCase, ctx);
      results.push(result);
      options.onResult?.(result);
    }
  } finally {
    ctx.close();
  }
  const count = (status: CaseResult["status"]) => results.filter((r) => r.status === status).length;
  return {
    results,
    passed: count("PASS"),
    failed: count("FAIL"),
    skipped: count("SKIP"),
    connections: ctx.connections,
  };
}

/**
 * One line for a result: `PASS id`, `FAIL id: expected … saw …`, `SKIP id: why`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatResult } from "@huskies/sync/conformance";
 *
 * const line = formatResult({ id: "sync.ping", status: "FAIL", expected: "pong", seen: "close 1000", ms: 3 });
 * assert.match(line, /^FAIL sync\.ping/);
 * assert.match(line, /pong/);
 * ```
 */
export function formatResult(result: CaseResult): string {
  switch (result.status) {
    case "PASS":
      return `PASS ${result.id} (${result.ms} ms)`;
    case "FAIL":
      return `FAIL ${result.id}: expected ${result.expected}; saw ${result.seen}`;
    case "SKIP":
      return `SKIP ${result.id}: ${result.why}`;
  }
}

/**
 * The summary line.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatSummary } from "@huskies/sync/conformance";
 *
 * const line = formatSummary({ results: [], passed: 41, failed: 0, skipped: 10, connections: 60 });
 * assert.match(line, /41 passed, 0 failed, 10 skipped/);
 * ```
 */
export function formatSummary(report: ConformanceReport): string {
  return `${report.passed} passed, ${report.failed} failed, ${report.skipped} skipped`;
}
