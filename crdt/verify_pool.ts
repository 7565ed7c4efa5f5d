/**
 * Signature verification on Worker threads, so that a node receiving many
 * signed operations uses more than one core. {@link VerifyPool.precheck}
 * sends the signatures a receive would check to the Workers and records each
 * valid one (`signatures.ts`); the receive that follows finds them recorded and
 * checks only the rest on its own thread. {@link PrecheckedQueue} keeps
 * received batches in order while their signatures are checked.
 *
 * The Workers run the same Ed25519 implementation as the native
 * `SignatureVerifier` (`node:crypto`), and the checks before the equation
 * (the pinned key rule, the length, a small-order R) stay on the caller's
 * thread, so a verdict found here is the verdict found there.
 * @module
 */
import { Worker } from "node:worker_threads";
import { fromHex, isHex128, isHex64 } from "../protocol/bytes.ts";
import { ED25519_SPKI_PREFIX_HEX, type SignatureVerifier } from "./identity.ts";
import type { Operation } from "./operation.ts";
import { hasValidSignature, recordVerifiedSignature, signaturesToCheck } from "./signatures.ts";

/** Fewest signatures worth a round trip to the Workers; fewer are checked inline. */
export const POOLED_MIN_SIGNATURES = 16;

/**
 * Most signatures with the Workers at once (about 100 ms of work for two).
 * Measured on two cores (`scripts/RESULTS.md`): 512 left the Workers idle
 * while the caller stored a batch; 4096 kept them busy.
 */
export const MAX_IN_FLIGHT = 4096;

/** Characters per signature sent to a Worker: author, id and signature, in hex. */
const ENTRY_CHARS = 64 + 64 + 128;

/** The Workers' source (CommonJS, evaluated): verdicts for `author|id|sig` entries. */
const WORKER_SOURCE = `
const { parentPort } = require("node:worker_threads");
const { createPublicKey, verify } = require("node:crypto");
const prefix = Buffer.from("${ED25519_SPKI_PREFIX_HEX}", "hex");
const keys = new Map();
function keyOf(author) {
  let key = keys.get(author);
  if (key === undefined) {
    if (keys.size >= 65536) keys.clear();
    const der = Buffer.concat([prefix, Buffer.from(author, "hex")]);
    key = createPublicKey({ key: der, format: "der", type: "spki" });
    keys.set(author, key);
  }
  return key;
}
parentPort.on("message", ({ job, entries }) => {
  const count = entries.length / ${ENTRY_CHARS};
  const verdicts = new Uint8Array(count);
  for (let i = 0; i < count; i++) {
    const at = i * ${ENTRY_CHARS};
    try {
      const id = Buffer.from(entries.slice(at + 64, at + 128), "hex");
      const sig = Buffer.from(entries.slice(at + 128, at + ${ENTRY_CHARS}), "hex");
      verdicts[i] = verify(null, id, keyOf(entries.slice(at, at + 64)), sig) ? 1 : 0;
    } catch {
      verdicts[i] = 0;
    }
  }
  parentPort.postMessage({ job, verdicts }, [verdicts.buffer]);
});
`;

interface Job {
  ops: Operation[];
  done: () => void;
}

/**
 * A fixed number of verification Workers, started on first use. Idle Workers
 * do not keep the process alive; {@link close} stops them.
 */
export class VerifyPool {
  readonly #verifier: SignatureVerifier;
  readonly #size: number;
  readonly #workers: Worker[] = [];
  readonly #jobs = new Map<number, Job>();
  #nextJob = 0;
  #inFlight = 0; // signatures sent and not answered
  #stopped = false;

  /** A pool of `size` Workers for `verifier`'s rule (native engine only; 0 disables it). */
  constructor(verifier: SignatureVerifier, size: number) {
    this.#verifier = verifier;
    this.#size = verifier.engine === "native" ? Math.max(0, Math.floor(size)) : 0;
  }

  /** Number of Workers (0 when the pool checks nothing). */
  get size(): number {
    return this.#stopped ? 0 : this.#size;
  }

  /** True while fewer than {@link MAX_IN_FLIGHT} signatures are with the Workers. */
  get hasRoom(): boolean {
    return this.#inFlight < MAX_IN_FLIGHT;
  }

  /**
   * Checks on the Workers the signatures a receive of `ops` (with or without
   * `amortise`) would check, recording the valid ones. Resolves once every
   * verdict is in (a failed Worker's share stays unrecorded, for the receive
   * to check); `undefined` when fewer than {@link POOLED_MIN_SIGNATURES} need it.
   */
  precheck(ops: readonly Operation[], amortise: boolean): Promise<void> | undefined {
    if (this.size === 0 || ops.length < POOLED_MIN_SIGNATURES) return undefined;
    const sendable = signaturesToCheck(ops, amortise).filter((op) =>
      isHex64(op.id) && isHex128(op.sig) && this.#verifier.mayVerify(op.author, fromHex(op.sig))
    );
    if (sendable.length < POOLED_MIN_SIGNATURES) return undefined;
    this.#start();
    const share = Math.ceil(sendable.length / this.#workers.length);
    const jobs: Promise<void>[] = [];
    for (let w = 0; w * share < sendable.length; w++) {
      jobs.push(this.#post(w, sendable.slice(w * share, (w + 1) * share)));
    }
    return Promise.all(jobs).then(() => {});
  }

  /** Checks here, on this thread, what {@link precheck} would send, recording the valid ones. */
  checkHere(ops: readonly Operation[], amortise: boolean): void {
    for (const op of signaturesToCheck(ops, amortise)) {
      if (hasValidSignature(op, this.#verifier)) recordVerifiedSignature(op);
    }
  }

  /** Stops the Workers; pending prechecks resolve with nothing more recorded. */
  close(): void {
    this.#stopped = true;
    for (const worker of this.#workers) void worker.terminate();
    this.#workers.length = 0;
    this.#settleAll();
  }

  #start(): void {
    while (this.#workers.length < this.#size) {
      const worker = new Worker(WORKER_SOURCE, { eval: true });
      worker.on("message", (answer: { job: number; verdicts: Uint8Array }) => {
        const job = this.#jobs.get(answer.job);
        if (!job) return;
        for (let i = 0; i < job.ops.length; i++) {
          if (answer.verdicts[i] === 1) recordVerifiedSignature(job.ops[i]);
        }
        this.#finish(answer.job);
      });
      // A Worker that fails ends the pool: what it held is checked by the receives themselves.
      worker.on("error", () => this.close());
      worker.unref();
      this.#workers.push(worker);
    }
  }

  #post(index: number, ops: Operation[]): Promise<void> {
    const job = this.#nextJob++;
    const done = Promise.withResolvers<void>();
    this.#jobs.set(job, { ops, done: done.resolve });
    this.#inFlight += ops.length;
    if (this.#jobs.size === 1) { for (const worker of this.#workers) worker.ref(); }
    const entries = ops.map((op) => op.author + op.id + op.sig).join("");
    this.#workers[index % this.#workers.length].postMessage({ job, entries });
    return done.promise;
  }

  #finish(job: number): void {
    const held = this.#jobs.get(job);
    if (!held) return;
    this.#inFlight -= held.ops.length;
    this.#jobs.delete(job);
    held.done();
    if (this.#jobs.size === 0) { for (const worker of this.#workers) worker.unref(); }
  }

  #settleAll(): void {
    for (const job of [...this.#jobs.keys()]) this.#finish(job);
  }
}

/** How much a {@link PrecheckedQueue} holds while signatures are checked. */
export interface PrecheckLimits {
  /** Past this many bytes waiting, the caller's thread checks signatures too (the newest first). */
  softBytes: number;
  /** Past this many bytes waiting, everything waiting is applied at once. */
  hardBytes: number;
}

/** The limits a session's inbound frames wait under (its frames are at most 1 MiB by default). */
export const DEFAULT_PRECHECK_LIMITS: PrecheckLimits = { softBytes: 256 << 10, hardBytes: 8 << 20 };

interface Waiting<T> {
  item: T;
  ops: readonly Operation[];
  amortise: boolean;
  bytes: number;
  state: "unchecked" | "checking" | "ready";
}

/**
 * Applies items (received batches) in the order they were pushed, each once
 * its signatures are prechecked by a {@link VerifyPool} (at once when it needs
 * none). Prechecks run for the oldest items first, as far as the pool has room
 * and {@link PrecheckLimits.softBytes} allows; an item reached before it could
 * start one is applied as it is, its receive checking the signatures itself.
 * So a peer sending faster than the node verifies makes it check inline again,
 * holding little more than the soft limit here (never more than the hard one).
 */
export class PrecheckedQueue<T> {
  readonly #pool: VerifyPool;
  readonly #apply: (item: T) => void;
  readonly #limits: PrecheckLimits;
  readonly #waiting: Waiting<T>[] = [];
  #waitingBytes = 0;
  #pumping = false;

  /** Applies through `apply`, prechecking on `pool`. */
  constructor(
    pool: VerifyPool,
    apply: (item: T) => void,
    limits: PrecheckLimits = DEFAULT_PRECHECK_LIMITS,
  ) {
    this.#pool = pool;
    this.#apply = apply;
    this.#limits = limits;
  }

  /** Items not applied yet. */
  get waiting(): number {
    return this.#waiting.length;
  }

  /** Queues `item` (`bytes` long), whose receive checks the signatures of `ops`. */
  push(item: T, ops: readonly Operation[], amortise: boolean, bytes: number): void {
    this.#waiting.push({ item, ops, amortise, bytes, state: "unchecked" });
    this.#waitingBytes += bytes;
    this.#pump();
  }

  #pump(): void {
    if (this.#pumping) return; // an apply pushed more: the running loop takes it
    this.#pumping = true;
    try {
      for (;;) {
        const over = this.#waitingBytes > this.#limits.hardBytes;
        for (const entry of this.#waiting) {
          if (over) entry.state = "ready";
          else if (!this.#pool.hasRoom) break;
          else if (entry.state === "unchecked") this.#precheck(entry);
        }
        const head = this.#waiting[0];
        if (head === undefined) return;
        if (head.state !== "checking") {
          this.#waiting.shift();
          this.#waitingBytes -= head.bytes;
          this.#apply(head.item);
          continue;
        }
        // The head waits on the Workers. With a backlog, check the newest item here meanwhile:
        // this thread then verifies too, and reads no more frames until it is done.
        if (this.#waitingBytes <= this.#limits.softBytes) return;
        const newest = this.#waiting.findLast((entry) => entry.state === "unchecked");
        if (newest === undefined) return;
        this.#pool.checkHere(newest.ops, newest.amortise);
        newest.state = "ready";
        return;
      }
    } finally {
      this.#pumping = false;
    }
  }

  #precheck(entry: Waiting<T>): void {
    const checked = this.#pool.precheck(entry.ops, entry.amortise);
    if (checked === undefined) {
      entry.state = "ready";
      return;
    }
    entry.state = "checking";
    checked.then(() => {
      entry.state = "ready";
      this.#pump();
    });
  }
}
