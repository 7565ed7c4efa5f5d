/**
 * `huskies item put|get|list|move|delete` and `huskies events`: act on the
 * pipeline of the node running for a data folder, through its admin API.
 * Turning flags into a patch ({@link buildPatch}) and formatting are pure.
 * @module
 */
import { STAGES } from "../crdt/pipeline.ts";
import {
  type CliContext,
  type Command,
  DATA_DIR_OPTION,
  flagOption,
  JSON_OPTION,
  type OptionSpec,
  type ParsedArgs,
  stringOption,
} from "./args.ts";
import { locate } from "./config.ts";
import { ExitCode, UsageError } from "./errors.ts";
import { formatTime, shortId, table } from "./format.ts";
import { AdminClient } from "./runtime.ts";
import { DEFAULT_WAIT_PEERS_SECS, parseWaitPeers } from "./http/admin.ts";
import { type EventJson, type ItemJson, type ItemPatchJson, toJsonText } from "./json.ts";

const STAGE_LIST = STAGES.join(", ");

function parseBoolean(text: string, flag: string): boolean {
  if (text === "true") return true;
  if (text === "false") return false;
  throw new UsageError(
    "item put",
    `Cannot put item: --${flag} must be true or false, got "${text}"`,
  );
}

/**
 * Builds the patch for `item put` from its flags (pure). Values are checked
 * for type here; the node checks ranges and stages.
 * @throws {UsageError} a flag value has the wrong type.
 */
export function buildPatch(args: ParsedArgs): ItemPatchJson {
  const patch: ItemPatchJson = {};
  const stage = stringOption(args, "stage");
  if (stage !== undefined) patch.stage = stage as ItemPatchJson["stage"];
  const name = stringOption(args, "name");
  if (name !== undefined) patch.name = name;
  const agent = stringOption(args, "agent");
  if (agent !== undefined) patch.agent = agent === "" ? null : agent;
  const retries = stringOption(args, "retry-count");
  if (retries !== undefined) {
    if (!/^\d+$/.test(retries.trim()) || !Number.isSafeInteger(Number(retries))) {
      throw new UsageError(
        "item put",
        `Cannot put item: --retry-count must be a whole number >= 0, got "${retries}"`,
      );
    }
    patch.retryCount = Number(retries);
  }
  const blocked = stringOption(args, "blocked");
  if (blocked !== undefined) patch.blocked = parseBoolean(blocked, "blocked");
  const frozen = stringOption(args, "frozen");
  if (frozen !== undefined) patch.frozen = parseBoolean(frozen, "frozen");
  const depends = stringOption(args, "depends-on");
  if (depends !== undefined) {
    patch.dependsOn = depends.split(",").map((id) => id.trim()).filter((id) => id.length > 0);
  }
  return patch;
}

/** Formats one item as aligned `field value` lines (pure). */
export function formatItem(item: ItemJson): string {
  const rows: [string, string][] = [
    ["story id", item.storyId],
    ["stage", item.stage],
    ["name", item.name],
    ["agent", item.agent ?? "-"],
    ["retries", String(item.retryCount)],
    ["blocked", String(item.blocked)],
    ["frozen", String(item.frozen)],
    ["depends on", item.dependsOn.length ? item.dependsOn.join(", ") : "-"],
  ];
  return rows.map(([k, v]) => `${k.padEnd(12)} ${v}`).join("\n");
}

/** Formats items as a table (pure). */
export function formatItems(items: ItemJson[]): string {
  return table(
    ["STORY", "STAGE", "NAME", "AGENT", "RETRIES", "FLAGS", "DEPENDS ON"],
    items.map((item) => [
      item.storyId,
      item.stage,
      item.name,
      item.agent ?? "-",
      item.retryCount,
      [item.blocked ? "blocked" : "", item.frozen ? "frozen" : ""].filter(Boolean).join(",") || "-",
      item.dependsOn.join(",") || "-",
    ]),
  );
}

/** Formats stage events as a table (pure). */
export function formatEvents(events: EventJson[]): string {
  return table(
    ["TIME", "STORY", "FROM", "TO", "NODE"],
    events.map((e) => [
      formatTime(Date.parse(e.time)),
      e.storyId,
      e.from ?? "(new)",
      e.to,
      shortId(e.nodeId),
    ]),
  );
}

async function client(args: ParsedArgs, command: string): Promise<AdminClient> {
  const { dataDir } = await locate(args);
  return await AdminClient.open(dataDir, command);
}

function print(ctx: CliContext, args: ParsedArgs, value: unknown, text: () => string): void {
  ctx.out(flagOption(args, "json") ? toJsonText(value) : text());
}

const COMMON: Record<string, OptionSpec> = { ...JSON_OPTION, ...DATA_DIR_OPTION };

const STORY_ID = {
  name: "story_id",
  description: "the item's id: 1 to 128 of A-Z a-z 0-9 . _ : -",
};

const WAIT_OPTIONS: Record<string, OptionSpec> = {
  "wait-peers": {
    type: "string",
    value: "N",
    description: "return only once N peers' clocks count the change (exit 13 if not in time)",
  },
  timeout: {
    type: "string",
    value: "S",
    description: `seconds --wait-peers waits at most (default ${DEFAULT_WAIT_PEERS_SECS})`,
  },
};

/**
 * The admin query and request timeout of `--wait-peers N [--timeout S]`
 * (pure; the rule is `parseWaitPeers`); empty without `--wait-peers`.
 * @throws {UsageError} a value is out of range, or `--timeout` comes alone.
 */
export function waitPeersFlags(
  args: ParsedArgs,
  command: string,
): { query: Record<string, string>; timeoutMs?: number } {
  let wait: ReturnType<typeof parseWaitPeers>;
  try {
    wait = parseWaitPeers(
      stringOption(args, "wait-peers"),
      stringOption(args, "timeout"),
      command.replace("item ", "") + " item",
      { peers: "--wait-peers", secs: "--timeout" },
    );
  } catch (error) {
    throw new UsageError(command, (error as Error).message);
  }
  if (wait === undefined) return { query: {} };
  return {
    query: { waitPeers: String(wait.count), timeoutSecs: String(wait.timeoutMs / 1000) },
    // The node answers within its wait; give the request room beyond it.
    timeoutMs: wait.timeoutMs + 15_000,
  };
}

const NOTE = "Acts on the node running for the data folder (through its admin API); " +
  "start one with `huskies serve`.";

const WRITE_NOTE = "Returns once the change is applied and durably stored on the node. " +
  "Exit code 12 when the node refuses to sign it (nothing changed; the message says whether " +
  "to retry); 13 when --wait-peers N peers did not confirm it in time (it is made here).";

/** `huskies item put`. */
export const itemPutCommand: Command = {
  path: ["item", "put"],
  summary: "create or update a work item",
  description: `Creates the item (with defaults for fields not given) or updates the fields
given. ${WRITE_NOTE} ${NOTE}`,
  positionals: [STORY_ID],
  options: {
    stage: { type: "string", value: "S", description: `stage: ${STAGE_LIST}` },
    name: { type: "string", value: "N", description: "human-readable name" },
    agent: { type: "string", value: "A", description: 'assigned agent ("" clears it)' },
    "retry-count": { type: "string", value: "K", description: "retry count, a whole number" },
    blocked: { type: "string", value: "true|false", description: "whether the item is blocked" },
    frozen: { type: "string", value: "true|false", description: "whether the item is frozen" },
    "depends-on": {
      type: "string",
      value: "ID,...",
      description: 'story ids this item depends on ("" clears them)',
    },
    ...WAIT_OPTIONS,
    ...COMMON,
  },
  examples: [
    'huskies item put S-42 --name "Login page" --stage coding --agent alice',
    "huskies item put S-43 --depends-on S-42 --blocked true",
    "huskies item put S-44 --stage qa --wait-peers 2 --timeout 10",
  ],
  async run(args, ctx) {
    const patch = buildPatch(args);
    const wait = waitPeersFlags(args, "item put");
    const id = args.positionals[0];
    const admin = await client(args, "item put");
    const item = await admin.call<ItemJson>("adminItemPut", { id, ...wait.query }, patch, wait);
    print(ctx, args, item, () => formatItem(item));
    return ExitCode.OK;
  },
};

/** `huskies item get`. */
export const itemGetCommand: Command = {
  path: ["item", "get"],
  summary: "show one work item",
  description: `Exit code 3 when there is no such item. ${NOTE}`,
  positionals: [STORY_ID],
  options: COMMON,
  async run(args, ctx) {
    const admin = await client(args, "item get");
    const item = await admin.call<ItemJson>("adminItemGet", { id: args.positionals[0] });
    print(ctx, args, item, () => formatItem(item));
    return ExitCode.OK;
  },
};

/** `huskies item list`. */
export const itemListCommand: Command = {
  path: ["item", "list"],
  summary: "list work items, optionally of one stage",
  description: NOTE,
  options: {
    stage: { type: "string", value: "S", description: `only items in this stage: ${STAGE_LIST}` },
    ...COMMON,
  },
  async run(args, ctx) {
    const stage = stringOption(args, "stage");
    const admin = await client(args, "item list");
    const items = await admin.call<ItemJson[]>("adminItems", { stage });
    print(
      ctx,
      args,
      items,
      () =>
        items.length === 0
          ? (stage ? `No items in stage ${stage}.` : "No items.")
          : formatItems(items),
    );
    return ExitCode.OK;
  },
};

/** `huskies item move`. */
export const itemMoveCommand: Command = {
  path: ["item", "move"],
  summary: "move a work item to another stage",
  description: `Records a stage event when the stage changes. Exit code 3 when there is no
such item. ${WRITE_NOTE} ${NOTE}`,
  positionals: [STORY_ID, { name: "stage", description: STAGE_LIST }],
  options: { ...WAIT_OPTIONS, ...COMMON },
  async run(args, ctx) {
    const [id, stage] = args.positionals;
    const wait = waitPeersFlags(args, "item move");
    const admin = await client(args, "item move");
    const item = await admin.call<ItemJson>(
      "adminItemMove",
      { id, ...wait.query },
      { stage },
      wait,
    );
    print(ctx, args, item, () => `Moved ${item.storyId} to ${item.stage}.`);
    return ExitCode.OK;
  },
};

/** `huskies item delete`. */
export const itemDeleteCommand: Command = {
  path: ["item", "delete"],
  summary: "delete a work item",
  description: `Exit code 3 when there is no such item. ${WRITE_NOTE} ${NOTE}`,
  positionals: [STORY_ID],
  options: { ...WAIT_OPTIONS, ...COMMON },
  async run(args, ctx) {
    const id = args.positionals[0];
    const wait = waitPeersFlags(args, "item delete");
    const admin = await client(args, "item delete");
    const result = await admin.call<{ deleted: string }>(
      "adminItemDelete",
      { id, ...wait.query },
      undefined,
      wait,
    );
    print(ctx, args, result, () => `Deleted ${result.deleted}.`);
    return ExitCode.OK;
  },
};

/** `huskies events`. */
export const eventsCommand: Command = {
  path: ["events"],
  summary: "show the stage-transition log, optionally of one item",
  description: NOTE,
  options: {
    story: { type: "string", value: "ID", description: "only events of this story id" },
    ...COMMON,
  },
  async run(args, ctx) {
    const story = stringOption(args, "story");
    const admin = await client(args, "events");
    const events = await admin.call<EventJson[]>("adminEvents", { story });
    print(ctx, args, events, () => events.length === 0 ? "No events." : formatEvents(events));
    return ExitCode.OK;
  },
};
