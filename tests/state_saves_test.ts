/** When a replica saves its document: counted by StateSaver, and by a node only while no catch-up runs. */
import assert from "node:assert/strict";
import { CrdtDocument } from "../crdt/document.ts";
import { StateSaver } from "../crdt/replica_state.ts";
import type { Store } from "../crdt/store.ts";
import { saveStateWhenQuiet, STATE_SAVE_CHECK_MS } from "../sync/node_wiring.ts";
import { VirtualTimers } from "../testing/virtual_timers.ts";
import type { Replica } from "../crdt/replica.ts";

/** A store that records each saved state, or fails to save while `failing`. */
function recordingStore() {
  const saved: string[] = [];
  const control = { failing: false };
  const store = {
    count: () => 42,
    saveState(text: string) {
      if (control.failing) throw new Error("disk full");
      saved.push(text);
    },
  } as unknown as Store;
  return { store, saved, control };
}

Deno.test("a saver saves once what is unsaved reaches the due count, then counts from zero", () => {
  const { store, saved, control } = recordingStore();
  const document = new CrdtDocument();
  const saver = new StateSaver(store, { document, members: undefined }, { forks: () => [] });
  saver.add(5, 10);
  assert.equal(saved.length, 0, "5 of 10: not yet");
  saver.add(5, 10);
  assert.equal(saved.length, 1, "10 of 10: saved");
  assert.equal(saver.unsaved, 0);
  assert.match(saved[0], /^\{"v":1,"rows":42,/, "the header names the rows the store held");
  saver.add(3, 10);
  assert.equal(saved.length, 1);
  control.failing = true;
  saver.add(0, 1);
  assert.equal(saver.unsaved, 3, "a failed save keeps what is unsaved, to try again");
  control.failing = false;
  saver.add(0, 1);
  assert.equal(saved.length, 2, "as at close: anything unsaved is saved");
  saver.add(0, 1);
  assert.equal(saved.length, 2, "nothing unsaved: nothing written");
});

Deno.test("a node saves a due document only while no catch-up runs, every check interval", async () => {
  const timers = new VirtualTimers();
  let asked = 0;
  const replica = { saveStateIfDue: () => asked++ } as unknown as Replica;
  let busy = true;
  const stop = saveStateWhenQuiet(replica, timers, () => busy);
  await timers.advance(3 * STATE_SAVE_CHECK_MS);
  assert.equal(asked, 0, "a catch-up is running: no save");
  busy = false;
  await timers.advance(STATE_SAVE_CHECK_MS);
  assert.equal(asked, 1);
  await timers.advance(2 * STATE_SAVE_CHECK_MS);
  assert.equal(asked, 3);
  stop();
  await timers.advance(5 * STATE_SAVE_CHECK_MS);
  assert.equal(asked, 3, "stopped with the node");
  assert.equal(timers.pending, 0, "no timer left behind");
});
