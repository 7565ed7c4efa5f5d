/**
 * Help texts of the `huskies` CLI: the command list, a group's commands and
 * one command's usage, options and examples. Every function here is pure.
 * @module
 */
import { type Command, commandName, HELP_OPTION, type OptionSpec } from "./args.ts";

function usageLine(command: Command): string {
  const positionals = (command.positionals ?? []).map((p) =>
    p.optional ? `[${p.name}]` : `<${p.name}>`
  );
  return ["huskies", ...command.path, ...positionals, "[options]"].join(" ");
}

function optionLines(options: Record<string, OptionSpec>): string[] {
  const rows = Object.entries({ ...options, help: HELP_OPTION }).map(([name, spec]) => {
    const flag = `${spec.short ? `-${spec.short}, ` : "    "}--${name}${
      spec.type === "string" ? ` ${spec.value ?? "VALUE"}` : ""
    }`;
    const repeat = spec.multiple ? " (repeatable)" : "";
    return [flag, spec.description + repeat];
  });
  const width = Math.min(32, Math.max(...rows.map(([flag]) => flag.length)));
  return rows.map(([flag, text]) =>
    flag.length > width
      ? `  ${flag}\n  ${" ".repeat(width)}  ${text}`
      : `  ${flag.padEnd(width)}  ${text}`
  );
}

/**
 * Re-wraps text to `width` columns (pure): blank lines separate paragraphs;
 * lines indented by two spaces are kept as they are.
 */
export function reflow(text: string, width = 80): string {
  const out: string[] = [];
  for (const paragraph of text.trim().split(/\n\s*\n/)) {
    if (out.length > 0) out.push("");
    let line = "";
    const flush = () => {
      if (line) out.push(line);
      line = "";
    };
    for (const raw of paragraph.split("\n")) {
      if (raw.startsWith("  ")) {
        flush();
        out.push(raw);
        continue;
      }
      for (const word of raw.trim().split(/\s+/).filter(Boolean)) {
        if (line && line.length + 1 + word.length > width) flush();
        line = line ? `${line} ${word}` : word;
      }
    }
    flush();
  }
  return out.join("\n");
}

/** The `--help` text of one command (pure). */
export function formatCommandHelp(command: Command): string {
  const lines = [
    `huskies ${commandName(command)}: ${command.summary}`,
    "",
    `Usage: ${usageLine(command)}`,
  ];
  if (command.description) lines.push("", reflow(command.description));
  const positionals = command.positionals ?? [];
  if (positionals.length > 0) {
    lines.push("", "Arguments:");
    const width = Math.max(...positionals.map((p) => p.name.length + 2));
    for (const p of positionals) lines.push(`  ${`<${p.name}>`.padEnd(width)}  ${p.description}`);
  }
  lines.push("", "Options:", ...optionLines(command.options));
  if (command.examples?.length) {
    lines.push("", "Examples:", ...command.examples.map((e) => `  ${e}`));
  }
  return lines.join("\n");
}

/** The help of a command group such as `huskies item` (pure). */
export function formatGroupHelp(group: string, commands: readonly Command[]): string {
  const members = commands.filter((c) => c.path.length > 1 && c.path[0] === group);
  const width = Math.max(...members.map((c) => commandName(c).length));
  return [
    `Usage: huskies ${group} <command> [options]`,
    "",
    "Commands:",
    ...members.map((c) => `  ${commandName(c).padEnd(width)}  ${c.summary}`),
    "",
    `Run \`huskies ${group} <command> --help\` for the options of a command.`,
  ].join("\n");
}

/** The top-level help (pure). */
export function formatRootHelp(commands: readonly Command[], version: string): string {
  const width = Math.max(...commands.map((c) => commandName(c).length));
  return [
    `huskies ${version}: replicate signed pipeline state between nodes over WebSocket`,
    "",
    "Usage: huskies <command> [options]",
    "",
    "Commands:",
    ...commands.map((c) => `  ${commandName(c).padEnd(width)}  ${c.summary}`),
    `  ${"help".padEnd(width)}  show help: \`huskies help [command]\``,
    "",
    "Global options (accepted by every command that uses a data folder):",
    "  --data-dir DIR   data folder (default: data_dir from ./.huskies/project.toml, else ./.huskies)",
    "  --config FILE    configuration file (default: <data folder>/project.toml)",
    "  --json           print JSON instead of text, where the output is data",
    "  -h, --help       show help (also after any command; or `huskies help <command>`)",
    "  -V, --version    print the version",
    "",
    "Exit codes: 0 ok, 1 failure, 2 bad usage or input, 3 not found, 4 no running node,",
    "5 data folder locked, 6 data folder corrupt, 7 bad config, 8 cannot listen,",
    "9 verify found problems, 10 refused to overwrite, 130 forced exit.",
    "",
    "Run `huskies help <command>` (or `huskies <command> --help`) for the options of a command.",
  ].join("\n");
}
