/**
 * Drives Debian's Chromium (never a downloaded browser) with playwright-core
 * against a running `huskies serve`: the status page shows the node id, and
 * an item added through the CLI appears on the board without a reload.
 */
import assert from "node:assert/strict";
import { chromium } from "playwright-core";
import { join } from "node:path";
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
      assert.equal(await page.textContent("#mesh-state"), "no peers");
      assert.match(await page.textContent("#peers-empty") ?? "", /No peers connected/);
      assert.equal(await page.textContent("#write-gate"), "writes: open");
      assert.equal(await page.isHidden("#write-gate-reason"), true, "no refusal banner");
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

const BROWSER_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

async function nodeId(dir: string): Promise<string> {
  await huskies(["keys", "create", "--data-dir", dir]);
  return (await huskies(["keys", "export-public", "--data-dir", dir])).stdout.trim();
}

Deno.test({
  name: "status page: peers by label, gone peers with last seen, badge agrees, fits 420 px",
  ignore: !available,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const dir = await tempDir();
    const shots = join(dir, "screenshots");
    const servers: ServeProcess[] = [];
    let browser: Awaited<ReturnType<typeof chromium.launch>> | undefined;
    try {
      await Deno.mkdir(shots);
      const [hubDir, spokeDir, loneDir] = ["hub", "spoke", "lone"].map((n) => join(dir, n));
      const [hubId, spokeId] = [await nodeId(hubDir), await nodeId(spokeDir)];
      await huskies(["trust", "add", spokeId, "--label", "spoke-a", "--data-dir", hubDir]);
      await huskies(["trust", "add", hubId, "--label", "the-hub", "--data-dir", spokeDir]);
      const hub = await ServeProcess.start(["--data-dir", hubDir, "--listen", "127.0.0.1:0"]);
      servers.push(hub);
      const spoke = await ServeProcess.start([
        "--data-dir",
        spokeDir,
        "--listen",
        "127.0.0.1:0",
        "--rendezvous",
        hub.syncUrl,
      ]);
      servers.push(spoke);
      // A node whose hub is down: its rendezvous client keeps waiting.
      const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const closedPort = (closed.addr as Deno.NetAddr).port;
      closed.close();
      const lone = await ServeProcess.start([
        "--data-dir",
        loneDir,
        "--listen",
        "127.0.0.1:0",
        "--rendezvous",
        `ws://127.0.0.1:${closedPort}/crdt-sync`,
      ]);
      servers.push(lone);
      const longName = "A-very-long-item-name-without-any-spaces-".repeat(6);
      await huskies(["item", "put", "S-LONG", "--name", longName, "--data-dir", hubDir]);

      browser = await chromium.launch({
        executablePath: CHROMIUM,
        args: BROWSER_ARGS,
        timeout: 30_000,
      });
      const page = await browser.newPage();
      const problems: string[] = [];
      page.on("pageerror", (error) => problems.push(error.message));
      page.on("console", (message) => {
        if (message.type() === "error") problems.push(message.text());
      });

      await page.goto(hub.statusUrl, { timeout: 15_000 });
      const row = `[data-peer="${spokeId}"]`;
      await page.waitForSelector(`${row} .badge.live`, { timeout: 15_000 });
      assert.match(await page.textContent(row) ?? "", /spoke-a/, "the peer shows by its label");
      assert.equal(await page.textContent("#mesh-state"), "peers: live", "badge and table agree");

      for (const [name, width, height] of [["phone", 420, 900], ["desktop", 1280, 800]] as const) {
        await page.setViewportSize({ width, height });
        await page.screenshot({ path: join(shots, `hub-${name}.png`), fullPage: true });
        const scroll = await page.evaluate("document.documentElement.scrollWidth") as number;
        assert.ok(
          scroll <= width,
          `${name}: the page is ${scroll} px wide in a ${width} px window`,
        );
      }

      // The spoke stops: the hub keeps it in the table as gone, with when it was last seen.
      assert.equal((await huskies(["stop", "--data-dir", spokeDir])).code, 0);
      await page.waitForSelector(`${row} .badge.gone`, { timeout: 15_000 });
      assert.match(await page.textContent(row) ?? "", /spoke-a.*last seen \d+ s ago/s);
      assert.equal(await page.textContent("#mesh-state"), "peers: gone");

      // A node that cannot reach its hub: the badge says what the table says.
      await page.goto(lone.statusUrl, { timeout: 15_000 });
      await page.waitForSelector("#rendezvous-body .badge.waiting", { timeout: 15_000 });
      assert.equal(await page.textContent("#mesh-state"), "peers: waiting");
      assert.match(await page.textContent("#rendezvous-body") ?? "", /retrying|next try/);
      await page.setViewportSize({ width: 420, height: 900 });
      await page.screenshot({ path: join(shots, "waiting-phone.png"), fullPage: true });
      const scroll = await page.evaluate("document.documentElement.scrollWidth") as number;
      assert.ok(scroll <= 420, `waiting page: ${scroll} px wide`);

      for (const shot of ["hub-phone.png", "hub-desktop.png", "waiting-phone.png"]) {
        const bytes = await Deno.readFile(join(shots, shot));
        assert.deepEqual([...bytes.subarray(1, 4)], [0x50, 0x4e, 0x47], `${shot} is a PNG`);
      }
      assert.deepEqual(problems, [], "no script errors or CSP violations");
    } finally {
      await browser?.close().catch(() => {});
      for (const serve of servers) await serve.kill();
      const keep = Deno.env.get("HUSKIES_KEEP_SCREENSHOTS");
      if (keep) {
        await Deno.mkdir(keep, { recursive: true });
        for await (const entry of Deno.readDir(shots)) {
          await Deno.copyFile(join(shots, entry.name), join(keep, entry.name));
        }
      }
      await removeDir(dir);
    }
  },
});
