/**
 * Deterministic convergence simulations over testing/sim_network.ts: real
 * nodes (handshake, hub forwarding, sessions with keepalive and live
 * batching, rendezvous clients with their backoff) on a virtual clock, with
 * random delays, reordering across links, duplicates, link drops,
 * partitions, restarts and concurrent edits, all drawn from one seed.
 *
 * Environment:
 * - `SIM_SEED=<n>` runs only seed n (to replay a failure).
 * - `SIM_SEEDS=<count>` runs that many seeds per test (a soak), starting at
 *   `SIM_SEED_BASE` (default 1).
 * - `SIM_TRACE=<n>` keeps the last n network events and prints them on failure.
 * - `SIM_VERBOSE=1` prints each seed's counters.
 */
import assert from "node:assert/strict";
import { CrdtDocument } from "../crdt/document.ts";
import type { Identity } from "../crdt/identity.ts";
import type { Mutation, Operation, OpId } from "../crdt/operation.ts";
import { STAGES, type WorkItemPatch } from "../crdt/pipeline.ts";
import { Replica } from "../crdt/replica.ts";
import { WriteRefusedError } from "../crdt/write_guard.ts";
import { HuskiesNode } from "../sync/node.ts";
import { identity } from "./helpers.ts";
import {
  DISK_ERROR,
  type Rng,
  type SimLink,
  SimNetwork,
  type SimNode,
  type SimOptions,
  type UnexpectedClose,
} from "../testing.ts";

function env(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined; // no --allow-env: use the defaults
  }
}

function envInt(name: string): number | undefined {
  const text = env(name);
  if (text === undefined || text === "") return undefined;
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`${name} must be a non-negative integer, got ${JSON.stringify(text)}`);
  }
  return value;
}

/** The seeds a test runs: `SIM_SEED` alone, or `SIM_SEEDS` (default `count`) from the base. */
function seeds(count: number): number[] {
  const only = envInt("SIM_SEED");
  if (only !== undefined) return [only];
  const base = envInt("SIM_SEED_BASE") ?? 1;
  const total = envInt("SIM_SEEDS") ?? count;
  return Array.from({ length: total }, (_, i) => base + i);
}

const TRACE = envInt("SIM_TRACE") ?? 0;
const VERBOSE = env("SIM_VERBOSE") === "1";

function rerun(test: string, seed: number): string {
  return `seed ${seed}; rerun with: SIM_SEED=${seed} deno test --allow-all ` +
    `tests/simulation_test.ts --filter "${test}"`;
}

/** Runs `body` for one seed; any failure is rethrown naming the seed and how to replay it. */
async function withSeed(
  test: string,
  seed: number,
  body: (net: SimNetwork) => Promise<void>,
  options: Omit<SimOptions, "seed"> = {},
): Promise<void> {
  const net = new SimNetwork({ ...options, seed, traceLength: TRACE });
  try {
    await body(net);
    if (VERBOSE) {
      const node = net.nodes[0];
      console.log(
        `${test.split(":")[1]?.trim().slice(0, 24)} seed ${seed}: ${net.summary()} ` +
          `ops=${node?.replica.size} pending=${
            net.nodes.map((n) => n.replica.pendingSize().count)
          }`,
      );
    }
  } catch (error) {
    const trace = TRACE > 0
      ? `\nlast events:\n  ${net.trace().join("\n  ")}`
      : "\n(add SIM_TRACE=200 to print the last 200 network events)";
    const message = `simulation failed (${rerun(test, seed)})\n${net.summary()}\n` +
      `${(error as Error).stack ?? error}${trace}`;
    throw new Error(message);
  }
}

/** Adds `count` nodes named `prefix0`, `prefix1`, ... with identities from `firstId` on. */
async function addNodes(
  net: SimNetwork,
  prefix: string,
  count: number,
  firstId: number,
): Promise<SimNode[]> {
  const nodes: SimNode[] = [];
  for (let i = 0; i < count; i++) {
    nodes.push(await net.addNode(`${prefix}${i}`, identity(firstId + i)));
  }
  return nodes;
}

const STORIES = ["s1", "s2", "s3", "s4", "s5", "s6"];

function randomPatch(rng: Rng, story: string): WorkItemPatch {
  const patch: WorkItemPatch = {};
  if (rng.chance(0.5)) patch.stage = rng.pick(STAGES);
  if (rng.chance(0.3)) patch.name = `name-${rng.int(0, 99)}`;
  if (rng.chance(0.3)) patch.agent = rng.chance(0.3) ? null : `agent-${rng.int(0, 9)}`;
  if (rng.chance(0.3)) patch.retry_count = rng.int(0, 5);
  if (rng.chance(0.2)) patch.blocked = rng.chance(0.5);
  if (rng.chance(0.2)) {
    patch.depends_on = rng.sample(STORIES.filter((s) => s !== story), rng.int(0, 2));
  }
  return patch;
}

function randomRawMutation(rng: Rng): Mutation {
  const story = rng.pick(STORIES);
  const roll = rng.float();
  if (roll < 0.45) {
    return {
      type: "update",
      path: ["items", story],
      fields: { [rng.pick(["stage", "agent", "retry_count", "note"])]: rng.int(0, 50) },
    };
  }
  if (roll < 0.6) {
    return { type: "update", path: ["items", story, "meta"], fields: { k: rng.int(0, 9) } };
  }
  if (roll < 0.75) return { type: "remove", path: ["items", story, "meta"] };
  if (roll < 0.8) return { type: "remove", path: ["items", story] };
  if (roll < 0.98) return { type: "append", path: ["notes"], value: { n: rng.int(0, 999) } };
  return { type: "remove", path: ["notes"] };
}

/** One random local edit on `node`: through the Pipeline, or a raw commit. */
function randomEdit(rng: Rng, node: SimNode): void {
  const pipeline = node.pipeline;
  const story = rng.pick(STORIES);
  const roll = rng.float();
  if (roll < 0.3) {
    pipeline.put(story, randomPatch(rng, story));
  } else if (roll < 0.5) {
    if (pipeline.get(story)) pipeline.move(story, rng.pick(STAGES));
    else pipeline.put(story, { stage: rng.pick(STAGES) });
  } else if (roll < 0.6) {
    if (pipeline.get(story)) pipeline.delete(story);
    else pipeline.put(story, {});
  } else {
    const mutations = Array.from({ length: rng.int(1, 3) }, () => randomRawMutation(rng));
    node.replica.commit(mutations);
  }
}

/** How often each fault happens, per workload step. */
interface Faults {
  drop: number;
  partition: number;
  restart: number;
  duplicate: number;
}

/** Picks a random set of links to cut: a random split of the nodes, or a few random links. */
function randomCut(net: SimNetwork): SimLink[] {
  const rng = net.rng;
  if (rng.chance(0.5)) {
    const side = new Set(rng.sample(net.nodes, rng.int(1, net.nodes.length - 1)));
    return net.links.filter((link) => side.has(link.a) !== side.has(link.b));
  }
  return rng.sample(net.links, rng.int(1, Math.max(1, Math.floor(net.links.length / 2))));
}

function randomFault(net: SimNetwork, faults: Faults): void {
  const rng = net.rng;
  if (rng.chance(faults.drop)) net.drop(rng.pick(net.links));
  if (rng.chance(faults.partition)) net.partition(randomCut(net), rng.int(50, 400));
  if (rng.chance(faults.restart)) net.restart(rng.pick(net.nodes), rng.int(0, 300));
  if (rng.chance(faults.duplicate)) {
    net.injectDuplicates(rng.pick(net.links), rng.chance(0.5), rng.int(1, 20));
  }
}

/**
 * The common workload: `edits` random edits on random live nodes (some
 * `authors` only, when given), with random gaps and faults in between, then
 * heal everything and run until quiescent. Two copies of one forked key see
 * each other's operations as their own, so their writes may be refused by
 * the own-history guard until they catch up (`forkedCopies`; the refusal
 * changes nothing). Any other failed edit but a disk error fails the run.
 */
async function workload(
  net: SimNetwork,
  edits: number,
  faults: Faults,
  authors: readonly SimNode[] = net.nodes,
  forkedCopies: readonly SimNode[] = [],
): Promise<void> {
  const rng = net.rng;
  // Each seed scales the fault rates, so a soak covers calm and stormy runs.
  const intensity = 0.25 + 1.5 * rng.float();
  const scaled: Faults = {
    drop: faults.drop * intensity,
    partition: faults.partition * intensity,
    restart: faults.restart * intensity,
    duplicate: faults.duplicate * intensity,
  };
  for (const link of net.links) net.connect(link);
  for (let i = 0; i < edits; i++) {
    await net.runFor(rng.int(0, 12));
    const live = authors.filter((node) => node.up);
    if (live.length > 0) {
      // Sometimes two nodes edit at the same virtual instant.
      for (const node of rng.sample(live, rng.chance(0.2) ? 2 : 1)) {
        try {
          randomEdit(rng, node);
        } catch (error) {
          // A failed disk write fails the commit and changes nothing; anything else is a bug.
          const message = (error as Error).message;
          if (message === DISK_ERROR) continue;
          if (forkedCopies.includes(node) && error instanceof WriteRefusedError) continue;
          throw new Error(`${node.name}: ${message}`);
        }
      }
    }
    randomFault(net, scaled);
  }
  await net.healAndSettle();
}

/**
 * Fails (naming every difference) unless the network is quiescent and the
 * nodes converged with no unexpected close or logged warning; `expected`
 * tells which closes and log lines a fault explains.
 */
function assertConverged(
  net: SimNetwork,
  expected: { close?: (close: UnexpectedClose) => boolean; log?: (message: string) => boolean } =
    {},
): void {
  const nodes = net.nodes;
  const problems = net.divergence(nodes);
  for (const close of net.unexpectedCloses) {
    if (expected.close?.(close)) continue;
    problems.push(
      `unexpected close on ${close.link} by ${close.closer} at t=${close.time}: ` +
        `${close.code} ${close.reason}`,
    );
  }
  for (const log of net.logs) {
    if (expected.log?.(log.message)) continue;
    problems.push(`${log.level} on ${log.node} at t=${log.time}: ${log.message}`);
  }
  if (problems.length > 0) assert.fail(`nodes did not converge:\n  ${problems.join("\n  ")}`);
  const ops = nodes[0].replica.size;
  assert.ok(ops > 0, "the workload made no operations");
  for (const node of nodes) assert.deepEqual(node.replica.forks(), [], `${node.name} saw a fork`);
}

const MESH =
  "simulation converges: N nodes in a full mesh with delays, duplicates and drops end identical";

Deno.test(MESH, async () => {
  for (const seed of seeds(8)) {
    await withSeed(MESH, seed, async (net) => {
      const nodes = await addNodes(net, "n", 5, 0);
      for (let i = 0; i < nodes.length; i++) {
        for (let j = i + 1; j < nodes.length; j++) net.addLink(nodes[i], nodes[j]);
      }
      // Two nodes that dial each other: a second connection between the same pair.
      net.addLink(nodes[1], nodes[0]);
      await workload(net, 300, { drop: 0.04, partition: 0, restart: 0, duplicate: 0.05 });
      assertConverged(net);
    });
  }
});

const HUB = "simulation converges: hub and spokes with partitions and restarts";

Deno.test(HUB, async () => {
  for (const seed of seeds(12)) {
    await withSeed(HUB, seed, async (net) => {
      const hub = await net.addNode("hub", identity(10));
      const spokes = await addNodes(net, "spoke", 3, 11);
      // Spokes dial the hub; spoke0 and spoke1 also share a direct link. spoke3 speaks
      // the legacy (v1) protocol and starts with one operation.
      spokes.push(await net.addNode("spoke3", identity(14), { legacy: true }));
      for (const spoke of spokes) net.addLink(spoke, hub);
      net.addLink(spokes[0], spokes[1]);
      spokes[3].pipeline.put("s1", { name: "from a legacy spoke" });
      await workload(net, 250, { drop: 0.03, partition: 0.025, restart: 0.02, duplicate: 0.03 });
      assertConverged(net);
    });
  }
});

const DISK = "simulation converges: nodes whose disk writes sometimes fail";

Deno.test(DISK, async () => {
  for (const seed of seeds(6)) {
    await withSeed(DISK, seed, async (net) => {
      const nodes = await addNodes(net, "n", 4, 70);
      for (let i = 0; i < nodes.length; i++) {
        for (let j = i + 1; j < nodes.length; j++) net.addLink(nodes[i], nodes[j]);
      }
      await workload(net, 150, { drop: 0.02, partition: 0.01, restart: 0.02, duplicate: 0.03 });
      // A failed append in receive closes that session ("internal error"); it redials.
      assertConverged(net, {
        close: (close) => close.reason === "internal error",
        log: (message) => message.includes(DISK_ERROR),
      });
    }, { storeFailureRate: 0.02 });
  }
});

const LEGACY_EMPTY =
  "simulation converges: a legacy peer with an empty log gets the hub's operations";

// A legacy peer announces itself with a full bulk, which must be sent even when its log is
// empty; otherwise the v2 side never answers and the legacy peer receives nothing.
Deno.test(LEGACY_EMPTY, async () => {
  await withSeed(LEGACY_EMPTY, 1, async (net) => {
    const hub = await net.addNode("hub", identity(60));
    const legacy = await net.addNode("legacy", identity(61), { legacy: true });
    net.addLink(legacy, hub);
    hub.pipeline.put("s1", { stage: "qa" });
    net.connect(net.links[0]);
    await net.runUntilQuiescent();
    hub.pipeline.move("s1", "done");
    await net.runUntilQuiescent();
    assertConverged(net);
  });
});

/**
 * Fails unless a run with a forked author (`shared`, signing on `copies`)
 * ended as it must once the fork proof reached everyone: every node holds a
 * proof and the same fork point k; the network is quiescent; the honest nodes
 * show the same state hash and clock, and so do the forker's copies; that
 * state is exactly every operation anyone holds minus the forker's from k on
 * (which are quarantined everywhere, never applied); and the forker's later
 * operations change nothing anywhere.
 */
async function assertForkConverged(
  net: SimNetwork,
  honest: readonly SimNode[],
  copies: readonly SimNode[],
  shared: Identity,
  prefix: number,
): Promise<void> {
  const forked = shared.nodeId;
  // 1. Every node holds a valid proof against the forked author, and only that one, at one seq.
  const points = new Set<number>();
  for (const node of net.nodes) {
    const forks = node.replica.forks();
    assert.equal(forks.length, 1, `${node.name} holds ${forks.length} fork proofs`);
    const [proof] = forks;
    assert.equal(proof.author, forked, `${node.name}'s proof names another author`);
    assert.equal(proof.a.author, forked);
    assert.equal(proof.b.author, forked);
    assert.equal(proof.a.seq, proof.seq);
    assert.equal(proof.b.seq, proof.seq);
    assert.notEqual(proof.a.id, proof.b.id);
    assert.equal(node.replica.forkPoint(forked), proof.seq);
    points.add(proof.seq);
  }
  assert.equal(points.size, 1, `nodes disagree on the fork point: ${[...points].join(", ")}`);
  const [point] = points;
  assert.equal(point, prefix + 1, "the fork point is not where the copies diverged");
  for (const close of net.unexpectedCloses) {
    assert.fail(
      `unexpected close on ${close.link} by ${close.closer}: ${close.code} ${close.reason}`,
    );
  }
  // A forked copy that restarts reports its forked key loudly: that ERROR is expected.
  const copyNames = copies.map((copy) => copy.name);
  const expectedError = (log: { node: string; message: string }) =>
    copyNames.includes(log.node) && log.message.includes("this node's own key is forked");
  for (const log of net.logs.filter((l) => l.level === "error" && !expectedError(l))) {
    assert.fail(`error on ${log.node} at t=${log.time}: ${log.message}`);
  }

  // 2. Quiescent, every link live, and the honest nodes identical (state hash, clock, nothing
  //    pending); the forker's copies too, among themselves and with the honest nodes.
  const problems = [...net.divergence(honest), ...net.divergence(copies)];
  const hash = honest[0].replica.stateHash();
  for (const copy of copies) {
    if (copy.replica.stateHash() !== hash) problems.push(`${copy.name}'s document differs`);
  }
  if (problems.length > 0) assert.fail(`nodes did not converge:\n  ${problems.join("\n  ")}`);
  const clock = honest[0].replica.clock();
  assert.equal(
    clock[forked] ?? 0,
    point - 1,
    "the forked author's clock is not its fork point - 1",
  );
  for (const copy of copies) assert.deepEqual(copy.replica.clock(), clock, `${copy.name}'s clock`);

  // 3. The state is every operation held anywhere except the forker's from the fork point on.
  const all = new Map<OpId, Operation>();
  for (const node of net.nodes) {
    for (const op of node.replica.operations()) all.set(op.id, op);
    for (const op of node.replica.quarantined()) all.set(op.id, op);
  }
  const expected = new CrdtDocument();
  let kept = 0;
  for (const op of all.values()) {
    if (op.author === forked && op.seq >= point) continue;
    expected.apply(op);
    kept++;
  }
  assert.equal(hash, expected.stateHash(), "the state is not the operations outside the fork");
  for (let i = 0; i < prefix; i++) {
    assert.equal(
      honest[0].pipeline.get(`p${i}`)?.name,
      `agreed ${i}`,
      "an agreed operation is lost",
    );
  }
  for (const node of net.nodes) {
    assert.equal(node.replica.size, kept, `${node.name} applied ${node.replica.size} of ${kept}`);
    for (const op of node.replica.operations()) {
      assert.ok(op.author !== forked || op.seq < point, `${node.name} applied ${op.id}`);
    }
  }

  // 4. Each copy of the forked key knows its key is forked and refuses new writes: nothing is
  // signed, so nothing changes anywhere.
  for (const copy of copies) {
    assert.ok(copy.replica.isForked(forked), `${copy.name} does not know its key is forked`);
    assert.throws(
      () => copy.replica.commit([{ type: "append", path: ["notes"], value: copy.name }]),
      (error) => error instanceof WriteRefusedError && error.reason === "own-key-forked",
    );
  }
  await net.runUntilQuiescent();
  for (const node of net.nodes) {
    assert.equal(node.replica.stateHash(), hash, `${node.name} changed after the fork`);
    assert.deepEqual(node.replica.clock(), clock, `${node.name}'s clock changed after the fork`);
  }
}

/**
 * Two nodes that sign with one identity, each with its own store: a forked
 * author. The first signs `prefix` operations, which the second starts from
 * (as if restored from a backup); then each signs a different operation at
 * seq `prefix + 1`, before either is connected.
 */
async function addForkedPair(
  net: SimNetwork,
  shared: Identity,
  prefix: number,
): Promise<[SimNode, SimNode]> {
  const f1 = await net.addNode("forkA", shared);
  for (let i = 0; i < prefix; i++) {
    f1.replica.commit([{
      type: "update",
      path: ["items", `p${i}`],
      fields: { name: `agreed ${i}` },
    }]);
  }
  const f2 = await net.addNode("forkB", shared);
  f2.replica.receive(f1.replica.operations());
  f1.pipeline.put("s1", { stage: "coding", agent: "forkA" });
  f2.pipeline.put("s1", { stage: "qa", agent: "forkB" });
  return [f1, f2];
}

const FORK = "simulation converges: honest nodes end identical when an author forks, with faults";

Deno.test(FORK, async () => {
  for (const seed of seeds(8)) {
    await withSeed(FORK, seed, async (net) => {
      const honest = await addNodes(net, "n", 4, 20);
      const shared: Identity = identity(30);
      const prefix = net.rng.int(0, 3);
      const [f1, f2] = await addForkedPair(net, shared, prefix);
      for (let i = 0; i < honest.length; i++) {
        for (let j = i + 1; j < honest.length; j++) net.addLink(honest[i], honest[j]);
      }
      net.addLink(f1, honest[0]);
      net.addLink(f1, honest[1]);
      net.addLink(f2, honest[2]);
      net.addLink(f2, honest[3]);
      await workload(
        net,
        150,
        { drop: 0.03, partition: 0.02, restart: 0.02, duplicate: 0.03 },
        [...honest, f1, f2],
        [f1, f2],
      );
      await assertForkConverged(net, honest, [f1, f2], shared, prefix);
    });
  }
});

const FORK_CALM =
  "simulation converges: honest nodes end identical when an author forks, without faults";

// Each copy of the forked key is linked to a different node of a 4-node mesh, and nothing
// fails: before quarantine, the honest network split for good on every seed.
Deno.test(FORK_CALM, async () => {
  for (const seed of seeds(8)) {
    await withSeed(FORK_CALM, seed, async (net) => {
      const honest = await addNodes(net, "n", 4, 80);
      const shared: Identity = identity(90);
      const prefix = net.rng.int(0, 3);
      const [f1, f2] = await addForkedPair(net, shared, prefix);
      for (let i = 0; i < honest.length; i++) {
        for (let j = i + 1; j < honest.length; j++) net.addLink(honest[i], honest[j]);
      }
      net.addLink(f1, honest[0]);
      net.addLink(f2, honest[1]);
      await workload(
        net,
        150,
        { drop: 0, partition: 0, restart: 0, duplicate: 0 },
        [...honest, f1, f2],
        [f1, f2],
      );
      await assertForkConverged(net, honest, [f1, f2], shared, prefix);
    });
  }
});

Deno.test("simulation replays a seed exactly", async () => {
  const fingerprint = async (seed: number): Promise<string> => {
    const net = new SimNetwork({ seed });
    const nodes = await addNodes(net, "n", 3, 40);
    net.addLink(nodes[0], nodes[1]);
    net.addLink(nodes[1], nodes[2]);
    net.addLink(nodes[2], nodes[0]);
    await workload(net, 60, { drop: 0.05, partition: 0.03, restart: 0.03, duplicate: 0.05 });
    return `${net.summary()} ${nodes[0].replica.stateHash()}`;
  };
  assert.equal(await fingerprint(7), await fingerprint(7));
  assert.notEqual(await fingerprint(7), await fingerprint(8));
});

Deno.test("simulation harness reopens a restarted node from what it persisted", async () => {
  const net = new SimNetwork({ seed: 1 });
  const a = await net.addNode("a", identity(50));
  const b = await net.addNode("b", identity(51));
  const link = net.addLink(a, b);
  net.connect(link);
  a.pipeline.put("s1", { stage: "qa" });
  await net.runUntilQuiescent();
  const before = b.node;
  net.restart(b, 100);
  assert.equal(b.up, false);
  assert.equal(link.connected, false);
  a.pipeline.move("s1", "done");
  await net.runUntilQuiescent();
  assert.ok(b.up);
  assert.notEqual(b.node, before);
  assert.ok(b.node instanceof HuskiesNode);
  assert.ok(b.replica instanceof Replica);
  assert.equal(b.pipeline.get("s1")?.stage, "done");
  assert.deepEqual(net.divergence(), []);
});
