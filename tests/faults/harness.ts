/**
 * The fault suite's harness: real `huskies serve` processes in temp data
 * folders, writes through the admin API that `huskies item put` uses (every
 * ACKNOWLEDGED write is recorded), process kills, store damage (a truncated
 * write-ahead log, an older `ops.db` restored), bounded waits for
 * convergence, and the checks the suite makes: no acknowledged write lost,
 * no fork, a healthy peer's operation count never goes down.
 *
 * Nothing here re-implements node behaviour: nodes are observed from
 * outside, through `serve.json`, `admin.token` and the admin API, as the CLI
 * does.
 * @module
 */
import { join } from "node:path";
import { huskies, ServeProcess } from "../cli_helpers.ts";

/** A node's status as the admin API reports it (the fields the suite reads). */
export interface NodeStatusView {
  /** The node id. */
  nodeId: string;
  /** Operations held. */
  operations: number;
  /** Hash of the visible state (issue 9: `status --json` reports it). */
  stateHash?: string;
  /** Authors caught signing two operations at one position. */
  forks: string[];
  /** Live sessions. */
  peers: { peer: string; state: string }[];
}

/** The outcome of one write. */
export interface WriteOutcome {
  /** True when the node acknowledged it (HTTP 2xx). */
  ok: boolean;
  /** HTTP status, or 0 when the node could not be reached. */
  status: number;
  /** The node's message for a refusal. */
  message?: string;
}

/** Resolves after `ms` (for pacing loops, never to wait for an outcome). */
export function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Polls `probe` until it returns something other than `undefined`; throws
 * after `timeoutMs`, naming `what` and the last probe error.
 */
export async function until<T>(
  what: string,
  probe: () => Promise<T | undefined> | T | undefined,
  timeoutMs: number,
  intervalMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() >= deadline) {
      throw new Error(
        `Timed out after ${timeoutMs} ms waiting for ${what}` +
          (last ? ` (last error: ${(last as Error).message})` : ""),
      );
    }
    await pause(intervalMs);
  }
}

/** A `huskies serve` node in its own data folder, started, killed and restarted by the suite. */
export class ServeNode {
  /** A short name for messages. */
  readonly name: string;
  /** The data folder. */
  readonly dataDir: string;
  /** The node id (from `keys export-public`). */
  nodeId = "";
  /** The port, fixed after the first start so peers can redial the same URL. */
  port = 0;
  #process: ServeProcess | undefined;
  #admin: { url: string; token: string } | undefined;
  #lastArgs: string[] = [];

  private constructor(name: string, dataDir: string) {
    this.name = name;
    this.dataDir = dataDir;
  }

  /** Creates the data folder and its key (`huskies keys create`). */
  static async create(root: string, name: string): Promise<ServeNode> {
    const node = new ServeNode(name, join(root, name));
    await Deno.mkdir(node.dataDir, { recursive: true });
    const created = await huskies(["keys", "create", "--data-dir", node.dataDir]);
    if (created.code !== 0) throw new Error(`keys create failed: ${created.stderr}`);
    const id = await huskies(["keys", "export-public", "--data-dir", node.dataDir]);
    if (id.code !== 0) throw new Error(`keys export-public failed: ${id.stderr}`);
    node.nodeId = id.stdout.trim();
    return node;
  }

  /** Writes `project.toml` trusting `keys` with write scope (documented configuration). */
  async trust(keys: string[]): Promise<void> {
    const list = keys.map((key) => `"${key}"`).join(", ");
    await Deno.writeTextFile(join(this.dataDir, "project.toml"), `trusted_keys = [${list}]\n`);
  }

  /** The sync URL (valid once started). */
  get syncUrl(): string {
    return `ws://127.0.0.1:${this.port}/crdt-sync`;
  }

  /** Whether the process runs. */
  get running(): boolean {
    return this.#process !== undefined;
  }

  /** Standard error of the current process (its log). */
  get log(): string {
    return this.#process?.stderr ?? "";
  }

  /**
   * Starts `huskies serve` (on the same port as before, or a free one the
   * first time) with `args` (the last ones when omitted) and waits for its
   * banner and `serve.json`.
   */
  async start(args?: string[]): Promise<void> {
    if (this.#process) throw new Error(`${this.name} is already running`);
    if (args) this.#lastArgs = args;
    const listen = `127.0.0.1:${this.port}`;
    const process = await ServeProcess.start([
      "--data-dir",
      this.dataDir,
      "--listen",
      listen,
      ...this.#lastArgs,
    ]);
    this.#process = process;
    this.port = Number(new URL(process.statusUrl).port);
    this.#admin = undefined;
    await until(`${this.name}'s admin API`, () => this.#adminInfo(), 10_000);
  }

  /** `kill -9`: no chance to flush or close anything. */
  async kill9(): Promise<void> {
    const process = this.#take();
    if (process) await process.kill();
  }

  /** SIGTERM: the node closes its sessions and store and exits. */
  async terminate(): Promise<number> {
    const process = this.#take();
    if (!process) return 0;
    return await process.stop("SIGTERM");
  }

  #take(): ServeProcess | undefined {
    const process = this.#process;
    this.#process = undefined;
    this.#admin = undefined;
    return process;
  }

  async #adminInfo(): Promise<{ url: string; token: string } | undefined> {
    if (this.#admin) return this.#admin;
    const info = JSON.parse(await Deno.readTextFile(join(this.dataDir, "serve.json")));
    const token = (await Deno.readTextFile(join(this.dataDir, "admin.token"))).trim();
    if (typeof info.adminUrl !== "string" || !token) return undefined;
    this.#admin = { url: info.adminUrl, token };
    return this.#admin;
  }

  /** Calls the admin API; throws when the node cannot be reached. */
  async #call(method: string, path: string, body?: unknown): Promise<Response> {
    const admin = await this.#adminInfo();
    if (!admin) throw new Error(`${this.name} has no admin API`);
    try {
      return await fetch(new URL(path, admin.url), {
        method,
        headers: {
          authorization: `Bearer ${admin.token}`,
          ...(body === undefined ? {} : { "content-type": "application/json" }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(10_000),
      });
    } catch (error) {
      this.#admin = undefined; // A restarted node has a new token: read the files again.
      throw error;
    }
  }

  /** Puts item `id` with `name`, as `huskies item put ID --name NAME` does. */
  async put(id: string, name: string): Promise<WriteOutcome> {
    let response: Response;
    try {
      response = await this.#call("PUT", `/admin/item?id=${encodeURIComponent(id)}`, { name });
    } catch {
      return { ok: false, status: 0 };
    }
    const text = await response.text();
    if (response.ok) return { ok: true, status: response.status };
    if (response.status === 403) this.#admin = undefined; // A stale token: read the files again.
    let message = text;
    try {
      const parsed = JSON.parse(text).error;
      message = typeof parsed === "string" ? parsed : parsed?.message ?? text;
    } catch {
      // Not JSON: keep the text.
    }
    return { ok: false, status: response.status, message };
  }

  /** The node's status (`huskies status --json` reads the same). */
  async status(): Promise<NodeStatusView> {
    const response = await this.#call("GET", "/admin/status");
    if (!response.ok) throw new Error(`${this.name}: status HTTP ${response.status}`);
    return await response.json();
  }

  /** Every item as story id -> name. */
  async items(): Promise<Map<string, string>> {
    const response = await this.#call("GET", "/admin/items");
    if (!response.ok) throw new Error(`${this.name}: items HTTP ${response.status}`);
    const list = await response.json() as Record<string, unknown>[];
    // The library's field is story_id; the CLI's JSON convention may name it storyId.
    return new Map(list.map((item) => [String(item.story_id ?? item.storyId), String(item.name)]));
  }

  /** Runs a `huskies` command against this node's data folder. */
  cli(args: string[]): ReturnType<typeof huskies> {
    return huskies([...args, "--data-dir", this.dataDir]);
  }

  /** Stops the process if it still runs (for finally blocks). */
  async dispose(): Promise<void> {
    await this.#take()?.kill();
  }
}

/**
 * Writers hammering one node through the admin API. Only writes the node
 * acknowledged are recorded; refusals are counted by status. Item ids are
 * unique, so each acknowledged write names one item and its value.
 */
export class WriteLoad {
  /** Acknowledged writes: story id -> name. */
  readonly acked = new Map<string, string>();
  /** Refused or failed writes by HTTP status (0: node unreachable). */
  readonly refused = new Map<number, number>();
  /** A sample refusal message per status. */
  readonly messages = new Map<number, string>();
  #target: ServeNode;
  #next = 0;
  #stopped = false;
  readonly #workers: Promise<void>[] = [];
  readonly #prefix: string;
  #waiters: { count: number; wake: () => void }[] = [];

  /** Starts `concurrency` writers on `target`. */
  constructor(target: ServeNode, prefix: string, concurrency = 4) {
    this.#target = target;
    this.#prefix = prefix;
    for (let i = 0; i < concurrency; i++) this.#workers.push(this.#work());
  }

  async #work(): Promise<void> {
    while (!this.#stopped) {
      const n = this.#next++;
      const id = `${this.#prefix}-${n}`;
      const name = `value ${n}`;
      const outcome = await this.#target.put(id, name);
      if (outcome.ok) {
        this.acked.set(id, name);
        this.#waiters = this.#waiters.filter((w) => this.acked.size < w.count || (w.wake(), false));
      } else {
        this.refused.set(outcome.status, (this.refused.get(outcome.status) ?? 0) + 1);
        if (outcome.message) this.messages.set(outcome.status, outcome.message);
        await pause(5); // A node that is down or refusing: do not spin.
      }
    }
  }

  /** Waits until `count` writes in all were acknowledged; throws after `timeoutMs`. */
  async acknowledged(count: number, timeoutMs: number): Promise<void> {
    if (this.acked.size >= count) return;
    const { promise, resolve } = Promise.withResolvers<void>();
    this.#waiters.push({ count, wake: resolve });
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() =>
        reject(
          new Error(
            `only ${this.acked.size} of ${count} writes acknowledged within ${timeoutMs} ms ` +
              `(refused: ${JSON.stringify([...this.refused])}, ${
                JSON.stringify([...this.messages])
              })`,
          ),
        ), timeoutMs);
    });
    try {
      await Promise.race([promise, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Stops the writers and waits for writes in flight. */
  async stop(): Promise<void> {
    this.#stopped = true;
    await Promise.all(this.#workers);
  }
}

/** Polls a node's operation count while it runs and records every decrease. */
export class OperationCountMonitor {
  /** Decreases seen: from, to. */
  readonly decreases: { from: number; to: number }[] = [];
  /** The highest count seen. */
  highest = 0;
  /** The lowest count seen after the highest (for reports). */
  lowestAfterHighest = Infinity;
  #stopped = false;
  readonly #loop: Promise<void>;

  /** Starts polling `node` every `intervalMs` (a stopped node is skipped). */
  constructor(node: ServeNode, intervalMs = 100) {
    this.#loop = (async () => {
      while (!this.#stopped) {
        if (node.running) {
          try {
            this.record((await node.status()).operations);
          } catch {
            // Stopped in between: nothing to record.
          }
        }
        await pause(intervalMs);
      }
    })();
  }

  /** Records one observed count. */
  record(count: number): void {
    if (count < this.highest) {
      this.decreases.push({ from: this.highest, to: count });
      this.lowestAfterHighest = Math.min(this.lowestAfterHighest, count);
    }
    this.highest = Math.max(this.highest, count);
  }

  /** Stops polling. */
  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#loop;
  }
}

/** What {@link waitConverged} saw when every node agreed. */
export interface Converged {
  /** Operations each node holds. */
  operations: number;
  /** The common state hash, when the nodes report one. */
  stateHash?: string;
  /** The common items. */
  items: Map<string, string>;
  /** Each node's status at that moment. */
  statuses: NodeStatusView[];
}

function sameItems(a: Map<string, string>, b: Map<string, string>): boolean {
  if (a.size !== b.size) return false;
  for (const [id, name] of a) if (b.get(id) !== name) return false;
  return true;
}

/**
 * Waits until every node holds the same number of operations, reports the
 * same state hash and shows the same items; throws after `timeoutMs` with
 * what each node held last.
 */
export async function waitConverged(nodes: ServeNode[], timeoutMs: number): Promise<Converged> {
  let last = "";
  try {
    return await until(
      "convergence",
      async () => {
        const statuses = await Promise.all(nodes.map((node) => node.status()));
        const items = await Promise.all(nodes.map((node) => node.items()));
        last = nodes.map((node, i) =>
          `${node.name}: ${statuses[i].operations} ops, ${items[i].size} items, hash ${
            statuses[i].stateHash ?? "-"
          }, forks ${statuses[i].forks.length}`
        ).join("; ");
        const [first] = statuses;
        const agree = statuses.every((s, i) =>
          s.operations === first.operations && s.stateHash === first.stateHash &&
          sameItems(items[i], items[0])
        );
        return agree
          ? { operations: first.operations, stateHash: first.stateHash, items: items[0], statuses }
          : undefined;
      },
      timeoutMs,
      100,
    );
  } catch (error) {
    throw new Error(`${(error as Error).message}; last seen: ${last}`);
  }
}

/** Acknowledged writes missing (or with another value) on `node`. */
export async function lostWrites(
  node: ServeNode,
  acked: Map<string, string>,
): Promise<string[]> {
  const items = await node.items();
  return [...acked].filter(([id, name]) => items.get(id) !== name).map(([id]) => id);
}

/**
 * Cuts the store's write-ahead log in the middle of its current generation: the frames written
 * since the log last started over (a log is reused from its start once checkpointed, so its file
 * may hold older frames past them), cut at the start of the frame halfway through them, so the
 * later half of the last transactions is gone, as when a log's tail never reached the disk.
 * Returns the bytes cut.
 */
export async function truncateWal(dataDir: string): Promise<number> {
  const wal = join(dataDir, "ops.db-wal");
  const bytes = await Deno.readFile(wal);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const HEADER = 32;
  const FRAME_HEADER = 24;
  const pageSize = view.getUint32(8);
  const salts = [view.getUint32(16), view.getUint32(20)];
  const frameBytes = FRAME_HEADER + pageSize;
  let frames = 0; // frames of the current generation: they carry the header's salts
  while (HEADER + (frames + 1) * frameBytes <= bytes.length) {
    const at = HEADER + frames * frameBytes;
    if (view.getUint32(at + 8) !== salts[0] || view.getUint32(at + 12) !== salts[1]) break;
    frames++;
  }
  if (frames < 2) {
    throw new Error(`Cannot cut the log: its current generation has ${frames} frames`);
  }
  const keep = HEADER + Math.floor(frames / 2) * frameBytes;
  await Deno.truncate(wal, keep);
  // The shared-memory index describes the old log; SQLite rebuilds it from the log.
  await Deno.remove(join(dataDir, "ops.db-shm")).catch(() => {});
  return bytes.length - keep;
}

/** Copies `ops.db` (of a stopped node, so it is self-contained) to `backup`. */
export async function backupStore(dataDir: string, backup: string): Promise<void> {
  await Deno.copyFile(join(dataDir, "ops.db"), backup);
}

/** Puts an older copy of `ops.db` back, as an operator restoring a backup would. */
export async function restoreStore(dataDir: string, backup: string): Promise<void> {
  for (const name of ["ops.db-wal", "ops.db-shm"]) {
    await Deno.remove(join(dataDir, name)).catch(() => {});
  }
  await Deno.copyFile(backup, join(dataDir, "ops.db"));
}

/** Operations in a stopped node's store, counted by `huskies verify --json`. */
export async function storedOperations(node: ServeNode): Promise<number> {
  const result = await node.cli(["verify", "--json"]);
  try {
    return JSON.parse(result.stdout).operations;
  } catch {
    throw new Error(`verify --json gave no report (exit ${result.code}): ${result.stderr}`);
  }
}

/** Median of numbers (0 for none). */
export function median(values: number[]): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** The most values that fall within any window of `widthMs`. */
export function busiestWindow(times: number[], widthMs: number): number {
  const sorted = [...times].sort((a, b) => a - b);
  let best = 0;
  let start = 0;
  for (let end = 0; end < sorted.length; end++) {
    while (sorted[end] - sorted[start] >= widthMs) start++;
    best = Math.max(best, end - start + 1);
  }
  return best;
}

/** Prints one figure line of the suite's report (collected from the test output). */
export function figure(text: string): void {
  console.log(`FIGURE ${text}`);
}
