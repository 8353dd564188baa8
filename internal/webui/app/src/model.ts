// What the run page knows of a run: a GetRun snapshot brought up to date by
// the run's events. A snapshot says which event it reflects
// (last_sequence); an event newer than that changes a node's state, an
// older one (the replay from the start) only fills the logs and charts.

import type { Attempt, ExpectationResult, NodeError, NodeSpec, Run, RunEvent } from "./api";
import { LagState, NodeState, RunState } from "./api";
import { date, duration } from "./format";
import { label, nodeKey } from "./states";

export interface LogLine {
  seq: bigint;
  time?: Date;
  level: "info" | "warning" | "error" | "state";
  text: string;
}

export interface Progress {
  time?: Date;
  batchId: bigint;
  inputRows: bigint;
  inputRate: number;
  processedRate: number;
  batchMs?: number;
  watermark: string;
  stateRows: bigint;
  // Each source's offsets where the batch ended, "description: offset".
  sources: string[];
  // Rows the sink wrote; undefined when it does not say.
  outputRows?: bigint;
}

export interface Lag {
  lagging: boolean;
  reason: string;
  time?: Date;
}

// An expectation's counts over an attempt: for a streaming node, the sum
// over the micro-batches reported so far.
export interface ExpectationCount {
  name: string;
  kind: string;
  severity: string;
  passed: bigint;
  failed: bigint;
  ok: boolean;
  message: string;
}

export interface NodeModel {
  name: string;
  spec?: NodeSpec;
  state: NodeState;
  stateSeq: bigint; // the event (or snapshot) the state comes from
  attempt: number;
  start?: Date;
  end?: Date;
  retryAt?: Date;
  error?: NodeError;
  attempts: Attempt[];
  metrics: Map<number, Map<string, number>>; // by attempt
  expectations: Map<number, ExpectationCount[]>; // by attempt
  log: LogLine[];
  progress: Progress[];
  lag?: Lag; // the newest lag event of its query
}

// Charts keep this many micro-batches.
const PROGRESS_KEPT = 120;

export class RunModel {
  run: Run;
  nodes = new Map<string, NodeModel>();
  order: string[] = [];
  log: LogLine[] = []; // the run's own state changes
  lastSeq = 0n; // the newest event applied
  private snapSeq = 0n;

  constructor(run: Run, specs: NodeSpec[]) {
    this.run = run;
    const bySpec = new Map(specs.map((s) => [s.name, s]));
    for (const n of run.nodes) {
      this.order.push(n.name);
      this.nodes.set(n.name, {
        name: n.name, spec: bySpec.get(n.name), state: NodeState.PENDING, stateSeq: 0n, attempt: 0,
        attempts: [], metrics: new Map(), expectations: new Map(), log: [], progress: [],
      });
    }
    this.snapshot(run);
  }

  /** edges are the dependencies among the run's nodes. */
  edges(): [string, string][] {
    const out: [string, string][] = [];
    for (const n of this.nodes.values()) {
      for (const d of n.spec?.dependencies ?? []) {
        if (this.nodes.has(d)) out.push([d, n.name]);
      }
    }
    return out;
  }

  /** snapshot takes a GetRun answer. */
  snapshot(run: Run): void {
    if (run.lastSequence < this.snapSeq) return; // an answer overtaken by another
    this.snapSeq = run.lastSequence;
    const liveRun = this.run.state;
    this.run = run;
    if (this.lastSeq > run.lastSequence) this.run.state = liveRun;
    for (const r of run.nodes) {
      const n = this.nodes.get(r.name);
      if (!n) continue;
      n.attempts = r.attempts;
      for (const a of r.attempts) {
        const m = n.metrics.get(a.attempt) ?? new Map<string, number>();
        for (const [k, v] of Object.entries(a.metrics)) m.set(k, v);
        n.metrics.set(a.attempt, m);
        // The snapshot's sums hold every event up to it; newer ones add on.
        if (a.expectations.length) n.expectations.set(a.attempt, a.expectations.map(count));
      }
      if (run.lastSequence < n.stateSeq) continue;
      n.stateSeq = run.lastSequence;
      n.state = r.state;
      n.attempt = r.attempt;
      n.start = date(r.startTime);
      n.end = date(r.endTime);
      n.error = r.error;
    }
  }

  /** apply takes one event; it reports whether a state changed. */
  apply(ev: RunEvent): boolean {
    if (ev.sequence <= this.lastSeq) return false;
    this.lastSeq = ev.sequence;
    const time = date(ev.time);
    const k = ev.kind;
    switch (k.case) {
      case "runStateChanged": {
        const st = (RunState[k.value.state] ?? "").toLowerCase();
        this.log.push({ seq: ev.sequence, time, level: "state", text: `Run ${label(st).toLowerCase()}${k.value.message ? ": " + k.value.message : ""}` });
        if (ev.sequence > this.snapSeq) {
          this.run.state = k.value.state;
          if (k.value.message) this.run.message = k.value.message;
        }
        return true;
      }
      case "nodeStateChanged": {
        const e = k.value;
        const n = this.nodes.get(e.node);
        if (!n) return false;
        const key = nodeKey(e.state);
        let text = `${label(key)}${e.attempt ? ` (attempt ${e.attempt})` : ""}`;
        if (e.duration) text += ` after ${duration(Number(e.duration.seconds) * 1000 + e.duration.nanos / 1e6)}`;
        if (e.retryIn) text += `; next attempt in ${duration(Number(e.retryIn.seconds) * 1000 + e.retryIn.nanos / 1e6)}`;
        if (e.error) text += `: ${e.error.type ? e.error.type + ": " : ""}${e.error.message}`;
        n.log.push({ seq: ev.sequence, time, level: e.error && e.state !== NodeState.RETRYING ? "error" : "state", text });
        if (ev.sequence <= this.snapSeq || ev.sequence <= n.stateSeq) return false;
        n.stateSeq = ev.sequence;
        if (e.state === NodeState.RUNNING && e.attempt !== n.attempt) {
          n.start = time;
          n.end = undefined;
          n.error = undefined;
        }
        n.state = e.state;
        if (e.attempt) n.attempt = e.attempt;
        n.retryAt = e.retryIn && time ? new Date(time.getTime() + Number(e.retryIn.seconds) * 1000) : undefined;
        if (e.error) n.error = e.error;
        if (e.duration || e.state === NodeState.SKIPPED || e.state === NodeState.CANCELLED) n.end = time;
        return true;
      }
      case "runMessage": {
        this.log.push({ seq: ev.sequence, time, level: k.value.level === "warning" ? "warning" : "info", text: k.value.text });
        return false;
      }
      case "nodeMessage": {
        const n = this.nodes.get(k.value.node);
        n?.log.push({ seq: ev.sequence, time, level: k.value.level === "warning" ? "warning" : "info", text: k.value.text });
        return false;
      }
      case "nodeMetric": {
        const n = this.nodes.get(k.value.node);
        if (!n) return false;
        const m = n.metrics.get(k.value.attempt) ?? new Map<string, number>();
        m.set(k.value.name, k.value.value);
        n.metrics.set(k.value.attempt, m);
        return false;
      }
      case "nodeProgress": {
        const p = k.value;
        const n = this.nodes.get(p.node);
        if (!n) return false;
        n.progress.push({
          time, batchId: p.batchId, inputRows: p.inputRows, inputRate: p.inputRowsPerSecond,
          processedRate: p.processedRowsPerSecond,
          batchMs: p.batchDuration ? Number(p.batchDuration.seconds) * 1000 + p.batchDuration.nanos / 1e6 : undefined,
          watermark: p.watermark, stateRows: p.stateRows,
          sources: p.sources.map((s) => `${s.description}: ${s.endOffset || "–"}`),
          outputRows: p.sink && p.sink.outputRows >= 0n ? p.sink.outputRows : undefined,
        });
        if (n.progress.length > PROGRESS_KEPT) n.progress.splice(0, n.progress.length - PROGRESS_KEPT);
        return false;
      }
      case "nodeExpectations": {
        const x = k.value;
        const n = this.nodes.get(x.node);
        if (!n) return false;
        const broken = x.results.filter((r) => !r.ok);
        if (broken.length) {
          const batch = x.batchId !== undefined ? ` (batch ${x.batchId})` : "";
          n.log.push({ seq: ev.sequence, time, level: broken.some((r) => r.severity === "error") ? "error" : "warning",
            text: `Expectations${batch}: ${broken.map((r) => `${r.name}: ${r.message}`).join("; ")}` });
        }
        if (ev.sequence <= this.snapSeq) return false;
        const sums = n.expectations.get(x.attempt) ?? [];
        for (const r of x.results) {
          const c = sums.find((s) => s.name === r.name && s.kind === r.kind);
          if (!c) {
            sums.push(count(r));
            continue;
          }
          c.passed += r.passed;
          c.failed += r.failed;
          if (!r.ok) {
            c.ok = false;
            c.message = r.message;
          }
        }
        n.expectations.set(x.attempt, sums);
        return true;
      }
      case "nodeLag": {
        const g = k.value;
        const n = this.nodes.get(g.node);
        if (!n) return false;
        const lagging = g.state === LagState.LAGGING;
        n.log.push({ seq: ev.sequence, time, level: lagging ? "warning" : "info", text: `${lagging ? "Lagging" : "Caught up"}: ${g.reason}` });
        n.lag = { lagging, reason: g.reason, time };
        return true;
      }
    }
    return false;
  }
}

function count(r: ExpectationResult): ExpectationCount {
  return { name: r.name, kind: r.kind, severity: r.severity, passed: r.passed, failed: r.failed, ok: r.ok, message: r.message };
}
