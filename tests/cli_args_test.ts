import assert from "node:assert/strict";
import {
  type Command,
  editDistance,
  parseCommandArgs,
  resolveCommand,
  suggest,
} from "../cli/args.ts";
import { formatCommandHelp, reflow } from "../cli/help.ts";
import { UsageError } from "../cli/errors.ts";
import { COMMANDS } from "../main.ts";

const put = COMMANDS.find((c) => c.path.join(" ") === "item put")!;
const serve = COMMANDS.find((c) => c.path.join(" ") === "serve")!;

Deno.test("resolveCommand finds commands and moves global options written before them", () => {
  const found = resolveCommand(COMMANDS, ["--data-dir", "x", "--json", "item", "get", "S-1"]);
  assert.equal(found.kind, "command");
  if (found.kind !== "command") return;
  assert.deepEqual(found.command.path, ["item", "get"]);
  assert.deepEqual(found.args, ["--data-dir", "x", "--json", "S-1"]);
  assert.deepEqual(resolveCommand(COMMANDS, []), { kind: "root-help" });
  assert.deepEqual(resolveCommand(COMMANDS, ["-V"]), { kind: "version" });
  assert.deepEqual(resolveCommand(COMMANDS, ["item"]), {
    kind: "group-help",
    group: "item",
    missing: true,
  });
  assert.deepEqual(resolveCommand(COMMANDS, ["item", "-h"]), {
    kind: "group-help",
    group: "item",
    missing: false,
  });
});

Deno.test("resolveCommand refuses unknown commands and options with a suggestion", () => {
  assert.throws(() => resolveCommand(COMMANDS, ["stauts"]), (error: unknown) => {
    assert.ok(error instanceof UsageError);
    assert.equal(error.exitCode, 2);
    assert.match(error.message, /unknown command "stauts" \(did you mean "status"\?\)/);
    return true;
  });
  assert.throws(() => resolveCommand(COMMANDS, ["token", "revok"]), /did you mean "token revoke"/);
  assert.throws(() => resolveCommand(COMMANDS, ["--verbose", "serve"]), /unknown option --verbose/);
  assert.throws(() => resolveCommand(COMMANDS, ["--data-dir"]), /--data-dir needs a value/);
});

Deno.test("parseCommandArgs checks options and positionals", () => {
  const parsed = parseCommandArgs(put, ["S-1", "--stage", "qa", "--json"]);
  assert.notEqual(parsed, "help");
  if (parsed === "help") return;
  assert.deepEqual(parsed.positionals, ["S-1"]);
  assert.equal(parsed.values.stage, "qa");
  assert.equal(parsed.values.json, true);
  assert.equal(parseCommandArgs(put, ["--help"]), "help");
  // A negative number is a value (for the command's range check), not an option.
  const negative = parseCommandArgs(put, ["S-1", "--retry-count", "-1"]);
  assert.ok(negative !== "help");
  assert.equal(negative.values["retry-count"], "-1");

  const repeated = parseCommandArgs(serve, [
    "--rendezvous",
    "ws://a/crdt-sync",
    "--rendezvous",
    "ws://b/crdt-sync",
  ]);
  assert.ok(repeated !== "help");
  assert.deepEqual(repeated.values.rendezvous, ["ws://a/crdt-sync", "ws://b/crdt-sync"]);

  const cases: [string[], RegExp][] = [
    [["S-1", "--stag", "qa"], /unknown option --stag \(did you mean --stage\?\)/],
    [["S-1", "--stage"], /option --stage needs a value$/],
    [["S-1", "--name", "-x"], /write --name=-VALUE/],
    [["S-1", "--json=yes"], /option --json takes no value/],
    [[], /missing <story_id>/],
    [["S-1", "S-2"], /unexpected argument "S-2"/],
  ];
  for (const [args, pattern] of cases) {
    assert.throws(() => parseCommandArgs(put, args), (error: unknown) => {
      assert.ok(error instanceof UsageError, String(error));
      assert.match(error.message, pattern);
      assert.match(error.hint ?? "", /huskies item put --help/);
      return true;
    });
  }
});

Deno.test("every command has help with its usage, summary and every option", () => {
  for (const command of COMMANDS) {
    const help = formatCommandHelp(command as Command);
    assert.match(help, new RegExp(`^huskies ${command.path.join(" ")}: `));
    assert.match(help, /Usage: huskies /);
    for (const name of Object.keys(command.options)) assert.ok(help.includes(`--${name}`), name);
    assert.ok(help.includes("--help"));
  }
});

Deno.test("suggest and editDistance find near misses only", () => {
  assert.equal(editDistance("kitten", "sitting"), 3);
  assert.equal(suggest("lisen", ["listen", "join"]), "listen");
  assert.equal(suggest("zzzzzz", ["listen", "join"]), undefined);
});

Deno.test("reflow wraps paragraphs and keeps indented lines", () => {
  const text = reflow("one two three four\nfive\n\n  keep   this\nsix seven", 9);
  assert.equal(text, "one two\nthree\nfour five\n\n  keep   this\nsix seven");
});

Deno.test("`huskies help [command]` resolves to the help it names; a leading -- is skipped", () => {
  assert.deepEqual(resolveCommand(COMMANDS, ["help"]), { kind: "root-help" });
  assert.deepEqual(resolveCommand(COMMANDS, ["help", "item", "put"]), {
    kind: "command-help",
    command: put,
  });
  assert.deepEqual(resolveCommand(COMMANDS, ["help", "serve"]), {
    kind: "command-help",
    command: serve,
  });
  assert.deepEqual(resolveCommand(COMMANDS, ["help", "item"]), {
    kind: "group-help",
    group: "item",
    missing: false,
  });
  assert.throws(() => resolveCommand(COMMANDS, ["help", "serv"]), /did you mean "serve"/);
  assert.throws(() => resolveCommand(COMMANDS, ["help", "serve", "x"]), /not a command/);
  const found = resolveCommand(COMMANDS, ["--", "item", "list", "--json"]);
  assert.equal(found.kind, "command");
  if (found.kind === "command") assert.deepEqual(found.args, ["--json"]);
  assert.deepEqual(resolveCommand(COMMANDS, ["--", "--version"]), { kind: "version" });
});
