/**
 * The shape of a conformance case.
 * @module
 */

import type { Context } from "./context.ts";

/** One rule of PROTOCOL.md checked over the wire. */
export interface Case {
  /** Stable id, `area.name`; `--only` takes an id or an area. */
  id: string;
  /** The rule checked, with its PROTOCOL.md section. */
  title: string;
  /** Runs the case: returns on PASS, throws CaseFailure (FAIL) or CaseSkip (SKIP). */
  run(ctx: Context): Promise<void>;
}
