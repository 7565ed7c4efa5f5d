/** A node's live pace, from its session count. */
import assert from "node:assert/strict";
import { livePaceMs, PACE_MAX_MS, SESSIONS_PER_PACE_MS } from "../sync/live_pace.ts";

Deno.test("a node with few sessions sends every live operation at once; more sessions, a longer pace", () => {
  assert.equal(livePaceMs(0), 0);
  assert.equal(livePaceMs(SESSIONS_PER_PACE_MS - 1), 0, "below one pace's worth: at once");
  assert.equal(livePaceMs(SESSIONS_PER_PACE_MS), 1);
  assert.equal(livePaceMs(100), 2);
  assert.equal(livePaceMs(300), 7);
  assert.equal(livePaceMs(10_000), PACE_MAX_MS, "never longer than the cap");
});
