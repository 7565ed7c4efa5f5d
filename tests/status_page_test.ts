/**
 * Drives Debian's Chromium (never a downloaded browser) with playwright-core
 * against a running `huskies serve`: the status page shows the node id, and
 * an item added through the CLI appears on the board without a reload.
 */
import assert from "node:assert/strict";
import { chromium } from "playwright-core";
import { huskies, removeDir, ServeProcess, tempDir } from "./cli_helpers.ts";

const CHROMIUM = "/usr/bin/chromium";

function hasChromium(): boolean {
  try {
    return Deno.statSync(CHROMIUM).isFile;
  } catch {
    return false;
  }
}

const available = hasChromium();
if (!available) {
  console.warn(
    `status_page_test: skipped because ${CHROMIUM} does not exist (install it with \`apt-get install chromium\`)`,
  );
}

Deno.test({
  name: "status page shows the node id and new items appear on the board without reload",
  ignore: !available,
  // playwright-core keeps pipes and timers of its own until the browser is gone.
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const dir = await tempDir();
    let serve: ServeProcess | undefined;
    let browser: Awaited<ReturnType<typeof chromium.launch>> | undefined;
    try {
      serve = await ServeProcess.start(["--data-dir", dir, "--listen", "127.0.0.1:0"]);
      await huskies(["item", "put", "S-OLD", "--stage", "coding", "--data-dir", dir]);
      browser = await chromium.launch({
        executablePath: CHROMIUM,
        args: [
          "--headless",
          "--no-sandbox",
          "--disable-gpu",
          "--disable-quic",
          "--no-first-run",
          "--disable-background-networking",
          "--disable-component-update",
          "--disable-sync",
        ],
        timeout: 30_000,
      });
      const page = await browser.newPage();
      const problems: string[] = [];
      page.on("console", (message) => {
        if (message.type() === "error") problems.push(message.text());
      });
      page.on("pageerror", (error) => problems.push(error.message));
      let navigations = 0;
      page.on("framenavigated", (frame) => {
        if (frame === page.mainFrame()) navigations++;
      });

      await page.goto(serve.statusUrl, { timeout: 15_000 });
      // A selector wait, not waitForFunction: the page's CSP (rightly) forbids the eval it uses.
      await page.waitForSelector(`#node-id:text-is("${serve.nodeId}")`, { timeout: 10_000 });
      await page.waitForSelector('[data-stage="coding"] [data-story="S-OLD"]', { timeout: 10_000 });
      await page.waitForSelector("#connection.live", { timeout: 10_000 });
      assert.match(await page.textContent("#peers-empty") ?? "", /No peers connected/);
      const columns = await Promise.all(
        (await page.locator("[data-stage]").all()).map((column) =>
          column.getAttribute("data-stage")
        ),
      );
      assert.deepEqual(columns, ["backlog", "coding", "qa", "merge", "done", "archived"]);

      const put = await huskies([
        "item",
        "put",
        "S-LIVE",
        "--name",
        "Shown live",
        "--stage",
        "qa",
        "--data-dir",
        dir,
      ]);
      assert.equal(put.code, 0, put.stderr);
      const card = await page.waitForSelector('[data-stage="qa"] [data-story="S-LIVE"]', {
        timeout: 10_000,
      });
      assert.match(await card.textContent() ?? "", /Shown live/);

      const moved = await huskies(["item", "move", "S-LIVE", "done", "--data-dir", dir]);
      assert.equal(moved.code, 0, moved.stderr);
      await page.waitForSelector('[data-stage="done"] [data-story="S-LIVE"]', { timeout: 10_000 });

      assert.equal(navigations, 1, "the page was never reloaded");
      assert.deepEqual(problems, [], "no script errors or CSP violations");
    } finally {
      await browser?.close().catch(() => {});
      await serve?.kill();
      await removeDir(dir);
    }
  },
});
