// The web view of an execd that serves several projects (--projects), in
// headless Chromium as web.test.mjs drives it: the project switcher, each
// project's runs, the buttons the caller's role in each project allows, a
// project that is not served, and a token scoped to one project, which sees
// only it and whose calls about another are refused. One execd serves
// every case here; its two projects are SQL only (no Python workers), so
// their runs take a second or two. `make test-web` runs it; it needs $EXECD
// and $TAURO_SPARK_REMOTE. Screenshots go to .build/web-test/.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import { chromium } from "playwright-core";

import { CHROMIUM_ARGS, EXECD, repo, shots, skip, startExecd, stopExecd } from "../testing/harness.mjs";

const testdata = path.join(repo, "internal", "webui", "testdata");

// Each token's flags for `execd token`, and the role its holder has in the
// project the test looks at first.
const TOKENS = {
  viewer: ["--role", "viewer"], // a viewer of every project
  operator: ["--role", "operator"], // starts the runs the pages show
  ana: ["--project-role", "alpha=viewer", "--project-role", "beta=operator"],
  betaonly: ["--project-role", "beta=viewer"], // scoped to one project
};

let work;
let daemon;
let base;
let browser;
const tokens = {};
const tokenErrors = {};
const runs = {}; // "alpha/tally" -> run id

before(async () => {
  if (skip) return;
  mkdirSync(shots, { recursive: true });
  work = mkdtempSync(path.join(tmpdir(), "tauro-web-projects-"));
  // Node outputs are written into the projects: the test runs copies.
  cpSync(path.join(testdata, "projalpha"), path.join(work, "projA"), { recursive: true });
  cpSync(path.join(testdata, "projbeta"), path.join(work, "projB"), { recursive: true });
  // alpha by absolute path, beta relative to the file; gamma's folder is
  // missing, so execd reports it BROKEN and serves the others.
  const projectsFile = path.join(work, "projects.yaml");
  writeFileSync(projectsFile, [
    "projects:",
    "  alpha:",
    `    folder: ${JSON.stringify(path.join(work, "projA"))}`,
    "  beta:",
    "    folder: projB",
    "  gamma:",
    "    folder: gone",
    "",
  ].join("\n"));
  const tokensFile = path.join(work, "tokens.jsonl");
  for (const [name, flags] of Object.entries(TOKENS)) {
    // A token execd cannot make fails only the tests that use it.
    try {
      tokens[name] = execFileSync(EXECD, ["token", "--name", `web-${name}`, ...flags, "--append", tokensFile], { encoding: "utf8", stdio: "pipe" }).trim();
    } catch (err) {
      tokenErrors[name] = `execd token ${flags.join(" ")}: ${String(err.stderr ?? err).trim()}`;
    }
  }
  let addr;
  ({ daemon, addr } = await startExecd(["--projects", projectsFile, "--state", path.join(work, "state"), "--workers", "0", "--tokens", tokensFile]));
  base = `http://${addr}`;
  // Two runs in each project: one that succeeds, one that fails.
  const started = await Promise.all([["alpha", "tally"], ["alpha", "overdraw"], ["beta", "census"], ["beta", "recount"]].map(
    ([project, pipeline]) => call("ExecutePipeline", { project, pipeline, requestId: `web-${project}-${pipeline}` }, tokens.operator)));
  for (const { run } of started) runs[`${run.project}/${run.pipeline}`] = run.runId;
  browser = await chromium.launchPersistentContext(path.join(work, "profile"), {
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1440, height: 900 },
  });
}, { timeout: 120_000 });

after(async () => {
  await browser?.close();
  await stopExecd(daemon);
  if (work) rmSync(work, { recursive: true, force: true });
});

/** post makes a Connect call (JSON) with a token and returns the HTTP status and body. */
async function post(method, body, token) {
  const res = await fetch(`${base}/tauro.exec.v1.ExecService/${method}`, {
    method: "POST",
    headers: { "Content-Type": "application/json", "Connect-Protocol-Version": "1", Authorization: `Bearer ${token}` },
    body: JSON.stringify(body),
  });
  return { status: res.status, json: await res.json() };
}

async function call(method, body, token) {
  const { status, json } = await post(method, body, token);
  if (status !== 200) throw new Error(`${method}: ${status} ${JSON.stringify(json)}`);
  return json;
}

/** signIn opens where in a new tab and signs in with a token; role is the one the top bar shows there. */
async function signIn(name, where, role) {
  assert.ok(tokens[name], tokenErrors[name]);
  const page = await browser.newPage();
  page.on("dialog", (d) => d.accept());
  await page.goto(base + where);
  await page.locator("form.signin").waitFor();
  await page.fill("input[name=token]", tokens[name]);
  await page.click("form.signin button[type=submit]");
  await page.locator(`.who[data-role=${role}]`).waitFor();
  return page;
}

const rowIds = (page) => page.$$eval("table.runs tbody tr", (trs) => trs.map((tr) => tr.dataset.runId).sort());
const ids = (...keys) => keys.map((k) => runs[k]).sort();

/** showsRuns waits until the runs list shows exactly want (run ids). */
async function showsRuns(page, want) {
  await page.waitForFunction((w) => {
    const got = [...document.querySelectorAll("table.runs tbody tr")].map((tr) => tr.dataset.runId).sort();
    return JSON.stringify(got) === JSON.stringify(w);
  }, want, { timeout: 10_000 }).catch(async () => {
    assert.deepEqual(await rowIds(page), want);
  });
}

test("a viewer of both projects switches between them and sees each one's runs", { skip, timeout: 60_000 }, async () => {
  const page = await signIn("viewer", "/", "viewer");
  const switcher = page.locator("select[name=project]");
  assert.ok(await switcher.isVisible(), "several projects: the switcher shows");
  assert.deepEqual(await switcher.locator("option").evaluateAll((os) => os.map((o) => `${o.value}:${o.dataset.state}`)),
    ["alpha:serving", "beta:serving", "gamma:broken"]);

  // The first serving project, named in the URL.
  await page.waitForURL(/[?&]project=alpha\b/);
  assert.equal(await switcher.inputValue(), "alpha");
  await showsRuns(page, ids("alpha/tally", "alpha/overdraw"));
  assert.equal(await page.locator("button[data-action=start]").isVisible(), false, "a viewer may not start runs");
  await page.screenshot({ path: path.join(shots, "projects-alpha.png") });

  await switcher.selectOption("beta");
  await page.waitForURL(/[?&]project=beta\b/);
  await showsRuns(page, ids("beta/census", "beta/recount"));
  assert.deepEqual(await page.locator("select[name=pipeline] option").evaluateAll((os) => os.map((o) => o.value)), ["", "census", "recount"],
    "the pipeline filter offers beta's pipelines");
  await page.screenshot({ path: path.join(shots, "projects-beta.png") });

  // A project execd could not load is shown with why.
  await switcher.selectOption("gamma");
  const broken = page.locator(".project-broken");
  await broken.waitFor();
  assert.match(await broken.innerText(), /gone is not a folder/);
  await page.screenshot({ path: path.join(shots, "projects-broken.png") });

  // A run's page names its project; the switcher follows it.
  await page.goto(`${base}/runs/${runs["beta/census"]}`);
  await page.locator(".run-meta .project-name", { hasText: "beta" }).waitFor();
  assert.equal(await switcher.inputValue(), "beta");
  assert.equal(await page.locator(".actions button").count(), 0);
  await page.close();
});

test("the buttons follow the caller's role in each project", { skip, timeout: 60_000 }, async () => {
  // ana views alpha and operates beta.
  const page = await signIn("ana", "/?project=alpha", "viewer");
  await showsRuns(page, ids("alpha/tally", "alpha/overdraw"));
  assert.equal(await page.locator("button[data-action=start]").isVisible(), false, "a viewer of alpha may not start there");
  await page.goto(`${base}/runs/${runs["alpha/overdraw"]}`);
  await page.locator('.run-page[data-run-state="failed"]').waitFor({ timeout: 30_000 });
  assert.equal(await page.locator(".who").getAttribute("data-role"), "viewer");
  assert.equal(await page.locator(".actions button").count(), 0, "a viewer of alpha may not repair there");

  await page.goto(`${base}/runs/${runs["beta/recount"]}`);
  await page.locator('.run-page[data-run-state="failed"]').waitFor({ timeout: 30_000 });
  assert.equal(await page.locator(".who").getAttribute("data-role"), "operator");
  assert.equal(await page.locator("button[data-action=repair]").count(), 1, "an operator of beta may repair there");

  // Starting a run of beta from its list.
  await page.goto(`${base}/?project=beta`);
  const start = page.locator("button[data-action=start]");
  await start.waitFor();
  assert.ok(await start.isDisabled(), "a pipeline must be chosen first");
  await page.selectOption("select[name=pipeline]", "census");
  await start.click();
  await page.waitForURL(/\/runs\/[^/?]+$/);
  await page.locator(".run-meta .project-name", { hasText: "beta" }).waitFor();
  await page.locator('.run-page[data-run-state="succeeded"]').waitFor({ timeout: 30_000 });
  const started = decodeURIComponent(new URL(page.url()).pathname.split("/").pop());
  const { run } = await call("GetRun", { runId: started }, tokens.viewer);
  assert.equal(run.project, "beta");
  assert.equal(run.pipeline, "census");
  await page.screenshot({ path: path.join(shots, "projects-started.png") });
  await page.close();
});

test("a token scoped to one project sees only it; a call about another is refused", { skip, timeout: 30_000 }, async () => {
  assert.ok(tokens.betaonly, tokenErrors.betaonly);
  const { projects } = await call("ListProjects", {}, tokens.betaonly);
  assert.deepEqual(projects.map((p) => p.name), ["beta"]);

  const page = await signIn("betaonly", "/", "viewer");
  assert.equal(await page.locator("select[name=project]").isVisible(), false, "one project: no switcher");
  const beta = (await call("ListRuns", { project: "beta" }, tokens.viewer)).runs.map((r) => r.runId).sort();
  await showsRuns(page, beta);
  await page.screenshot({ path: path.join(shots, "projects-one.png") });

  // Straight to the API, as any HTTP client may: alpha is not this token's.
  for (const [method, body] of [["ListPipelines", { project: "alpha" }], ["ListRuns", { project: "alpha" }]]) {
    const { status, json } = await post(method, body, tokens.betaonly);
    assert.equal(json.code, "permission_denied", `${method} of alpha: ${status} ${JSON.stringify(json)}`);
    assert.equal(status, 403);
  }
  // And so is the page of alpha's runs.
  await page.goto(`${base}/?project=alpha`);
  await page.locator(".list-status", { hasText: "could not be listed" }).waitFor();
  assert.equal(await page.locator("table.runs tbody tr").count(), 0);
  await page.close();
});
