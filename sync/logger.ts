/**
 * A small injectable logger: readable lines by default, JSON lines on request,
 * or silence for tests.
 * @module
 */

/** Severity of a log record. */
export type LogLevel = "debug" | "info" | "warn" | "error";

/** Structured fields attached to a log record. Never put secrets here. */
export type LogFields = Record<string, unknown>;

/** Where log records go. */
export interface Logger {
  /** Writes one record. */
  log(level: LogLevel, message: string, fields?: LogFields): void;
}

const RANK: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };

/** Options for {@link consoleLogger}. */
export interface ConsoleLoggerOptions {
  /** Print JSON lines instead of readable text. @default false */
  json?: boolean;
  /** Lowest level printed. @default "info" */
  level?: LogLevel;
}

/**
 * A logger that writes to standard error.
 *
 * @example
 * ```ts
 * import { consoleLogger } from "./logger.ts";
 * consoleLogger({ json: true }).log("info", "listening", { port: 3001 });
 * ```
 */
export function consoleLogger(options: ConsoleLoggerOptions = {}): Logger {
  const min = RANK[options.level ?? "info"];
  return {
    log(level, message, fields = {}) {
      if (RANK[level] < min) return;
      const time = new Date().toISOString();
      if (options.json) {
        console.error(JSON.stringify({ time, level, message, ...fields }));
        return;
      }
      const extra = Object.entries(fields).map(([k, v]) =>
        `${k}=${typeof v === "string" ? escapeLogText(v) : JSON.stringify(v)}`
      ).join(" ");
      console.error(
        `${time} ${level.toUpperCase().padEnd(5)} ${message}${extra ? " " + extra : ""}`,
      );
    },
  };
}

/** Characters a text log line never carries raw: controls, quotes, backslash, bidi overrides. */
// deno-lint-ignore no-control-regex -- control characters are exactly what it escapes
const UNSAFE = /[\u0000-\u001f\u007f-\u009f"\\\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

/**
 * A string (possibly peer-chosen: a close reason, an address) as it may
 * appear in a text log line: control characters, quotes, backslashes and
 * bidirectional overrides escaped as `\uXXXX`, and the whole quoted when it
 * has a space or is empty, so a peer cannot forge or split log lines.
 *
 * @example
 * ```ts
 * import { escapeLogText } from "./logger.ts";
 * escapeLogText('bye\nERROR forged "line"'); // => "\"bye\\u000aERROR forged \\u0022line\\u0022\""
 * ```
 */
export function escapeLogText(text: string): string {
  const escaped = text.replace(
    UNSAFE,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
  return escaped === "" || /\s/.test(escaped) ? `"${escaped}"` : escaped;
}

/** A logger that discards everything. */
export const silentLogger: Logger = { log() {} };

/** A logger that keeps records in memory, for tests that assert on warnings. */
export class MemoryLogger implements Logger {
  /** Records written so far. */
  readonly records: { level: LogLevel; message: string; fields: LogFields }[] = [];
  /** Stores the record. */
  log(level: LogLevel, message: string, fields: LogFields = {}): void {
    this.records.push({ level, message, fields });
  }
}
