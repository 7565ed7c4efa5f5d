/**
 * Every conformance case, in the order the runner runs them.
 * @module
 */

import type { Case } from "../case.ts";
import { causalCases } from "./causal.ts";
import { compactCases } from "./compact.ts";
import { dialCases } from "./dial.ts";
import { documentCases } from "./document.ts";
import { forkCases } from "./fork.ts";
import { handshakeCases } from "./handshake.ts";
import { legacyCases } from "./legacy.ts";
import { liveCases } from "./live.ts";
import { preauthCases } from "./preauth.ts";
import { syncCases } from "./sync.ts";
import { admissionCases, transportCases } from "./transport.ts";
import { verifyCases } from "./verify.ts";

/**
 * All cases. The dial-out cases come first (the peer dials as soon as the
 * listener is up, and stops for good after dial.bad-welcome).
 */
export const CASES: readonly Case[] = [
  ...dialCases,
  ...transportCases,
  ...handshakeCases,
  ...preauthCases,
  ...syncCases,
  ...compactCases,
  ...liveCases,
  ...legacyCases,
  ...verifyCases,
  ...causalCases,
  ...forkCases,
  ...documentCases,
  ...admissionCases,
];

/** A case's id and the rule it checks. */
export interface CaseInfo {
  /** Stable id, `area.name`. */
  id: string;
  /** The rule, with its PROTOCOL.md section. */
  title: string;
}

/**
 * The id and title of every case, in run order.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { CASE_LIST } from "@huskies/sync/conformance";
 *
 * assert.ok(CASE_LIST.some((info) => info.id.startsWith("handshake.")));
 * assert.equal(new Set(CASE_LIST.map((info) => info.id)).size, CASE_LIST.length);
 * ```
 */
export const CASE_LIST: readonly CaseInfo[] = CASES.map(({ id, title }) => ({ id, title }));
