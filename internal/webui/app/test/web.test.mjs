// The web view in a real browser: headless Chromium (Debian's package,
// driven by playwright-core) against a real execd on the test run's Spark
// Connect server, with tokens for a viewer and an operator. `make test-web`
// runs it; it needs $EXECD and $TAURO_SPARK_REMOTE, as `make test` exports.
// Screenshots go to .build/web-test/.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { createServer, request } from "node:http";
import { after, before, test } from "node:test";
import { chromium } from "playwright-core";

import { CHROMIUM_ARGS, EXECD, repo, shots, skip, startExecd, stopExecd } from "../testing/harness.mjs";

const project = path.join(repo, "internal", "webui", "testdata", "webproj");

let work; // the test's own folder: project copy, state, tokens, profile
let daemon; // the execd process
let base; // http://127.0.0.1:PORT of the proxy in front of execd
let proxy;
const tokens = {};
let browser;

before(async () => {
  if (skip) return;
  mkdirSync(shots, { recursive: true });
  work = mkdtempSync(path.join(tmpdir(), "tauro-web-test-"));
  // Node outputs are written into the project: the test runs a copy.
  cpSync(project, path.join(work, "project"), { recursive: true });
  const tokensFile = path.join(work, "tokens.jsonl");
  for (const role of ["viewer", "operator"]) {
    tokens[role] = execFileSync(EXECD, ["token", "--name", `web-${role}`, "--role", role, "--append", tokensFile], { encoding: "utf8" }).trim();
  }
  let addr;
  ({ daemon, addr } = await startExecd(["--project", path.join(work, "project"), "--state", path.join(work, "state"), "--workers", "1", "--tokens", tokensFile]));
  proxy = await cuttingProxy(addr);
  base = `http://127.0.0.1:${proxy.address().port}`;
  browser = await chromium.launchPersistentContext(path.join(work, "profile"), {
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1440, height: 900 },
  });
}, { timeout: 120_000 });

after(async () => {
  await browser?.close();
  proxy?.close();
  await stopExecd(daemon);
  if (work) rmSync(work, { recursive: true, force: true });
});

/**
 * cuttingProxy forwards HTTP to execd and can cut every connection under
 * way (cut()), as a network does when it drops: the browser's WatchRun
 * stream breaks mid-run and the page must follow on.
 */
function cuttingProxy(target) {
  const [host, port] = [target.slice(0, target.lastIndexOf(":")), Number(target.slice(target.lastIndexOf(":") + 1))];
  const sockets = new Set();
  const server = createServer((req, res) => {
    const up = request({ host, port, method: req.method, path: req.url, headers: req.headers, agent: false }, (ur) => {
      res.writeHead(ur.statusCode, ur.headers);
      ur.pipe(res);
    });
    up.on("socket", (s) => { sockets.add(s); s.once("close", () => sockets.delete(s)); });
    up.on("error", () => res.destroy());
    req.pipe(up);
  });
  server.on("connection", (s) => { sockets.add(s); s.once("close", () => sockets.delete(s)); });
  server.cut = () => {
    const n = sockets.size;
    for (const s of sockets) s.destroy();
    return n;
  };
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

/** call makes a Connect call with a token, as any HTTP client may. */
async function call(method, body, token) {
  const res = await fetch(`${base}/tauro.exec.v1.ExecService/${method}`, {
    method: "POST",
    headers: { "Content-Type": "application/json", "Connect-Protocol-Version": "1", Authorization: `Bearer ${token}` },
    body: JSON.stringify(body),
  });
  const json = await res.json();
  if (!res.ok) throw new Error(`${method}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}

/** signIn opens path in a new tab and signs in with role's token. */
async function signIn(role, where) {
  const page = await browser.newPage();
  page.on("dialog", (d) => d.accept());
  await page.goto(base + where);
  await page.locator("form.signin").waitFor();
  await page.fill("input[name=token]", tokens[role]);
  await page.click("form.signin button[type=submit]");
  await page.locator(`.who[data-role=${role}]`).waitFor();
  return page;
}

const node = (page, name) => page.locator(`.dag g.node[data-node="${name}"]`);
const stateOf = (page, name) => node(page, name).getAttribute("data-state");

test("the page asks for a token and refuses an unknown one", { skip }, async () => {
  const page = await browser.newPage();
  await page.goto(base + "/");
  await page.locator("form.signin").waitFor();
  await page.fill("input[name=token]", "tauro_not-a-token");
  await page.click("form.signin button[type=submit]");
  await page.locator(".signin-error", { hasText: "not accepted" }).waitFor();
  await page.screenshot({ path: path.join(shots, "signin.png") });
  await page.close();
});

test("a run's DAG shows live: a node turns from running to succeeded; only an operator may cancel", { skip, timeout: 90_000 }, async () => {
  const { run } = await call("ExecutePipeline", { pipeline: "orders", requestId: `web-${Date.now()}` }, tokens.operator);
  const page = await signIn("operator", `/runs/${run.runId}`);

  // The graph: every node by name, every dependency as an edge.
  for (const name of ["load_orders", "enrich_orders", "store_totals", "report"]) {
    await node(page, name).waitFor();
  }
  const edges = await page.$$eval(".dag path.edge", (ps) => ps.map((p) => `${p.dataset.from}->${p.dataset.to}`).sort());
  assert.deepEqual(edges, ["enrich_orders->report", "load_orders->enrich_orders", "load_orders->store_totals", "store_totals->report"]);

  // The slow node is seen RUNNING, then SUCCEEDED, on the same page.
  await page.locator('.dag g.node[data-node="enrich_orders"][data-state="running"]').waitFor({ timeout: 60_000 });
  await node(page, "enrich_orders").click();
  await page.screenshot({ path: path.join(shots, "run-running.png") });
  assert.equal(await page.locator("button[data-action=cancel]").count(), 1, "an operator sees Cancel on a running run");

  // A viewer, on the same running run, sees no Cancel button.
  const viewer = await signIn("viewer", `/runs/${run.runId}`);
  await node(viewer, "enrich_orders").waitFor();
  assert.equal(await viewer.locator(".run-page").getAttribute("data-run-state"), "running");
  assert.equal(await viewer.locator(".actions button").count(), 0, "a viewer sees no Cancel or Repair button");
  await viewer.screenshot({ path: path.join(shots, "run-viewer.png") });
  await viewer.close();

  // The connection drops mid-run; the page follows on from the last event
  // it saw.
  assert.equal(await stateOf(page, "enrich_orders"), "running", "the slow node is still running when the viewer has looked");
  assert.ok(proxy.cut() > 0, "no connection to cut");
  await page.locator(".link-reconnecting").waitFor({ timeout: 10_000 });

  await page.locator('.dag g.node[data-node="enrich_orders"][data-state="succeeded"]').waitFor({ timeout: 60_000 });
  await page.locator('.run-page[data-run-state="succeeded"]').waitFor({ timeout: 30_000 });
  for (const name of ["load_orders", "store_totals", "report"]) assert.equal(await stateOf(page, name), "succeeded", name);
  assert.equal(await page.locator("button[data-action=cancel]").count(), 0, "an ended run has no Cancel");
  // Each state change is in the node's log once: none lost, none twice.
  const log = await page.locator(".panel .log li .log-text").allTextContents();
  assert.deepEqual(log.filter((l) => /^(Running|Succeeded)/.test(l)).map((l) => l.split(" ")[0]), ["Running", "Succeeded"], log.join("\n"));
  assert.match(await page.locator(".panel .metrics").innerText(), /seconds_done\s+10/);
  await page.screenshot({ path: path.join(shots, "run-succeeded.png") });
  await page.close();
});

test("a failing node shows its error and traceback; repair is for operators", { skip, timeout: 60_000 }, async () => {
  const { run } = await call("ExecutePipeline", { pipeline: "broken", requestId: `web-broken-${Date.now()}` }, tokens.operator);
  const page = await signIn("operator", `/runs/${run.runId}`);
  await page.locator('.dag g.node[data-node="explode"][data-state="failed"]').waitFor({ timeout: 45_000 });
  await page.locator('.run-page[data-run-state="failed"]').waitFor({ timeout: 15_000 });
  assert.equal(await stateOf(page, "publish"), "skipped");
  await node(page, "explode").click();
  const err = page.locator(".panel .error-block");
  assert.match(await err.locator(".error-message").innerText(), /ValueError: ledger balance is negative: -3/);
  const tb = await err.locator(".traceback").innerText();
  assert.match(tb, /Traceback \(most recent call last\)/);
  assert.match(tb, /in _check_ledger/);
  assert.equal(await page.locator("button[data-action=repair]").count(), 1, "an operator may repair a failed run");
  await page.screenshot({ path: path.join(shots, "run-failed.png") });

  const viewer = await signIn("viewer", `/runs/${run.runId}?node=explode`);
  await viewer.locator(".panel .traceback").waitFor();
  assert.equal(await viewer.locator(".actions button").count(), 0, "a viewer may not repair");
  await viewer.close();
  await page.close();
});

test("the runs list filters by pipeline and state", { skip, timeout: 30_000 }, async () => {
  const page = await signIn("viewer", "/");
  await page.locator("table.runs tbody tr").first().waitFor();
  assert.equal(await page.locator("table.runs tbody tr").count(), 2);
  await page.selectOption("select[name=state]", "failed");
  await page.waitForFunction(() => document.querySelectorAll("table.runs tbody tr").length === 1);
  assert.equal(await page.locator("table.runs tbody tr").getAttribute("data-state"), "failed");
  assert.match(page.url(), /state=failed/);
  await page.selectOption("select[name=state]", "");
  await page.selectOption("select[name=pipeline]", "orders");
  await page.waitForFunction(() => [...document.querySelectorAll("table.runs tbody tr td:nth-child(2)")].every((td) => td.textContent === "orders")
    && document.querySelectorAll("table.runs tbody tr").length === 1);
  await page.selectOption("select[name=pipeline]", "");
  await page.locator("table.runs tbody tr").nth(1).waitFor();
  await page.screenshot({ path: path.join(shots, "runs.png") });
  await page.close();
});

test("a node's expectation counts show on the run page, with their trend across runs", { skip, timeout: 60_000 }, async () => {
  // Two runs, so the second's page has a trend of the failed share.
  let runId;
  for (const i of [1, 2]) {
    ({ run: { runId } } = await call("ExecutePipeline", { pipeline: "checked", requestId: `web-checked-${i}-${Date.now()}` }, tokens.operator));
    for (let state = ""; state !== "RUN_STATE_SUCCEEDED";) {
      ({ run: { state } } = await call("GetRun", { runId }, tokens.viewer));
      assert.ok(!/FAILED|CANCELLED/.test(state), `run ${runId} ${state}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  const page = await signIn("viewer", `/runs/${runId}?node=checked_orders`);
  const rows = page.locator(".panel table.expectations tbody tr");
  await rows.first().waitFor({ timeout: 15_000 });
  const table = await rows.evaluateAll((trs) => trs.map((tr) => [...tr.querySelectorAll("td")].map((td) => td.textContent)));
  const byName = Object.fromEntries(table.map(([name, ...rest]) => [name, rest]));
  assert.deepEqual(byName.has_store?.slice(0, 3), ["drop", "90", "10"], JSON.stringify(table));
  assert.deepEqual(byName.small_id?.slice(0, 3), ["warn", "95", "5"], JSON.stringify(table));
  assert.ok(table.some(([, kind, , , result]) => kind === "row_count" && result === "ok"), JSON.stringify(table));
  await page.locator(".panel .chart-expectation").first().waitFor({ timeout: 15_000 });
  await page.screenshot({ path: path.join(shots, "run-expectations.png") });
  await page.close();
});
