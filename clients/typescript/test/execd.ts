// A real execd for the client tests, on a copy of cmd/execd/testdata/sqlproj
// (or of several of its projects),
// using the Spark Connect server named by $TAURO_SPARK_REMOTE (`make test`
// starts one per test run) and the daemon named by $EXECD. Nothing is mocked.

import { spawn, execFileSync } from "node:child_process";
import { cpSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import net from "node:net";

/** The repository's root, from dist/test/. */
export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../../../..");

function required(name: string, hint: string): string {
  const v = process.env[name];
  if (!v) {
    throw new Error(`${name} is not set: ${hint}`);
  }
  return v;
}

export function execdBinary(): string {
  return required("EXECD", "run these tests with `make test-typescript` inside `make test`, or build execd (`go build -o bin/execd ./cmd/execd`) and export EXECD=$PWD/bin/execd");
}

export function sparkRemote(): string {
  return required(
    "TAURO_SPARK_REMOTE",
    "`make test` starts a Spark Connect server for the test run; or start one (`bin/execd spark-server --state .build/spark-test --ready-file .build/spark-test/remote &`) and export TAURO_SPARK_REMOTE=$(cat .build/spark-test/remote)",
  );
}

export interface Daemon {
  /** http://host:port */
  readonly baseUrl: string;
  /** host:port */
  readonly addr: string;
  logs(): string;
  /** SIGTERM, then waits for a graceful exit. */
  stop(): Promise<void>;
}

/**
 * Starts `execd serve` on a free port with a temporary state folder, on
 * sqlproj, or with projects (name: a folder of cmd/execd/testdata) on a
 * projects file serving each.
 */
export async function startExecd(
  options: { args?: string[]; env?: Record<string, string>; projects?: Record<string, string> } = {},
): Promise<Daemon> {
  const root = mkdtempSync(join(tmpdir(), "tauro-ts-"));
  const copy = (testdata: string): string => {
    const dir = join(root, testdata);
    cpSync(join(repoRoot, "cmd/execd/testdata", testdata), dir, { recursive: true });
    return dir;
  };
  let served: string[];
  if (options.projects === undefined) {
    served = ["--project", copy("sqlproj")];
  } else {
    const file = join(root, "projects.yaml");
    const entries = Object.entries(options.projects).map(([name, testdata]) => `  ${name}:\n    folder: ${copy(testdata)}\n`);
    writeFileSync(file, `projects:\n${entries.join("")}`);
    served = ["--projects", file];
  }
  const args = ["serve", ...served, "--state", join(root, "state"), "--listen", "127.0.0.1:0",
    "--spark-remote", sparkRemote(), "--workers", "0", ...(options.args ?? [])];
  const child = spawn(execdBinary(), args, { env: { ...process.env, ...options.env }, stdio: ["ignore", "pipe", "pipe"] });
  let logs = "";
  child.stderr.setEncoding("utf8").on("data", (s: string) => (logs += s));
  const exited = new Promise<number | null>((res) => child.once("exit", (code) => res(code)));
  const addr = await new Promise<string>((res, rej) => {
    let out = "";
    const timer = setTimeout(() => rej(new Error(`execd did not listen within 4 minutes:\n${logs}`)), 240_000);
    child.stdout.setEncoding("utf8").on("data", (s: string) => {
      out += s;
      const m = /execd listening on (\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        res(m[1]);
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      rej(new Error(`execd exited (${code}) before listening:\n${logs}`));
    });
  });
  return {
    baseUrl: `http://${addr}`,
    addr,
    logs: () => logs,
    async stop() {
      if (child.exitCode === null) {
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), 40_000);
        await exited;
        clearTimeout(timer);
      }
      rmSync(root, { recursive: true, force: true });
    },
  };
}

/** Makes a tokens file with one token per role; returns its path and the tokens. */
export function makeTokens(roles: string[]): { path: string; tokens: Record<string, string> } {
  const path = join(mkdtempSync(join(tmpdir(), "tauro-ts-tokens-")), "tokens.jsonl");
  const tokens: Record<string, string> = {};
  for (const role of roles) {
    tokens[role] = execFileSync(execdBinary(), ["token", "--name", `ts-${role}`, "--role", role, "--append", path], { encoding: "utf8" }).trim();
  }
  return { path, tokens };
}

/**
 * A TCP proxy in front of execd whose connections the test can cut, as a
 * network or a load balancer would: cut() destroys every open connection;
 * new ones go through again.
 */
export class CuttableProxy {
  private constructor(
    private readonly server: net.Server,
    private readonly sockets: Set<net.Socket>,
    readonly baseUrl: string,
  ) {}

  static async start(target: string): Promise<CuttableProxy> {
    const [host, port] = splitHostPort(target);
    const sockets = new Set<net.Socket>();
    const server = net.createServer((client) => {
      const upstream = net.connect({ host, port });
      for (const s of [client, upstream]) {
        sockets.add(s);
        s.on("close", () => sockets.delete(s));
        s.on("error", () => {
          client.destroy();
          upstream.destroy();
        });
      }
      client.pipe(upstream);
      upstream.pipe(client);
    });
    await new Promise<void>((res) => server.listen(0, "127.0.0.1", res));
    const { port: p } = server.address() as net.AddressInfo;
    return new CuttableProxy(server, sockets, `http://127.0.0.1:${p}`);
  }

  /** Destroys every connection through the proxy; returns how many. */
  cut(): number {
    const n = this.sockets.size;
    for (const s of this.sockets) {
      s.destroy();
    }
    return n;
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((res) => this.server.close(() => res()));
  }
}

function splitHostPort(addr: string): [string, number] {
  const i = addr.lastIndexOf(":");
  return [addr.slice(0, i), Number(addr.slice(i + 1))];
}
