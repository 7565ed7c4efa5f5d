/**
 * `huskies stop`: asks the node running for a data folder to stop cleanly
 * (through the admin API, so only its own user can), then waits until it has
 * removed its `serve.json`.
 * @module
 */
import { type Command, DATA_DIR_OPTION, flagOption, JSON_OPTION } from "./args.ts";
import { locate } from "./config.ts";
import { CliError, ExitCode } from "./errors.ts";
import { toJsonText, wholeMs } from "./json.ts";
import { AdminClient, readServeInfo } from "./runtime.ts";

/** How long `stop` waits for the node to finish stopping, ms. */
export const STOP_WAIT_MS = 15_000;

/** The `stop` command. */
export const stopCommand: Command = {
  path: ["stop"],
  summary: "stop the running node of a data folder cleanly (like Ctrl+C)",
  description: `Asks the node running for the data folder to stop, the same clean stop as
SIGINT, and waits until it has stopped (up to ${STOP_WAIT_MS / 1000} s). Exit code 4 when no node
is running.`,
  options: { ...JSON_OPTION, ...DATA_DIR_OPTION },
  async run(args, ctx) {
    const { dataDir } = await locate(args);
    const admin = await AdminClient.open(dataDir, "stop");
    const started = performance.now();
    await admin.call<unknown>("adminStop");
    const deadline = Date.now() + STOP_WAIT_MS;
    while ((await readServeInfo(dataDir))?.pid === admin.info.pid) {
      if (Date.now() > deadline) {
        throw new CliError(
          ExitCode.FAILURE,
          `Cannot confirm the stop: node ${admin.info.nodeId} (pid ${admin.info.pid}) is still ` +
            `stopping after ${STOP_WAIT_MS / 1000} s`,
          { hint: `Its log says why; \`kill ${admin.info.pid}\` a second time forces it.` },
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const tookMs = wholeMs(performance.now() - started);
    if (flagOption(args, "json")) {
      ctx.out(toJsonText({ nodeId: admin.info.nodeId, pid: admin.info.pid, tookMs }));
    } else ctx.out(`Stopped node ${admin.info.nodeId} (pid ${admin.info.pid}).`);
    return ExitCode.OK;
  },
};
