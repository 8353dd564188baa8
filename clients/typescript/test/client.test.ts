// The TypeScript client against a real execd and the test run's Spark.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import {
  Code,
  ConnectError,
  createTauroClient,
  isTerminal,
  NodeState,
  ProjectState,
  Role,
  RunState,
  type RunEvent,
  type TauroClient,
} from "../src/index.js";
import { CuttableProxy, makeTokens, startExecd, type Daemon } from "./execd.js";

const timeout = 180_000;

/** Fails unless events carry the sequences from+1, from+2, ... with none twice. */
function assertContiguous(events: RunEvent[], from = 0n): void {
  const seqs = events.map((e) => e.sequence);
  assert.equal(new Set(seqs).size, seqs.length, `a sequence came twice: ${seqs.join(",")}`);
  seqs.forEach((s, i) => assert.equal(s, from + BigInt(i) + 1n, `gap or reorder at ${i}: ${seqs.join(",")}`));
}

function runEnd(events: RunEvent[]): RunState | undefined {
  const last = events.at(-1)?.kind;
  return last?.case === "runStateChanged" ? last.value.state : undefined;
}

function isNodeState(ev: RunEvent, node: string, state: NodeState): boolean {
  return ev.kind.case === "nodeStateChanged" && ev.kind.value.node === node && ev.kind.value.state === state;
}

async function codeOf(p: Promise<unknown>): Promise<Code | undefined> {
  try {
    await p;
    return undefined;
  } catch (err) {
    assert.ok(err instanceof ConnectError, `not a ConnectError: ${String(err)}`);
    return err.code;
  }
}

describe("the client against execd", () => {
  let execd: Daemon;
  let client: TauroClient;

  before(async () => {
    // The slow pipeline's middle node naps 4 s: long enough to act while
    // it runs, short enough for a repair to finish quickly.
    execd = await startExecd({ env: { NAP_MS: "4000" } });
    client = createTauroClient({ baseUrl: execd.baseUrl });
  });
  after(async () => {
    await execd?.stop();
  });

  test("execute, then watch to the end", { timeout }, async () => {
    assert.ok((await client.pipelines()).some((p) => p.name === "quick"));
    const run = await client.execute("quick", { requestId: "ts-quick-1" });
    assert.equal(run.pipeline, "quick");
    const again = await client.execute("quick", { requestId: "ts-quick-1" });
    assert.equal(again.runId, run.runId, "the same request id started a second run");

    const events: RunEvent[] = [];
    for await (const ev of client.watch(run.runId)) {
      events.push(ev);
    }
    assertContiguous(events);
    assert.equal(runEnd(events), RunState.SUCCEEDED);
    const done = await client.getRun(run.runId);
    assert.equal(done.state, RunState.SUCCEEDED);
    assert.equal(done.lastSequence, events.at(-1)?.sequence);
    assert.deepEqual(done.nodes.map((n) => n.state), done.nodes.map(() => NodeState.SUCCEEDED));

    const page = await client.listRuns({ pipeline: "quick", states: [RunState.SUCCEEDED] });
    assert.ok(page.runs.some((r) => r.runId === run.runId));
  });

  test("gRPC-Web with binary protobuf runs the same calls", { timeout }, async () => {
    const web = createTauroClient({ baseUrl: execd.baseUrl, protocol: "grpc-web", binary: true });
    const run = await web.execute("quick");
    const ended = await web.wait(run.runId);
    assert.equal(ended.state, RunState.SUCCEEDED);
    const events: RunEvent[] = [];
    for await (const ev of web.watch(run.runId, { afterSequence: 2 })) {
      events.push(ev);
    }
    assertContiguous(events, 2n);
  });

  test("a stream cut by the network resumes after the last event, with no gap and no duplicate", { timeout }, async () => {
    const proxy = await CuttableProxy.start(execd.addr);
    try {
      const viaProxy = createTauroClient({ baseUrl: proxy.baseUrl });
      const run = await viaProxy.execute("slow");
      const events: RunEvent[] = [];
      const reconnects: bigint[] = [];
      let cutAt: bigint | undefined;
      for await (const ev of viaProxy.watch(run.runId, { onReconnect: (after) => reconnects.push(after) })) {
        events.push(ev);
        if (cutAt === undefined && isNodeState(ev, "nap", NodeState.RUNNING)) {
          // The nap holds the stream open: cut it under the client.
          assert.ok(proxy.cut() > 0, "no connection to cut");
          cutAt = ev.sequence;
        }
      }
      assert.ok(cutAt !== undefined, "the nap never ran");
      assert.ok(reconnects.length >= 1, "the client did not reconnect");
      assert.equal(reconnects[0], cutAt, "the client resumed from another sequence than the last it saw");
      assertContiguous(events);
      assert.equal(runEnd(events), RunState.SUCCEEDED);
    } finally {
      await proxy.close();
    }
  });

  test("a stream the caller aborts is resumed with afterSequence", { timeout }, async () => {
    const run = await client.execute("slow");
    const first: RunEvent[] = [];
    const stop = new AbortController();
    const code = await codeOf(
      (async () => {
        for await (const ev of client.watch(run.runId, { signal: stop.signal })) {
          first.push(ev);
          if (isNodeState(ev, "nap", NodeState.RUNNING)) {
            stop.abort();
          }
        }
      })(),
    );
    assert.equal(code, Code.Canceled);
    const last = first.at(-1)?.sequence ?? 0n;
    assert.ok(last > 0n);
    const rest: RunEvent[] = [];
    for await (const ev of client.watch(run.runId, { afterSequence: last })) {
      rest.push(ev);
    }
    assertContiguous([...first, ...rest]);
    assert.equal(runEnd(rest), RunState.SUCCEEDED);
  });

  test("cancel stops a running run, and repair finishes it", { timeout }, async () => {
    const run = await client.execute("slow");
    for await (const ev of client.watch(run.runId)) {
      if (isNodeState(ev, "nap", NodeState.RUNNING)) {
        break;
      }
    }
    const cancelled = await client.cancel(run.runId, "the TypeScript test says stop");
    assert.ok([RunState.CANCELLED, RunState.RUNNING].includes(cancelled.state));
    const ended = await client.wait(run.runId);
    assert.equal(ended.state, RunState.CANCELLED);
    assert.ok(isTerminal(ended.state));

    const repaired = await client.repair(run.runId, { requestId: "ts-repair-1" });
    assert.equal(repaired.repairCount, 1);
    const events: RunEvent[] = [];
    for await (const ev of client.watch(run.runId, { afterSequence: ended.lastSequence })) {
      events.push(ev);
    }
    assertContiguous(events, ended.lastSequence);
    const final = await client.getRun(run.runId);
    assert.equal(final.state, RunState.SUCCEEDED);
    assert.equal(final.nodes.find((n) => n.name === "prepare")?.attempt, 1, "the repair ran a node that had succeeded");
  });

  test("bad input is refused by execd's validation", { timeout }, async () => {
    assert.equal(await codeOf(client.getRun("")), Code.InvalidArgument);
    // execd's own InvalidArgument (it carries details) is thrown, not retried.
    assert.equal(await codeOf(client.watch("").next()), Code.InvalidArgument);
    assert.equal(await codeOf(client.getRun("no-such-run")), Code.NotFound);
    assert.equal(await codeOf(client.watch("no-such-run").next()), Code.NotFound);
  });
});

describe("the client with tokens", () => {
  let execd: Daemon;
  let tokens: Record<string, string>;

  before(async () => {
    const made = makeTokens(["viewer", "operator"]);
    tokens = made.tokens;
    execd = await startExecd({ args: ["--tokens", made.path] });
  });
  after(async () => {
    await execd?.stop();
  });

  test("a wrong token or none is Unauthenticated; roles apply", { timeout }, async () => {
    for (const token of [undefined, "tauro_not-a-token"]) {
      const c = createTauroClient({ baseUrl: execd.baseUrl, token });
      assert.equal(await codeOf(c.pipelines()), Code.Unauthenticated);
      assert.equal(await codeOf(c.watch("any-run").next()), Code.Unauthenticated, "watch retried an answer of execd");
    }
    const viewer = createTauroClient({ baseUrl: execd.baseUrl, token: tokens.viewer });
    assert.ok((await viewer.pipelines()).length > 0);
    assert.equal(await codeOf(viewer.execute("quick")), Code.PermissionDenied);

    // The token may come from a function, read at each call.
    let current = tokens.viewer;
    const operator = createTauroClient({ baseUrl: execd.baseUrl, token: () => current });
    assert.equal(await codeOf(operator.execute("quick")), Code.PermissionDenied);
    current = tokens.operator;
    const run = await operator.execute("quick");
    assert.equal((await viewer.wait(run.runId)).state, RunState.SUCCEEDED);
  });
});

describe("the client against an execd serving two projects", () => {
  let execd: Daemon;

  before(async () => {
    execd = await startExecd({ projects: { alpha: "sqlproj", beta: "tinyproj" } });
  });
  after(async () => {
    await execd?.stop();
  });

  test("the project option names the project; listProjects lists both", { timeout }, async () => {
    const projects = await createTauroClient({ baseUrl: execd.baseUrl }).listProjects();
    assert.deepEqual(projects.map((p) => [p.name, p.state, p.role]), [
      ["alpha", ProjectState.SERVING, Role.ADMIN],
      ["beta", ProjectState.SERVING, Role.ADMIN],
    ]);

    const anywhere = createTauroClient({ baseUrl: execd.baseUrl });
    assert.equal(await codeOf(anywhere.execute("tiny")), Code.InvalidArgument);

    const beta = createTauroClient({ baseUrl: execd.baseUrl, project: "beta" });
    assert.deepEqual((await beta.pipelines()).map((p) => p.name), ["tiny"]);
    const run = await beta.execute("tiny");
    assert.equal(run.project, "beta");
    const quick = await beta.execute("quick", { project: "alpha" });
    assert.equal(quick.project, "alpha");
    assert.equal((await beta.wait(run.runId)).state, RunState.SUCCEEDED);
    assert.equal((await beta.wait(quick.runId)).state, RunState.SUCCEEDED);

    const listed = (await beta.listRuns()).runs;
    assert.deepEqual(listed.map((r) => [r.runId, r.project]), [[run.runId, "beta"]]);
    const every = (await beta.listRuns({ project: "" })).runs;
    assert.deepEqual(new Set(every.map((r) => r.runId)), new Set([run.runId, quick.runId]));
  });
});
