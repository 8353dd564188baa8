// The side panel: the selected node in detail, or the run's parameters and
// log when no node is selected.

import type { MlflowRun } from "./api";
import { h } from "./dom";
import { date, duration, iso, num, rate, span, when } from "./format";
import type { ExpectationCount, LogLine, NodeModel, RunModel } from "./model";
import { sparkline } from "./sparkline";
import type { Trend } from "./trend";
import { activeNode, badge, nodeKey } from "./states";

export function nodePanel(n: NodeModel, close: () => void, trends: Trend[] = []): HTMLElement {
  const key = nodeKey(n.state);
  const spec = n.spec;
  const out = h("div", { class: "panel-inner", "data-node": n.name },
    h("div", { class: "panel-head" },
      h("h2", { class: "panel-title" }, n.name),
      badge(key),
      h("button", { class: "btn ghost close", title: "close", "aria-label": "close", onclick: close }, "×")),
    spec?.description ? h("p", { class: "desc" }, spec.description) : null,
    facts([
      ["Kind", spec ? (spec.streaming ? `${spec.kind}, streaming` : spec.kind) : ""],
      ["Function", spec?.function ?? ""],
      ["Attempt", n.attempt ? `${n.attempt}${spec ? ` of ${spec.maxRetries + 1}` : ""}` : ""],
      ["Started", n.start ? h("time", { datetime: iso(n.start) }, when(n.start)) : ""],
      ["Ended", n.end ? h("time", { datetime: iso(n.end) }, when(n.end)) : ""],
      ["Duration", n.start ? h("span", { "data-live-start": !n.end && activeNode(n.state) ? n.start.getTime() : null }, duration(span(n.start, n.end))) : ""],
      ["Next try", n.retryAt && key === "retrying" ? h("time", { datetime: iso(n.retryAt) }, when(n.retryAt)) : ""],
      ["Inputs", spec?.inputs.join(", ") ?? ""],
      ["Outputs", spec?.outputs.join(", ") ?? ""],
    ]),
  );
  if (n.error) out.append(errorBlock(n.error.type, n.error.message, n.error.traceback, key === "skipped"));
  if (n.progress.length) out.append(progressBlock(n));
  const metrics = n.metrics.get(n.attempt);
  if (metrics && metrics.size) {
    out.append(section("Metrics", h("table", { class: "kv metrics" },
      h("tbody", null, ...[...metrics].sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) =>
        h("tr", null, h("th", null, k), h("td", { class: "num" }, num(v))))))));
  }
  const expected = n.expectations.get(n.attempt);
  if (expected?.length) out.append(expectationsBlock(expected, trends));
  if (n.attempts.length) {
    const tracked = n.attempts.some((a) => a.mlflow?.url);
    out.append(section("Attempts", h("table", { class: "grid attempts" },
      h("thead", null, h("tr", null, h("th", null, "#"), h("th", null, "State"), h("th", null, "Started"), h("th", null, "Took"), h("th", null, "Error"),
        tracked ? h("th", null, "MLflow") : null)),
      h("tbody", null, ...n.attempts.map((a) => {
        const st = date(a.startTime);
        return h("tr", null,
          h("td", { class: "num" }, String(a.attempt)),
          h("td", null, badge(nodeKey(a.state), "small")),
          h("td", null, when(st)),
          h("td", { class: "num", "data-live-start": st && !a.endTime && activeNode(a.state) ? st.getTime() : null }, duration(span(st, date(a.endTime)))),
          h("td", { class: "err-cell", title: a.error?.message ?? "" }, a.error ? `${a.error.type}: ${a.error.message}` : ""),
          tracked ? h("td", null, mlflowLink(a.mlflow, "run")) : null);
      })))));
  }
  out.append(section("Log", logList(n.log, "No events for this node yet.")));
  if (spec?.sql) out.append(h("details", { class: "sql" }, h("summary", null, "SQL"), h("pre", { class: "code" }, spec.sql.trim())));
  return out;
}

export function runPanel(m: RunModel): HTMLElement {
  const r = m.run;
  const hp = r.hyperparams && Object.keys(r.hyperparams).length ? JSON.stringify(sorted(r.hyperparams), null, 2) : "";
  return h("div", { class: "panel-inner" },
    h("div", { class: "panel-head" }, h("h2", { class: "panel-title" }, "Run")),
    h("p", { class: "hint" }, "Select a node for its attempts, errors, metrics and log."),
    facts([
      ["Request", r.requestId],
      ["Started", r.startTime ? h("time", { datetime: iso(date(r.startTime)) }, when(date(r.startTime))) : ""],
      ["Ended", r.endTime ? h("time", { datetime: iso(date(r.endTime)) }, when(date(r.endTime))) : ""],
      ["Workers", r.maxWorkers ? String(r.maxWorkers) : ""],
      ["Priority", r.priority ? String(r.priority) : ""],
      ["Selection", r.select.join(" ")],
      ["Fail fast", r.failFast ? "yes" : ""],
      ["Model", r.modelVersion],
      ["MLflow", mlflowLink(r.mlflow, "run " + (r.mlflow?.runId ?? ""))],
    ]),
    hp ? section("Hyperparameters", h("pre", { class: "code" }, hp)) : null,
    section("Log", logList(m.log, "No events yet.")),
  );
}

/** mlflowLink opens a run's page in the MLflow UI, in a new tab; "" when it has none. */
function mlflowLink(run: MlflowRun | undefined, text: string): HTMLElement | "" {
  if (!run?.url) return "";
  return h("a", { class: "mlflow", href: run.url, target: "_blank", rel: "noopener noreferrer", title: `MLflow run ${run.runId}` }, text);
}

/** sorted is a JSON value with its objects' keys in order, so it reads the same each time. */
function sorted(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sorted);
  if (v && typeof v === "object") {
    return Object.fromEntries(Object.entries(v).sort(([a], [b]) => a.localeCompare(b)).map(([k, x]) => [k, sorted(x)]));
  }
  return v;
}

function errorBlock(type: string, msg: string, traceback: string, upstream: boolean): HTMLElement {
  return h("section", { class: `error-block${upstream ? " upstream" : ""}`, role: upstream ? null : "alert" },
    h("h3", null, upstream ? "Why it was skipped" : "Error"),
    h("p", { class: "error-message" }, type && !upstream ? h("strong", { class: "error-type" }, type + ": ") : null, msg),
    traceback ? h("pre", { class: "traceback" }, traceback.trimEnd()) : null);
}

/** expectationsBlock is a node's expectation counts for its current attempt. */
function expectationsBlock(xs: ExpectationCount[], trends: Trend[]): HTMLElement {
  const shown = trends.filter((t) => t.failedShare.length > 1);
  return section("Expectations", h("div", null, h("table", { class: "grid expectations" },
    h("thead", null, h("tr", null, h("th", null, "Expectation"), h("th", null, "Kind"), h("th", null, "Passed"), h("th", null, "Failed"), h("th", null, "Result"))),
    h("tbody", null, ...xs.map((x) =>
      h("tr", { class: x.ok ? "ok" : `broken-${x.severity}` },
        h("td", null, x.name),
        h("td", null, x.kind),
        h("td", { class: "num" }, num(x.passed)),
        h("td", { class: "num" }, num(x.failed)),
        h("td", { class: x.ok ? "result-ok" : "err-cell", title: x.message }, x.ok ? "ok" : `${x.severity}: ${x.message}`))))),
    ...shown.map((t) => h("div", { class: "chart chart-expectation" },
      h("div", { class: "chart-head" }, h("span", null, `${t.name}: rows failed, last ${t.failedShare.length} runs`),
        h("span", { class: "chart-value" }, `${(100 * t.failedShare[t.failedShare.length - 1]).toFixed(1)} %`)),
      sparkline(t.failedShare, 300, 32, "expectation")))));
}

function progressBlock(n: NodeModel): HTMLElement {
  const last = n.progress[n.progress.length - 1];
  return section("Streaming progress", h("div", { class: "progress" },
    n.lag?.lagging ? h("p", { class: "lagging" }, h("strong", null, "Lagging: "), n.lag.reason) : null,
    h("div", { class: "progress-facts" },
      stat("Batch", `#${last.batchId}`),
      stat("Rows in batch", num(last.inputRows)),
      last.outputRows !== undefined ? stat("Rows written", num(last.outputRows)) : null,
      stat("Batch took", last.batchMs !== undefined ? duration(last.batchMs) : "–"),
      last.watermark ? stat("Watermark", last.watermark) : null,
      last.stateRows ? stat("State rows", num(last.stateRows)) : null),
    last.sources.length ? h("ul", { class: "progress-sources" }, ...last.sources.map((s) => h("li", null, s))) : null,
    chart("Input rows/s", n.progress.map((p) => p.inputRate), "input"),
    chart("Processed rows/s", n.progress.map((p) => p.processedRate), "processed")));
}

function chart(name: string, values: number[], cls: string): HTMLElement {
  const latest = values.length ? values[values.length - 1] : 0;
  return h("div", { class: `chart chart-${cls}` },
    h("div", { class: "chart-head" }, h("span", null, name), h("span", { class: "chart-value" }, rate(latest))),
    sparkline(values, 300, 44, cls));
}

function stat(k: string, v: string): HTMLElement {
  return h("div", { class: "stat" }, h("span", { class: "stat-k" }, k), h("span", { class: "stat-v" }, v));
}

function facts(rows: [string, Node | string][]): HTMLElement {
  const dl = h("dl", { class: "facts" });
  for (const [k, v] of rows) {
    if (v === "" || v === undefined) continue;
    dl.append(h("dt", null, k), h("dd", null, v));
  }
  return dl;
}

function section(title: string, body: Node): HTMLElement {
  return h("section", { class: "panel-section" }, h("h3", null, title), body);
}

function logList(lines: LogLine[], empty: string): HTMLElement {
  if (!lines.length) return h("p", { class: "muted" }, empty);
  return h("ol", { class: "log" }, ...lines.slice(-300).map((l) =>
    h("li", { class: `log-${l.level}` },
      h("time", { datetime: iso(l.time) }, when(l.time)),
      h("span", { class: "log-text" }, l.text))));
}
