// End-to-end test of the master's web UI: the real `hatchery` binary (demo target, a master
// without --headless, one worker) on 127.0.0.1, driven through Debian's chromium by
// playwright-core. Run: `npm test` here, or `node --test tests/ui/` from the repository root.
//
// Environment: HATCHERY_BIN (default ../../target/debug/hatchery), CHROMIUM (default
// /usr/bin/chromium), HATCHERY_UI_BASE_PATH (e.g. /hatchery: serve the UI under
// --web-base-path and check that it works there), HATCHERY_UI_SCREENSHOTS=0 to skip writing
// docs/img/*.png.

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "../..");
const BIN = path.resolve(process.env.HATCHERY_BIN || path.join(root, "target/debug/hatchery"));
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const BASE_PATH = (process.env.HATCHERY_UI_BASE_PATH || "").replace(/\/+$/, "");
const SCREENSHOTS = process.env.HATCHERY_UI_SCREENSHOTS !== "0";
const IMG = path.join(root, "docs/img");
const WEB = path.join(root, "master/src/web");

const SECOND = 1000;
const STEP = 30 * SECOND; // bound of every single wait
const CHROMIUM_ARGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls `check` (async, truthy = done) every 100 ms until `ms` have passed. */
async function eventually(what, check, ms = STEP) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${ms} ms waiting for ${what}${last ? `: ${last.message}` : ""}`);
    }
    await sleep(100);
  }
}

/** Child processes with their output in files, all killed by `stopAll`, whatever happened. */
class Processes {
  constructor() {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), "hatchery-ui-"));
    this.children = [];
  }

  start(name, args) {
    const log = path.join(this.dir, `${name}.log`);
    const fd = fs.openSync(log, "w");
    const child = spawn(BIN, args, { cwd: root, stdio: ["ignore", fd, fd], env: { ...process.env, NO_COLOR: "1" } });
    fs.closeSync(fd);
    const entry = { name, child, log, exited: null };
    child.on("exit", (code, signal) => { entry.exited = { code, signal }; });
    child.on("error", (err) => { entry.exited = { error: err.message }; });
    this.children.push(entry);
    return entry;
  }

  /** Chromium, closed by `stopAll`. */
  async browser() {
    this.chromium = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: STEP });
    return this.chromium;
  }

  /** Waits until the master answers `url` with `ok(response)`, failing early when a process exited. */
  async served(url, ok = (r) => r.ok) {
    await eventually("the master to serve the UI", async () => {
      if (this.children.some((e) => e.exited)) return "a process exited"; // reported just below
      return ok(await fetch(url, { signal: AbortSignal.timeout(2 * SECOND) }));
    });
    this.assertAlive();
  }

  /** `err` with the end of every process's log, for the test's failure message. */
  annotate(err) {
    err.message += `\n\nprocess logs:\n${this.tails()}`;
    return err;
  }

  async stopAll() {
    if (this.chromium) await this.chromium.close().catch(() => {});
    for (const e of this.children.slice().reverse()) {
      if (e.exited) continue;
      e.child.kill("SIGTERM");
      const deadline = Date.now() + 5 * SECOND;
      while (!e.exited && Date.now() < deadline) await sleep(50);
      if (!e.exited) {
        e.child.kill("SIGKILL");
        const hard = Date.now() + 2 * SECOND;
        while (!e.exited && Date.now() < hard) await sleep(50);
      }
    }
  }

  /** The end of each log, for a failure message. */
  tails(lines = 30) {
    return this.children.map((e) => {
      let text = "";
      try { text = fs.readFileSync(e.log, "utf8"); } catch { /* never written */ }
      const tail = text.trimEnd().split("\n").slice(-lines).join("\n");
      return `--- ${e.name} (${e.exited ? JSON.stringify(e.exited) : "running"}) ${e.log}\n${tail}`;
    }).join("\n");
  }

  assertAlive() {
    for (const e of this.children) {
      if (e.exited) throw new Error(`${e.name} exited early: ${JSON.stringify(e.exited)}`);
    }
  }
}

const testid = (id) => `[data-testid="${id}"]`;
const num = (s) => Number(String(s).replace(/[^0-9.-]/g, ""));

test("every URL in the UI is relative, so it works under a base path", () => {
  const html = fs.readFileSync(path.join(WEB, "index.html"), "utf8");
  const js = fs.readFileSync(path.join(WEB, "app.js"), "utf8");
  const attrs = [...html.matchAll(/\b(?:href|src|action)="([^"]*)"/g)].map((m) => m[1]);
  assert.ok(attrs.length > 5);
  for (const url of attrs) {
    assert.ok(!url.startsWith("/") && !/^[a-z]+:\/\//i.test(url), `absolute URL in index.html: ${url}`);
  }
  const calls = [...js.matchAll(/\b(?:request|fetch|simpleAction\([^,]+,)\s*\(?\s*"([^"]*)"/g)].map((m) => m[1]);
  assert.ok(calls.length >= 5, `found ${calls.length} calls`);
  for (const url of calls) {
    assert.ok(!url.startsWith("/") && !/^[a-z]+:\/\//i.test(url), `absolute URL in app.js: ${url}`);
  }
  for (const text of [html, js, fs.readFileSync(path.join(WEB, "style.css"), "utf8")]) {
    const host = text.match(/https?:\/\/(?!127\.0\.0\.1|www\.w3\.org)[\w.-]+\.[a-z]{2,}/i);
    assert.equal(host, null, "no external host may be referenced");
    assert.ok(!/@import|url\(\s*["']?(?!data:)/.test(text), "no external stylesheet or font");
  }
});

test("the web UI drives a distributed test end to end", { timeout: 240 * SECOND }, async () => {
  assert.ok(fs.existsSync(BIN), `no hatchery binary at ${BIN} (cargo build -p hatchery-cli, or set HATCHERY_BIN)`);
  assert.ok(fs.existsSync(CHROMIUM), `no chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM)`);
  const procs = new Processes();
  try {
    const [targetPort, masterPort, webPort] = [await freePort(), await freePort(), await freePort()];
    const target = `http://127.0.0.1:${targetPort}`;
    procs.start("demo-target", ["demo-target", "--port", String(targetPort), "--bind", "127.0.0.1"]);
    const masterArgs = [
      "-f", "examples/quickstart.yaml", "--master", "--expect-workers", "1",
      "--master-bind-host", "127.0.0.1", "--master-bind-port", String(masterPort),
      "--web-host", "127.0.0.1", "--web-port", String(webPort),
    ];
    if (BASE_PATH) masterArgs.push("--web-base-path", BASE_PATH);
    procs.start("master", masterArgs);
    procs.start("worker", ["--worker", "--master-host", "127.0.0.1", "--master-port", String(masterPort)]);

    const origin = `http://127.0.0.1:${webPort}`;
    const ui = `${origin}${BASE_PATH}/`;
    await procs.served(ui, (r) => r.ok && (r.headers.get("content-type") || "").includes("text/html"));

    const browser = await procs.browser();
    const context = await browser.newContext({
      viewport: { width: 1280, height: 800 },
      colorScheme: "light",
      reducedMotion: "reduce",
      acceptDownloads: true,
    });
    context.setDefaultTimeout(STEP);
    const page = await context.newPage();
    const problems = [];
    page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
    page.on("console", (m) => {
      // Failed loads are judged by the response handler below.
      if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) problems.push(`console: ${m.text()}`);
    });
    page.on("response", (r) => {
      // stats/history is optional: the UI ignores anything but a 200 from it.
      if (r.status() >= 400 && !r.url().endsWith("/stats/history")) problems.push(`HTTP ${r.status()} for ${r.url()}`);
    });
    page.on("request", (r) => {
      const u = r.url();
      if (!u.startsWith("data:") && !u.startsWith(ui)) problems.push(`request outside ${ui}: ${u}`);
    });

    await page.goto(ui);
    const text = (id) => page.locator(testid(id)).innerText();

    // Ready: the start form is on the page and the worker shows up.
    await page.locator(testid("start-form")).waitFor({ state: "visible" });
    await eventually("state ready", async () => (await text("state")).trim().toLowerCase() === "ready");
    await eventually("one worker in the top bar", async () => (await text("workers")).trim() === "1");
    assert.ok(await page.locator(testid("stop")).isHidden(), "no Stop button before a test");

    // Start 5 users at 5/s against the demo target.
    await page.fill(testid("input-users"), "5");
    await page.fill(testid("input-spawn-rate"), "5");
    await page.fill(testid("input-host"), target);
    await page.click(testid("submit"));
    await eventually("the start form to go away", () => page.locator(testid("start-form")).isHidden());
    await eventually("state spawning or running", async () => /spawning|running/i.test(await text("state")));
    await eventually("requests in the statistics table", async () => {
      const rows = await page.locator(`${testid("stats-body")} tr`).allInnerTexts();
      const agg = rows.find((r) => r.includes("Aggregated"));
      return rows.length >= 2 && agg && num(agg.split("\t")[2]) > 0;
    });
    await eventually("5 users", async () => num(await text("users")) === 5);
    assert.ok(num(await text("rps")) >= 0);
    assert.match(await text("fail-ratio"), /%$/);
    assert.match(await page.locator(testid("host")).innerText(), new RegExp(`^${target}$|^–$`));

    // The last row is Aggregated, sorting or not.
    await page.click(`${testid("stats-table")} th[data-key="num_requests"] button`);
    const lastRow = await page.locator(`${testid("stats-body")} tr`).last().innerText();
    assert.match(lastRow, /Aggregated/);
    assert.equal(await page.locator(`${testid("stats-table")} th[data-key="num_requests"]`).getAttribute("aria-sort"), "descending");

    // Charts: the RPS line is drawn once there are two points.
    await page.click(testid("tab-charts"));
    const rpsLine = page.locator(`${testid("chart-rps")} path.line[data-series="rps"]`);
    await eventually("an RPS line", async () => /L/.test((await rpsLine.getAttribute("d", { timeout: 500 })) || ""));
    for (const id of ["chart-rt", "chart-users"]) {
      await eventually(`a line in ${id}`, async () => (await page.locator(`${testid(id)} path.line`).count()) > 0);
    }

    // Edit the running test: 8 users.
    await page.click(testid("edit"));
    await page.locator("dialog[open]").waitFor({ state: "visible" });
    assert.ok(await page.locator(testid("input-host")).isHidden(), "the edit form asks only for users and rate");
    await page.fill(testid("input-users"), "8");
    await page.fill(testid("input-spawn-rate"), "5");
    await page.click(testid("submit"));
    await page.locator("dialog[open]").waitFor({ state: "detached" });
    await eventually("8 users in the top bar", async () => num(await text("users")) === 8);
    await eventually("state running", async () => (await text("state")).trim().toLowerCase() === "running");

    // Let the charts gather a dozen points, then take the pictures.
    await eventually("10 chart points", async () => Number(await page.locator(testid("chart-rps")).getAttribute("data-points")) >= 10, 45 * SECOND);
    await page.mouse.move(5, 790);
    if (SCREENSHOTS) {
      fs.mkdirSync(IMG, { recursive: true });
      await page.screenshot({ path: path.join(IMG, "ui-charts.png") });
    }
    await page.click(testid("tab-stats"));
    await page.click(`${testid("stats-table")} th[data-key="name"] button`);
    await page.mouse.move(5, 790);
    if (SCREENSHOTS) await page.screenshot({ path: path.join(IMG, "ui-stats.png") });

    // Every other tab.
    await page.click(testid("tab-failures"));
    await page.locator("#panel-failures").waitFor({ state: "visible" });
    await page.click(testid("tab-exceptions"));
    await eventually("the exceptions answer", async () => {
      const empty = page.locator("#exceptions-empty");
      const rows = await page.locator(`${testid("exceptions-body")} tr`).count();
      return rows > 0 || (await empty.isVisible() && (await empty.innerText()) === "No exceptions.");
    });
    await page.click(testid("tab-workers"));
    await eventually("one worker row with 8 users", async () => {
      const rows = await page.locator(`${testid("workers-body")} tr`).allInnerTexts();
      return rows.length === 1 && rows[0].split("\t")[2].trim() === "8";
    });
    if (SCREENSHOTS) await page.screenshot({ path: path.join(IMG, "ui-workers.png") });
    await page.click(testid("tab-download"));
    for (const id of ["dl-stats-csv", "dl-failures-csv", "dl-exceptions-csv", "dl-report", "dl-report-download", "dl-metrics"]) {
      const href = await page.locator(testid(id)).getAttribute("href");
      assert.ok(href && !href.startsWith("/"), `${id} is relative: ${href}`);
      const r = await page.request.get(new URL(href, ui).href, { timeout: STEP });
      assert.equal(r.status(), 200, `GET ${href}`);
    }

    // Reset stats: the request count starts again.
    await page.click(testid("tab-stats"));
    const aggCount = async () => {
      const rows = await page.locator(`${testid("stats-body")} tr`).allInnerTexts();
      const agg = rows.find((r) => r.includes("Aggregated"));
      return agg ? num(agg.split("\t")[2]) : NaN;
    };
    const before = await aggCount();
    assert.ok(before > 0);
    await page.click(testid("reset"));
    await eventually("the counts to restart after Reset stats", async () => (await aggCount()) < before);

    // The phone layout.
    await page.setViewportSize({ width: 390, height: 844 });
    await sleep(300);
    if (SCREENSHOTS) await page.screenshot({ path: path.join(IMG, "ui-mobile.png") });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `the page scrolls sideways at 390 px (${overflow} px too wide)`);
    await page.setViewportSize({ width: 1280, height: 800 });

    // Stop.
    await page.click(testid("stop"));
    await eventually("state stopped", async () => (await text("state")).trim().toLowerCase() === "stopped");
    await page.locator(testid("start-form")).waitFor({ state: "visible" });
    assert.ok(await page.locator(testid("new")).isVisible(), "a New test button once stopped");

    // Download the statistics CSV through the link.
    await page.click(testid("tab-download"));
    const [download] = await Promise.all([
      page.waitForEvent("download", { timeout: STEP }),
      page.click(testid("dl-stats-csv")),
    ]);
    const file = await download.path();
    const csv = fs.readFileSync(file, "utf8");
    const header = csv.split(/\r?\n/)[0];
    assert.ok(
      header.startsWith("Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time"),
      `Locust's header, got: ${header}`,
    );
    assert.match(csv, /,Aggregated,/);

    assert.deepEqual(problems, [], "no page errors and no request outside the UI's base URL");
    procs.assertAlive();
  } catch (err) {
    throw procs.annotate(err);
  } finally {
    await procs.stopAll();
  }
});

// A scripted user's runtime error reaches the Exceptions tab (Locust's exceptions table): the
// message with the script's line, and a count that grows.
test("the Exceptions tab lists a script's runtime error", { timeout: 120 * SECOND }, async () => {
  assert.ok(fs.existsSync(BIN), `no hatchery binary at ${BIN}`);
  const procs = new Processes();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hatchery-ui-script-"));
  try {
    const [targetPort, masterPort, webPort] = [await freePort(), await freePort(), await freePort()];
    procs.start("demo-target", ["demo-target", "--port", String(targetPort), "--bind", "127.0.0.1"]);
    const plan = path.join(dir, "plan.yaml");
    fs.writeFileSync(plan, [
      `host: http://127.0.0.1:${targetPort}`,
      "users:",
      "  - name: Scripted",
      "    wait: {constant: 100ms}",
      "    script: |",
      "      function boom(user)",
      "        local r = user.http:get(\"/\", {name = \"home\"})",
      "        error(\"boom after \" .. r.status)",
      "      end",
      "    tasks: [{call: boom}]",
      "",
    ].join("\n"));
    procs.start("master", [
      "-f", plan, "--master", "--autostart", "-u", "2", "-r", "10", "--expect-workers", "1",
      "--master-bind-host", "127.0.0.1", "--master-bind-port", String(masterPort),
      "--web-host", "127.0.0.1", "--web-port", String(webPort),
    ]);
    procs.start("worker", ["--worker", "--master-host", "127.0.0.1", "--master-port", String(masterPort)]);
    const ui = `http://127.0.0.1:${webPort}/`;
    await procs.served(ui);
    const browser = await procs.browser();
    const page = await (await browser.newContext({ viewport: { width: 1280, height: 800 } })).newPage();
    page.setDefaultTimeout(STEP);
    await page.goto(ui);
    await page.click(testid("tab-exceptions"));
    const row = await eventually("the script's error in the Exceptions tab", async () => {
      // The tab reloads when clicked; click again until the run has reported an error.
      await page.click(testid("tab-exceptions"));
      const rows = await page.locator(`${testid("exceptions-body")} tr`).allInnerTexts();
      return rows.find((r) => r.includes("boom after 200"));
    });
    assert.match(row, /script error/, row);
    // The inline script's line 3 is line 8 of the plan file: errors point into the plan.
    assert.match(row, /plan\.yaml:8: boom after 200/, `the plan's line in: ${row}`);
    assert.ok(num(row.split("\t")[0]) >= 1, `a count in: ${row}`);
    procs.assertAlive();
  } catch (err) {
    throw procs.annotate(err);
  } finally {
    await procs.stopAll();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
