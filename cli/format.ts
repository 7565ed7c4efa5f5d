/**
 * Text formatting for CLI output: tables, sizes, times and shell quoting.
 * Every function here is pure.
 * @module
 */

/** Quotes `text` for a POSIX shell when it needs it. */
export function shellQuote(text: string): string {
  return /^[A-Za-z0-9_./:=@%+-]+$/.test(text) ? text : `'${text.replaceAll("'", `'\\''`)}'`;
}

/** Formats rows as a left-aligned table with a header row; numbers align right. */
export function table(header: string[], rows: (string | number)[][]): string {
  const cells = rows.map((row) => row.map((cell) => String(cell)));
  const numeric = header.map((_, i) =>
    rows.length > 0 && rows.every((row) => typeof row[i] === "number")
  );
  const widths = header.map((h, i) =>
    Math.max(h.length, ...cells.map((row) => row[i]?.length ?? 0))
  );
  const line = (row: string[]) =>
    row.map((cell, i) =>
      i === row.length - 1 && !numeric[i]
        ? cell
        : numeric[i]
        ? cell.padStart(widths[i])
        : cell.padEnd(widths[i])
    ).join("  ").trimEnd();
  return [line(header), ...cells.map(line)].join("\n");
}

/** Formats a byte count with a binary unit, e.g. `1.5 KiB`. */
export function formatBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) (value /= 1024, unit++);
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`;
}

/** Formats a duration in ms as `45 s`, `12 min`, `3 h 5 min` or `2 d 4 h`. */
export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
}

/** Formats a time (ms since the epoch) as ISO 8601 without milliseconds, in UTC. */
export function formatTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
}

/** Shortens a node id to its first 12 characters plus an ellipsis. */
export function shortId(id: string): string {
  return id.length > 13 ? `${id.slice(0, 12)}…` : id;
}
