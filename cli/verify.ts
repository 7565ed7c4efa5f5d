/**
 * `huskies verify`: re-checks a data folder's store offline, read-only. For
 * every stored operation, in insertion order: its id is the hash of its
 * content, its signature is valid, and it meets the log's chain rules
 * (`crdt/chain_check.ts`: seq follows, prev matches, time increases, each
 * dependency stored before it). Forks are findings, handled as the log
 * handles them. {@link StoreChecker} is pure.
 * @module
 */
import { join } from "node:path";
import { type ChainTail, checkChain, describeVerdict } from "../crdt/chain_check.ts";
import { isValidForkProof } from "../crdt/forks.ts";
import { SignatureVerifier } from "../crdt/identity.ts";
import { hasValidId, type Operation } from "../crdt/operation.ts";
import { verifyOperation } from "../crdt/signatures.ts";
import { SqliteStore, StoreCorruptError, StoreLockedError } from "../crdt/sqlite_store.ts";
import type { ForkProof } from "../crdt/store.ts";
import { STORE_FILE_NAME } from "../data_dir.ts";
import { KeyFileError, readIdentity } from "../auth/keystore.ts";
import { type Command, DATA_DIR_OPTION, flagOption, JSON_OPTION } from "./args.ts";
import { locate } from "./config.ts";
import { CliError, ExitCode } from "./errors.ts";
import { shellQuote, shortId } from "./format.ts";
import { toJsonText, verifyReportJson } from "./json.ts";

/** How many problems the text output lists. */
export const LISTED_PROBLEMS = 20;
/** How many problems are kept at most (the count goes on). */
export const KEPT_PROBLEMS = 10_000;

/** One problem found in the store. */
export interface VerifyProblem {
  /** 1-based position in insertion order (0 for problems not tied to a row). */
  row: number;
  /** The operation id as stored (empty when unknown). */
  opId: string;
  /** What is wrong. */
  problem: string;
}

/**
 * A fork found in the store: its author signed two operations at one
 * position. Not damage: the store holds the evidence, and the author's
 * operations from `seq` on are quarantined, as the node does.
 */
export interface VerifyFork {
  /** The equivocating author. */
  author: string;
  /** Its fork point: the lowest position with two signed operations. */
  seq: number;
  /** True when the author is this node's own key (node.key): the key is in use elsewhere. */
  ownKey: boolean;
}

/** Per-author chain state: the agreed chain (below any fork point) as tails by seq. */
interface AuthorChain {
  agreed: ChainTail[];
  forkPoint?: number;
}

/**
 * Re-checks operations one at a time, in insertion order, with the log's own
 * chain rules (`crdt/chain_check.ts`), and treats forks as the log does: a
 * second validly signed operation at a position of an author's agreed chain
 * is a fork (a finding, from that seq on the author's operations are
 * quarantined and only their ids and signatures are checked), not damage.
 * Pure apart from signature checks.
 */
export class StoreChecker {
  readonly #verifier: SignatureVerifier;
  /** Lamport time of every stored operation, by id. */
  readonly #times = new Map<string, number>();
  readonly #chains = new Map<string, AuthorChain>();
  #rows = 0;
  #quarantined = 0;

  /** Creates a checker; `verifier` checks signatures. */
  constructor(verifier: SignatureVerifier = new SignatureVerifier()) {
    this.#verifier = verifier;
  }

  /** Operations checked so far. */
  get rows(): number {
    return this.#rows;
  }

  /** Distinct authors seen so far. */
  get authors(): number {
    return this.#chains.size;
  }

  /** Operations checked as quarantined (a forked author's, at or after its fork point). */
  get quarantined(): number {
    return this.#quarantined;
  }

  /** Author -> fork point, for every fork known (from proofs or found among the rows). */
  forkPoints(): Map<string, number> {
    const points = new Map<string, number>();
    for (const [author, chain] of this.#chains) {
      if (chain.forkPoint !== undefined) points.set(author, chain.forkPoint);
    }
    return points;
  }

  #chain(author: string): AuthorChain {
    let chain = this.#chains.get(author);
    if (!chain) this.#chains.set(author, chain = { agreed: [] });
    return chain;
  }

  #fork(author: string, seq: number): void {
    const chain = this.#chain(author);
    if (chain.forkPoint !== undefined && chain.forkPoint <= seq) return;
    chain.forkPoint = seq;
    if (chain.agreed.length >= seq) {
      this.#quarantined += chain.agreed.length - (seq - 1);
      chain.agreed.length = seq - 1;
    }
  }

  /**
   * Records a stored fork proof (call before the first {@link check}, as the
   * node loads proofs first). Returns a problem when the proof is not valid.
   */
  addForkProof(proof: ForkProof): string | undefined {
    if (!isValidForkProof(proof, this.#verifier)) {
      return `the fork proof of author ${shortId(proof.author)} is not valid`;
    }
    this.#fork(proof.author, proof.seq);
    return undefined;
  }

  /** Checks the next stored operation and returns its problems (none when it is sound). */
  check(op: Operation): VerifyProblem[] {
    const row = ++this.#rows;
    const problems: VerifyProblem[] = [];
    const report = (problem: string) => problems.push({ row, opId: op.id, problem });
    let signed = false;
    if (this.#times.has(op.id)) {
      report("the operation is stored twice");
      return problems;
    }
    if (!hasValidId(op)) {
      report("id does not match the operation's content (the row was altered or damaged)");
    } else if (!verifyOperation(op, this.#verifier)) {
      report(`signature is not valid for author ${shortId(op.author)}`);
    } else signed = true;
    this.#times.set(op.id, op.time);
    const chain = this.#chain(op.author);
    if (chain.forkPoint !== undefined && op.seq >= chain.forkPoint) {
      this.#quarantined++;
      return problems;
    }
    const tail = chain.agreed[chain.agreed.length - 1];
    const verdict = checkChain(op, tail, (id) => this.#times.get(id));
    switch (verdict.kind) {
      case "ready":
        chain.agreed.push({ id: op.id, seq: op.seq, time: op.time });
        break;
      case "taken":
        if (signed) {
          // A second signed operation at a position of the agreed chain: a fork, as the log sees it.
          this.#fork(op.author, op.seq);
          this.#quarantined++;
        } else {
          report(`position ${op.seq} of author ${shortId(op.author)} is already taken`);
        }
        break;
      case "waiting":
        if (verdict.what === "dependency") {
          report(`dependency ${shortId(verdict.on)} is not stored before it`);
        } else if (op.seq !== (tail?.seq ?? 0) + 1) {
          report(
            tail
              ? `seq ${op.seq} does not follow the author's previous stored seq ${tail.seq}`
              : `seq ${op.seq} is the author's first stored operation (expected seq 1)`,
          );
        } else {
          report(
            `prev ${shortId(String(op.prev))} is not the author's previous stored operation ` +
              shortId(tail!.id),
          );
        }
        break;
      case "broken":
        report(describeVerdict(op, verdict));
        break;
    }
    return problems;
  }
}

/** Renders a progress bar line such as `[#####-----]  50%  500/1000` (pure). */
export function renderProgress(done: number, total: number, width = 30): string {
  const fraction = total > 0 ? Math.min(1, done / total) : 1;
  const filled = Math.round(fraction * width);
  const percent = String(Math.floor(fraction * 100)).padStart(3);
  return `verifying [${"#".repeat(filled)}${
    "-".repeat(width - filled)
  }] ${percent}%  ${done}/${total}`;
}

/** The result of a verification run. */
export interface VerifyReport {
  /** The store file. */
  store: string;
  /** Operations checked. */
  operations: number;
  /** Distinct authors. */
  authors: number;
  /** Problems found (at most {@link KEPT_PROBLEMS}). */
  problems: VerifyProblem[];
  /** Number of problems found. */
  problemCount: number;
  /** Forks found (recorded proofs, or two signed operations at one position): findings, not damage. */
  forks: VerifyFork[];
  /** Operations held in quarantine (forked authors' from their fork point on). */
  quarantined: number;
  /** This node's id (from node.key), or null when the folder has no readable key file. */
  nodeId: string | null;
  /** True when this node's own key is forked: exit code {@link ExitCode.OWN_KEY_FORKED}. */
  ownKeyForked: boolean;
  /**
   * Set when the store holds fewer of this node's own operations than its
   * own-head record (`ops.db-head`) says it signed: lost history. The node
   * refuses writes until peers send them back.
   */
  lostOwnHistory: { recorded: number; held: number } | null;
  /** Why the store could not be read at all (then nothing was checked), or null. */
  unreadable: string | null;
  /** True when checking stopped early (a row could not be read). */
  incomplete: boolean;
  /** Seconds taken. */
  seconds: number;
}

/** `n word` or `n words` (pure). */
function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

/** Formats a report as text (pure). */
export function formatReport(report: VerifyReport): string {
  const lines: string[] = [];
  const scope = `${plural(report.operations, "operation")} from ${
    plural(report.authors, "author")
  } in ${report.seconds.toFixed(2)} s`;
  if (report.unreadable !== null) {
    lines.push(`FAILED: the store could not be read, nothing was checked: ${report.unreadable}`);
  } else if (report.problemCount === 0) {
    lines.push(`OK: verified ${scope}; no problems found.`);
  } else {
    lines.push(
      `FAILED: ${plural(report.problemCount, "problem")} in ${scope}` +
        (report.incomplete ? " (stopped early: a row could not be read)" : "") + ":",
    );
    for (const p of report.problems.slice(0, LISTED_PROBLEMS)) {
      lines.push(`  row ${p.row}${p.opId ? ` op ${shortId(p.opId)}` : ""}: ${p.problem}`);
    }
    if (report.problemCount > LISTED_PROBLEMS) {
      lines.push(`  ... and ${report.problemCount - LISTED_PROBLEMS} more (use --json for all)`);
    }
  }
  if (report.forks.length > 0) {
    lines.push(
      `Forks: ${plural(report.forks.length, "author")} signed two operations at one position ` +
        `(${report.forks.map((f) => `${shortId(f.author)} at seq ${f.seq}`).join(", ")}). ` +
        `The store holds the evidence and ${
          plural(report.quarantined, "quarantined operation")
        }; ` +
        "this is a finding about those authors, not damage to the store.",
    );
  }
  if (report.ownKeyForked) {
    const own = report.forks.find((f) => f.ownKey)!;
    lines.push(
      `WARNING: this node's OWN key ${shortId(own.author)} is forked at seq ${own.seq}: ` +
        "another process or machine signed with this node.key. Stop every copy of this key " +
        "but one, then give the others a new key (`huskies keys create --force`). Peers " +
        "quarantine this key's operations from the fork point on, and the node refuses writes.",
    );
  }
  if (report.lostOwnHistory !== null) {
    const { recorded, held } = report.lostOwnHistory;
    lines.push(
      `WARNING: the store holds ${held} of this node's own operations but its record ` +
        `(ops.db-head) says it signed ${recorded}: recent writes were lost or an older store ` +
        "was restored. The node refuses writes until its peers send them back.",
    );
  }
  return lines.join("\n");
}

/** The node id from `dataDir`'s key file, or null when there is none or it cannot be read. */
async function ownNodeId(dataDir: string): Promise<string | null> {
  try {
    return (await readIdentity(dataDir)).nodeId;
  } catch (error) {
    if (error instanceof KeyFileError) return null;
    throw error;
  }
}

/**
 * Verifies the store of `dataDir`, opened read-only (verify never writes, so
 * a read-only folder or a copy works); `onProgress` is called now and then.
 */
export async function verifyStore(
  dataDir: string,
  onProgress?: (done: number, total: number) => void,
): Promise<VerifyReport> {
  const path = join(dataDir, STORE_FILE_NAME);
  try {
    if (!Deno.statSync(path).isFile) throw new Deno.errors.NotFound(path);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
    throw new CliError(
      ExitCode.NOT_FOUND,
      `Cannot verify data folder ${dataDir}: it has no store (${path} does not exist)`,
    );
  }
  const started = performance.now();
  const nodeId = await ownNodeId(dataDir);
  const report: VerifyReport = {
    store: path,
    operations: 0,
    authors: 0,
    problems: [],
    problemCount: 0,
    forks: [],
    quarantined: 0,
    nodeId,
    ownKeyForked: false,
    lostOwnHistory: null,
    unreadable: null,
    incomplete: false,
    seconds: 0,
  };
  const rowsWithProblems = new Set<number>();
  const add = (problem: VerifyProblem) => {
    rowsWithProblems.add(problem.row);
    report.problemCount++;
    if (report.problems.length < KEPT_PROBLEMS) report.problems.push(problem);
  };
  let store: SqliteStore;
  try {
    store = SqliteStore.open(path, { readOnly: true });
  } catch (error) {
    if (error instanceof StoreLockedError) {
      throw new CliError(
        ExitCode.LOCKED,
        `Cannot verify data folder ${dataDir}: its store is locked by a running node`,
        { cause: error, hint: "Stop `huskies serve` for this folder first: verify works offline." },
      );
    }
    if (!(error instanceof StoreCorruptError)) throw error;
    report.unreadable = error.message;
    report.problemCount = 1;
    report.incomplete = true;
    report.seconds = (performance.now() - started) / 1000;
    return report;
  }
  const checker = new StoreChecker();
  try {
    try {
      for (const proof of store.loadForks()) {
        const problem = checker.addForkProof(proof);
        if (problem) add({ row: 0, opId: "", problem });
      }
    } catch (error) {
      if (!(error instanceof StoreCorruptError)) throw error;
      add({ row: 0, opId: "", problem: error.message });
    }
    const total = store.count();
    const record = store.loadOwnHead();
    let ownHeld = 0;
    let lastReport = 0;
    onProgress?.(0, total);
    try {
      for (const op of store.load()) {
        for (const problem of checker.check(op)) add(problem);
        if (op.author === nodeId && op.seq > ownHeld) ownHeld = op.seq;
        const now = performance.now();
        if (onProgress && now - lastReport > 100) {
          lastReport = now;
          onProgress(checker.rows, total);
        }
      }
    } catch (error) {
      if (!(error instanceof StoreCorruptError)) throw error;
      add({ row: checker.rows + 1, opId: "", problem: error.message });
      report.incomplete = true;
    }
    if (!report.incomplete) {
      // A row whose content was found altered needs no second report for its index.
      for (const { row, id, problem } of store.indexProblems()) {
        if (!rowsWithProblems.has(row)) add({ row, opId: id, problem });
      }
    }
    onProgress?.(checker.rows, Math.max(total, checker.rows));
    if (record !== null && record.author === nodeId && record.seq > ownHeld) {
      report.lostOwnHistory = { recorded: record.seq, held: ownHeld };
    }
  } finally {
    store.close();
  }
  for (const [author, seq] of checker.forkPoints()) {
    report.forks.push({ author, seq, ownKey: author === nodeId });
  }
  report.ownKeyForked = report.forks.some((fork) => fork.ownKey);
  report.operations = checker.rows;
  report.authors = checker.authors;
  report.quarantined = checker.quarantined;
  report.seconds = (performance.now() - started) / 1000;
  return report;
}

/** The `verify` command. */
export const verifyCommand: Command = {
  path: ["verify"],
  summary: "re-check every stored operation (offline; the node must be stopped)",
  description: `
Opens the data folder's store read-only and re-checks every operation with the
node's own rules: its id (the hash of its content), its signature, its author's
chain (seq 1, 2, 3, ... with no gaps; prev = the author's previous operation;
time increasing), that each dependency was stored before it, and that the
columns the node loads at start-up (author, seq, prev, time, deps, size) agree
with the operation. Forks (an
author that signed two operations at one position) are reported as findings,
not damage: from the fork point on that author's operations are quarantined and
only their ids and signatures are checked. Shows a progress bar when standard
error is a terminal.
Exit code 0 when the store is sound, 9 when problems were found (the first
${LISTED_PROBLEMS} are listed with row number, operation id and what is wrong),
${ExitCode.OWN_KEY_FORKED} when the store is sound but this node's OWN key (node.key) is forked,
5 when a running node holds the store, 3 when there is no store.`,
  options: { ...JSON_OPTION, ...DATA_DIR_OPTION },
  async run(args, ctx) {
    const { dataDir } = await locate(args);
    const tty = Deno.stderr.isTerminal();
    const encoder = new TextEncoder();
    const progress = tty
      ? (done: number, total: number) =>
        Deno.stderr.writeSync(encoder.encode(`\r${renderProgress(done, total)}`))
      : undefined;
    let report: VerifyReport;
    try {
      report = await verifyStore(dataDir, progress);
    } finally {
      if (tty) Deno.stderr.writeSync(encoder.encode("\r\x1b[2K"));
    }
    if (flagOption(args, "json")) ctx.out(toJsonText(verifyReportJson(report)));
    else {
      ctx.out(`Store ${report.store}`);
      ctx.out(formatReport(report));
    }
    if (report.problemCount > 0) {
      const file = shellQuote(join(dataDir, STORE_FILE_NAME));
      ctx.err(
        `error: Cannot vouch for data folder ${dataDir}: ` +
          (report.unreadable !== null
            ? "its store cannot be read"
            : `${plural(report.problemCount, "problem")} found`),
      );
      ctx.err(
        `Restore ${file} from a backup, or move it (and ${file}-wal) aside and let the node ` +
          "resync from its peers.",
      );
      return ExitCode.VERIFY_FAILED;
    }
    if (report.ownKeyForked) {
      ctx.err(
        `error: Cannot vouch for node ${shortId(report.nodeId!)}: its own key is forked ` +
          "(see the warning above)",
      );
      return ExitCode.OWN_KEY_FORKED;
    }
    return ExitCode.OK;
  },
};
