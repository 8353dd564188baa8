// What the browser tests share: where things are, whether they can run,
// Chromium's flags, and an execd started and stopped for a test file.

import { spawn } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../..");
export const shots = path.join(repo, ".build", "web-test");

export const { EXECD, TAURO_SPARK_REMOTE } = process.env;
export const python = process.env.TAURO_PYTHON || path.join(repo, ".venv", "bin", "python");
const missing = !EXECD || !TAURO_SPARK_REMOTE;
if (missing && process.env.TAURO_REQUIRE_SPARK) {
  throw new Error("the browser test needs $EXECD and $TAURO_SPARK_REMOTE (make test-web inside make test sets them)");
}
export const skip = missing ? "needs $EXECD and $TAURO_SPARK_REMOTE" : false;

// Chromium as the brief of these tests fixes it: no sandbox (root in CI),
// no GPU, nothing fetched in the background.
export const CHROMIUM_ARGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];

/**
 * startExecd runs `execd serve` with args on the test run's Spark, on a
 * free port, and resolves to the process and its address once it listens.
 */
export async function startExecd(args) {
  const daemon = spawn(EXECD, [
    "serve", ...args, "--listen", "127.0.0.1:0", "--spark-remote", TAURO_SPARK_REMOTE, "--python", python,
    "--log-level", "warn",
  ], { stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  daemon.stderr.on("data", (b) => { stderr += b; });
  const addr = await new Promise((resolve, reject) => {
    let out = "";
    daemon.stdout.on("data", (b) => {
      out += b;
      const m = out.match(/execd listening on (\S+)/);
      if (m) resolve(m[1]);
    });
    daemon.on("exit", (code) => reject(new Error(`execd exited (${code}) before it listened:\n${stderr.slice(-3000)}`)));
  });
  return { daemon, addr };
}

/** stopExecd stops a daemon startExecd started, if it still runs. */
export async function stopExecd(daemon) {
  if (daemon && daemon.exitCode === null) {
    const exited = new Promise((r) => daemon.once("exit", r));
    daemon.kill("SIGTERM");
    await exited;
  }
}
