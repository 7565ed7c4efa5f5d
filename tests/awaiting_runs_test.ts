/**
 * Operations accepted through a descendant's signature (PROTOCOL.md §2.5) travel on: a run whose
 * last signature fails waits for the frames that may continue its chain, within bounds.
 */
import assert from "node:assert/strict";
import { AwaitingRuns, MAX_HELD_FRAMES, MAX_HELD_MS } from "../crdt/awaiting_runs.ts";
import { SignatureVerifier } from "../crdt/identity.ts";
import { encodeOperation } from "../crdt/operation.ts";
import { Replica } from "../crdt/replica.ts";
import { verifyOperation } from "../crdt/signatures.ts";
import { CloseCode } from "../protocol/close_codes.ts";
import { compactBulkFrames } from "../sync/compact_bulk.ts";
import { READY_FRAME } from "../sync/frames.ts";
import { SyncSession } from "../sync/session.ts";
import { forged, identity, OpFactory, setField, spoilt } from "./helpers.ts";

const FRAME_BYTES = 8 * 1024;
const verifier = new SignatureVerifier();
/** What the runs are judged against: nothing held yet. */
const empty = { verifier, getOperation: () => undefined };

/**
 * A hub that took a chain from a relay which spoilt every signature but the last of each frame
 * it sent (each frame's run is authenticated by its last operation, so the hub holds them all).
 */
function poisonedHub(count: number): Replica {
  const hub = Replica.open({ identity: identity(6) });
  const relay = new SyncSession({
    replica: hub,
    peer: identity(9).nodeId,
    direction: "inbound",
    now: 0,
    maxFrameBytes: FRAME_BYTES,
  });
  relay.start(0);
  for (const frame of compactBulkFrames(new OpFactory().chain(identity(1), count), FRAME_BYTES)) {
    const message = JSON.parse(frame);
    const entries = message.runs.flatMap((run: unknown[][]) => run[3]) as string[][];
    for (const entry of entries.slice(0, -1)) entry[3] = spoilt(entry[3]);
    relay.receive(JSON.stringify(message), 1);
  }
  return hub;
}

/** `frame`, a clock not offering the compact form unless `compact` (its peer gets `bulk`). */
function withoutCompact(frame: string | Uint8Array, compact: boolean): string | Uint8Array {
  if (compact || typeof frame !== "string" || !frame.startsWith('{"type":"clock"')) return frame;
  const { accept: _, ...clock } = JSON.parse(frame);
  return JSON.stringify(clock);
}

/** Runs a catch-up of `peer` from `hub` over two sessions; `compact`: the peer offers `cbulk`. */
function catchUp(hub: Replica, peer: Replica, compact: boolean): SyncSession {
  const options = { now: 0, maxFrameBytes: FRAME_BYTES };
  const serving = new SyncSession({
    ...options,
    replica: hub,
    peer: peer.nodeId,
    direction: "inbound",
  });
  const taking = new SyncSession({
    ...options,
    replica: peer,
    peer: hub.nodeId,
    direction: "outbound",
  });
  let toPeer = serving.start(0).frames;
  let toHub = taking.start(0).frames;
  for (let t = 1; t < 1000 && toPeer.length + toHub.length > 0; t++) {
    const nextHub = toPeer.flatMap((frame) => taking.receive(frame, t).frames);
    const nextPeer = toHub.flatMap((frame) =>
      serving.receive(withoutCompact(frame, compact), t).frames
    );
    nextPeer.push(...serving.tick(t, 0).frames);
    nextHub.push(...taking.tick(t, 0).frames);
    [toPeer, toHub] = [nextPeer, nextHub];
  }
  return taking;
}

Deno.test("operations accepted through a descendant's signature reach a node that catches up from there", () => {
  for (const compact of [true, false]) {
    const hub = poisonedHub(300);
    const spoiltHeld = hub.opsSince({}).filter((op) => !verifyOperation(op, verifier)).length;
    assert.ok(spoiltHeld > 250, `${spoiltHeld} held with a spoilt signature`);
    const peer = Replica.open({ identity: identity(7) });
    const session = catchUp(hub, peer, compact);
    assert.equal(peer.size, 300, compact ? "cbulk" : "bulk");
    assert.equal(peer.stateHash(), hub.stateHash());
    assert.equal(session.stats().invalidOps, 0);
  }
});

Deno.test("a run whose last signature fails is held only until the frames that may continue it", () => {
  const chain = new OpFactory().chain(identity(1), 6);
  const unrelated = new OpFactory().chain(identity(2), MAX_HELD_FRAMES + 1);
  const waiting = { ...chain[2], sig: spoilt(chain[2].sig) };
  const runs = new AwaitingRuns();
  // The valid prefix goes on at once; the spoilt third waits, and joins its continuation.
  const first = runs.take([chain[0], chain[1], waiting], true, true, empty, 0);
  assert.deepEqual(first.ops, [chain[0], chain[1]]);
  assert.equal(runs.dueAt, MAX_HELD_MS);
  const next = runs.take(chain.slice(3), true, true, empty, 10);
  assert.deepEqual(next.ops, [waiting, ...chain.slice(3)]);
  assert.equal(runs.dueAt, Infinity);
  // Not continued, it waits MAX_HELD_FRAMES frames, then is received (to be refused there).
  runs.take([waiting], true, true, empty, 20);
  for (let i = 0; i < MAX_HELD_FRAMES; i++) {
    assert.deepEqual(runs.take([unrelated[i]], true, true, empty, 30 + i).ops, [unrelated[i]]);
  }
  assert.deepEqual(runs.take([unrelated[MAX_HELD_FRAMES]], true, true, empty, 40).ops, [
    waiting,
    unrelated[MAX_HELD_FRAMES],
  ]);
  // A single (binary) operation is received with what waits, amortised: it may be the next link.
  runs.take([waiting], true, true, empty, 50);
  assert.deepEqual(runs.take([chain[3]], false, true, empty, 60), {
    ops: [waiting, chain[3]],
    amortise: true,
  });
  // A bad single one is judged at once, even while a run waits, which goes on waiting.
  runs.take([waiting], true, true, empty, 70);
  const badSingle = forged(unrelated[0], chain[0]);
  assert.deepEqual(runs.take([badSingle], false, true, empty, 80).ops, [badSingle]);
  assert.equal(runs.dueAt, 70 + MAX_HELD_MS);
  // A run the replica holds already is a duplicate: passed on at once, its signature unchecked.
  const holding = {
    verifier,
    getOperation: (id: string) => id === waiting.id ? waiting : undefined,
  };
  const duplicates = new AwaitingRuns();
  assert.deepEqual(duplicates.take([waiting], true, true, holding, 90).ops, [waiting]);
  assert.equal(duplicates.dueAt, Infinity);
});

Deno.test("forgeries that wait are refused at `ready` or a second later, and never applied", () => {
  const ops = new OpFactory().chain(identity(3), 5);
  const forgeries = [
    forged(ops[0], ops[1]),
    forged(new OpFactory().next(identity(4), setField("s", "f", 1)), ops[2]),
  ];
  for (const end of ["ready", "time"]) {
    const replica = Replica.open({ identity: identity(6) });
    const s = new SyncSession({
      replica,
      peer: identity(9).nodeId,
      direction: "inbound",
      now: 0,
      maxInvalidOps: 1,
    });
    s.start(0);
    const frame = `{"type":"bulk","ops":[${forgeries.map(encodeOperation).join(",")}]}`;
    const held = s.receive(frame, 1);
    assert.equal(held.close, undefined);
    assert.ok((held.wakeAt ?? Infinity) <= 1 + MAX_HELD_MS, `wakes at ${held.wakeAt}`);
    assert.equal(s.stats().invalidOps, 0);
    const out = end === "ready" ? s.receive(READY_FRAME, 2) : s.tick(1 + MAX_HELD_MS, 0);
    assert.equal(s.stats().invalidOps, 2);
    assert.equal(out.close?.code, CloseCode.TOO_MANY_INVALID);
    assert.equal(replica.size, 0);
  }
});
