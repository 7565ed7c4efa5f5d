/**
 * `huskies verify`: re-checks a data folder's store offline. For every stored
 * operation, in insertion order: its id is the hash of its content, its
 * signature is valid, it continues its author's chain (seq 1, 2, 3, ... with
 * no gaps; `prev` is the author's previous stored operation), and each of its
 * dependencies was stored before it. {@link StoreChecker} is pure.
 * @module
 */
import { join } from "node:path";
import { SignatureVerifier } from "../crdt/identity.ts";
import { hasValidId, type Operation, verifyOperation } from "../crdt/operation.ts";
import { SqliteStore, StoreCorruptError, StoreLockedError } from "../crdt/sqlite_store.ts";
import { STORE_FILE_NAME } from "../data_dir.ts";
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

/** Re-checks operations one at a time, in insertion order (pure apart from signature checks). */
export class StoreChecker {
  readonly #verifier: SignatureVerifier;
  readonly #seen = new Set<string>();
  readonly #chains = new Map<string, { seq: number; id: string }>();
  #rows = 0;

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

  /** Checks the next stored operation and returns its problems (none when it is sound). */
  check(op: Operation): VerifyProblem[] {
    const row = ++this.#rows;
    const problems: VerifyProblem[] = [];
    const report = (problem: string) => problems.push({ row, opId: op.id, problem });
    if (!hasValidId(op)) {
      report("id does not match the operation's content (the row was altered or damaged)");
    } else if (!verifyOperation(op, this.#verifier)) {
      report(`signature is not valid for author ${shortId(op.author)}`);
    }
    const previous = this.#chains.get(op.author);
    const expectedSeq = (previous?.seq ?? 0) + 1;
    if (op.seq !== expectedSeq) {
      report(
        previous
          ? `seq ${op.seq} does not follow the author's previous stored seq ${previous.seq}`
          : `seq ${op.seq} is the author's first stored operation (expected seq 1)`,
      );
    }
    const expectedPrev = previous?.id ?? null;
    if (op.prev !== expectedPrev && op.seq === expectedSeq) {
      report(
        expectedPrev === null
          ? `prev is ${shortId(String(op.prev))} but the author has no earlier stored operation`
          : `prev ${op.prev === null ? "null" : shortId(op.prev)} is not the author's previous ` +
            `stored operation ${shortId(expectedPrev)}`,
      );
    }
    for (const dep of op.deps) {
      if (!this.#seen.has(dep)) report(`dependency ${shortId(dep)} is not stored before it`);
    }
    if (!previous || op.seq > previous.seq) this.#chains.set(op.author, { seq: op.seq, id: op.id });
    this.#seen.add(op.id);
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
  /** Authors with a recorded fork proof (not a store problem: proof of their misbehaviour). */
  forks: string[];
  /** True when checking stopped early (a row could not be read). */
  incomplete: boolean;
  /** Seconds taken. */
  seconds: number;
}

/** Formats a report as text (pure). */
export function formatReport(report: VerifyReport): string {
  const lines: string[] = [];
  const scope = `${report.operations} operations from ${report.authors} authors in ${
    report.seconds.toFixed(2)
  } s`;
  if (report.problemCount === 0) {
    lines.push(`OK: verified ${scope}; no problems found.`);
  } else {
    lines.push(
      `FAILED: ${report.problemCount} problem${report.problemCount === 1 ? "" : "s"} in ${scope}` +
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
      `Note: fork proofs are recorded for ${report.forks.length} author(s): ` +
        `${report.forks.map(shortId).join(", ")} (they signed two operations at one position).`,
    );
  }
  return lines.join("\n");
}

/** Verifies the store of `dataDir`; `onProgress` is called now and then. */
export function verifyStore(
  dataDir: string,
  onProgress?: (done: number, total: number) => void,
): VerifyReport {
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
  const report: VerifyReport = {
    store: path,
    operations: 0,
    authors: 0,
    problems: [],
    problemCount: 0,
    forks: [],
    incomplete: false,
    seconds: 0,
  };
  const add = (problem: VerifyProblem) => {
    report.problemCount++;
    if (report.problems.length < KEPT_PROBLEMS) report.problems.push(problem);
  };
  let store: SqliteStore;
  try {
    store = SqliteStore.open(path);
  } catch (error) {
    if (error instanceof StoreLockedError) {
      throw new CliError(
        ExitCode.LOCKED,
        `Cannot verify data folder ${dataDir}: its store is locked by a running node`,
        { cause: error, hint: "Stop `huskies serve` for this folder first: verify works offline." },
      );
    }
    if (!(error instanceof StoreCorruptError)) throw error;
    add({ row: 0, opId: "", problem: error.message });
    report.incomplete = true;
    report.seconds = (performance.now() - started) / 1000;
    return report;
  }
  const checker = new StoreChecker();
  try {
    const total = store.count();
    let lastReport = 0;
    onProgress?.(0, total);
    try {
      for (const op of store.load()) {
        for (const problem of checker.check(op)) add(problem);
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
    onProgress?.(checker.rows, Math.max(total, checker.rows));
    try {
      report.forks = store.loadForks().map((proof) => proof.author);
    } catch (error) {
      if (!(error instanceof StoreCorruptError)) throw error;
      add({ row: 0, opId: "", problem: error.message });
    }
  } finally {
    store.close();
  }
  report.operations = checker.rows;
  report.authors = checker.authors;
  report.seconds = (performance.now() - started) / 1000;
  return report;
}

/** The `verify` command. */
export const verifyCommand: Command = {
  path: ["verify"],
  summary: "re-check every stored operation (offline; the node must be stopped)",
  description: `
Opens the data folder's store and re-checks every operation: its id (the hash of
its content), its signature, its author's chain (seq 1, 2, 3, ... with no gaps;
prev = the author's previous stored operation) and that each dependency was
stored before it. Shows a progress bar when standard error is a terminal.
Exit code 0 when the store is sound, 9 when problems were found (the first
${LISTED_PROBLEMS} are listed with row number, operation id and what is wrong),
5 when a running node holds the store.`,
  options: { ...JSON_OPTION, ...DATA_DIR_OPTION },
  run(args, ctx) {
    return locate(args).then(({ dataDir }) => {
      const tty = Deno.stderr.isTerminal();
      const encoder = new TextEncoder();
      const progress = tty
        ? (done: number, total: number) =>
          Deno.stderr.writeSync(encoder.encode(`\r${renderProgress(done, total)}`))
        : undefined;
      let report: VerifyReport;
      try {
        report = verifyStore(dataDir, progress);
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
          `error: Cannot vouch for data folder ${dataDir}: ${report.problemCount} problem(s) found`,
        );
        ctx.err(
          `Restore ${file} from a backup, or move it (and ${file}-wal) aside and let the node ` +
            "resync from its peers.",
        );
        return ExitCode.VERIFY_FAILED;
      }
      return ExitCode.OK;
    });
  },
};
