/**
 * Every conformance case, in the order the runner runs them.
 * @module
 */

import type { Case } from "../case.ts";
import { causalCases } from "./causal.ts";
import { dialCases } from "./dial.ts";
import { documentCases } from "./document.ts";
import { forkCases } from "./fork.ts";
import { handshakeCases } from "./handshake.ts";
import { legacyCases } from "./legacy.ts";
import { liveCases } from "./live.ts";
import { syncCases } from "./sync.ts";
import { transportCases } from "./transport.ts";
import { verifyCases } from "./verify.ts";

/** All cases. Long ones (the 10 s handshake timeout, --slow silences) come last in their area. */
export const CASES: readonly Case[] = [
  ...transportCases,
  ...handshakeCases,
  ...syncCases,
  ...liveCases,
  ...legacyCases,
  ...verifyCases,
  ...causalCases,
  ...forkCases,
  ...documentCases,
  ...dialCases,
];
