/**
 * How a case reports: a failure names what was expected and what was seen;
 * a skip says why the case could not run.
 * @module
 */

/** A case saw something the spec forbids. */
export class CaseFailure extends Error {
  /** What the spec requires. */
  readonly expected: string;
  /** What the peer did. */
  readonly seen: string;

  /** A failure: the spec requires `expected`, the peer did `seen`. */
  constructor(expected: string, seen: string) {
    super(`expected ${expected}, saw ${seen}`);
    this.expected = expected;
    this.seen = seen;
  }
}

/** A case cannot run against this peer or with these options. */
export class CaseSkip extends Error {
  /** Why. */
  readonly why: string;

  /** A skip, saying why. */
  constructor(why: string) {
    super(why);
    this.why = why;
  }
}

/** Fails the case unless `condition` holds. */
export function expect(condition: unknown, expected: string, seen: string | (() => string)): void {
  if (!condition) throw new CaseFailure(expected, typeof seen === "function" ? seen() : seen);
}

/** Skips the case. */
export function skip(why: string): never {
  throw new CaseSkip(why);
}

/** A short printable form of a value (for "seen" texts). */
export function brief(value: unknown, max = 160): string {
  let text: string;
  try {
    text = typeof value === "string" ? value : JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  return text.length > max ? `${text.slice(0, max)}… (${text.length} chars)` : text;
}
