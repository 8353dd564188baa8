// The run page: a header with the run's id, project, pipeline, state and actions,
// the DAG with every node's live state, a timeline of the nodes, and a side
// panel with the selected node's attempts, error, metrics, progress and log.

import { api, follow, message, type Link, ProjectState, type Run } from "./api";
import { Dag } from "./dag";
import { h, replace } from "./dom";
import { date, duration, iso, span, when } from "./format";
import { RunModel, type NodeModel } from "./model";
import { expectationTrends, TREND_RUNS } from "./trend";
import { nodePanel, runPanel } from "./panel";
import type { Page, Session } from "./session";
import { runsHref } from "./projects";
import { activeNode, activeRun, badge, label, nodeKey, repairableRun, runKey } from "./states";
import { RunState } from "./api";

export function runPage(runId: string, session: Session): Page {
  const stop = new AbortController();
  const el = h("section", { class: "run-page" }, h("p", { class: "muted pad" }, "Loading run…"));
  let model: RunModel | undefined;
  // The pipeline's recent runs, for the expectation trends; read once.
  let recent: Run[] = [];
  let dag: Dag | undefined;
  let selected: string | undefined = new URLSearchParams(location.search).get("node") ?? undefined;
  let link: Link | "ended" = "live";
  let notice = "";
  // The run's project: the URL's until the run is read, then the run's own.
  // Every call names it, so a run of another project is not found.
  let project = new URLSearchParams(location.search).get("project") ?? "";

  const head = h("header", { class: "run-head" });
  const graph = h("div", { class: "dag", "aria-label": "DAG" });
  const timeline = h("div", { class: "timeline" });
  const panel = h("aside", { class: "panel", "aria-label": "details" });

  // Renders are batched to one per frame; the clock re-renders running
  // durations each second.
  let pending = false;
  const render = () => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => {
      pending = false;
      draw();
    });
  };
  const clock = setInterval(() => {
    if (model && activeRun(model.run.state)) render();
  }, 1000);

  // A snapshot after state changes brings attempts and times; a few
  // changes in a row cost one GetRun.
  let refreshTimer: ReturnType<typeof setTimeout> | undefined;
  const refresh = () => {
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(async () => {
      try {
        const { run } = await api.getRun({ runId, project });
        if (run && model) {
          model.snapshot(run);
          render();
        }
      } catch (err) {
        session.failed(err);
      }
    }, 300);
  };

  const watch = async () => {
    if (!model) return;
    link = "live";
    try {
      await follow(runId, model.lastSeq, (ev) => {
        if (model!.apply(ev)) refresh();
        render();
      }, (l) => {
        link = l;
        render();
      }, stop.signal);
      if (!stop.signal.aborted) {
        link = "ended";
        refresh();
      }
    } catch (err) {
      session.failed(err);
      notice = `Live updates stopped: ${message(err)}`;
    }
    render();
  };

  const select = (name: string | undefined) => {
    selected = name === selected ? undefined : name;
    const url = new URL(location.href);
    if (selected) url.searchParams.set("node", selected);
    else url.searchParams.delete("node");
    history.replaceState(null, "", url);
    dag?.select(selected);
    render();
  };

  const act = async (what: string, call: () => Promise<{ run?: Run }>) => {
    if (!confirm(`${what} run ${runId}?`)) return;
    notice = "";
    try {
      const { run } = await call();
      if (run && model) model.snapshot(run);
      if (link === "ended") void watch(); // a repaired run runs again
    } catch (err) {
      session.failed(err);
      notice = `${what} failed: ${message(err)}`;
    }
    render();
  };

  // The trend is an extra: a failure to list the runs leaves it out.
  const loadRecent = async (run: Run) => {
    try {
      recent = (await api.listRuns({ project, pipeline: run.pipeline, pageSize: TREND_RUNS })).runs;
      render();
    } catch (err) {
      session.failed(err);
    }
  };

  // Parts are rebuilt only when what they show changes, so a button is not
  // replaced under the pointer nor a selection in the traceback lost; the
  // clock only moves running durations (liveDurations).
  function draw() {
    if (!model) return;
    const run = model.run;
    el.dataset.runState = runKey(run.state);
    keyed(head, headKey(), drawHead);
    for (const n of model.nodes.values()) {
      const key = nodeKey(n.state);
      const took = duration(span(n.start, n.end));
      let sub = label(key);
      if (n.attempt > 1) sub += ` · try ${n.attempt}`;
      if (took && (n.end || activeNode(n.state))) sub += ` · ${took}`;
      dag?.update(n.name, { state: key, sub });
    }
    drawTimeline();
    const n = selected ? model.nodes.get(selected) : undefined;
    keyed(panel, n ? `node ${nodeSignature(n)} ${recent.length}` : `run ${run.state} ${model.log.length} ${run.endTime?.seconds}`,
      () => replace(panel, n ? nodePanel(n, () => select(undefined), expectationTrends(recent, n.name)) : runPanel(model!)));
    liveDurations(el);
  }

  function headKey(): string {
    const run = model!.run;
    return JSON.stringify([run.state, link, notice, run.message, run.repairCount, String(run.startTime?.seconds), String(run.endTime?.seconds),
      [...model!.nodes.values()].map((n) => n.state)]);
  }

  function drawHead() {
    const run = model!.run;
    const state = runKey(run.state);
    const start = date(run.startTime);
    const end = date(run.endTime);
    const actions = h("div", { class: "actions" });
    // What the caller's role in the run's project allows.
    if (session.canOperate(project)) {
      if (activeRun(run.state)) {
        actions.append(h("button", { class: "btn danger", "data-action": "cancel", onclick: () => act("Cancel", () => api.cancelRun({ runId, project, reason: `cancelled by ${session.caller.name} in the web view` })) }, "Cancel run"));
        const streaming = [...model!.nodes.values()].some((n) => n.spec?.streaming);
        if (streaming && run.state === RunState.RUNNING) {
          actions.append(h("button", { class: "btn", "data-action": "stop", onclick: () => act("Stop the streams of", () => api.stopRun({ runId, project, reason: `stopped by ${session.caller.name} in the web view` })) }, "Stop streams"));
        }
      }
      if (repairableRun(run.state)) {
        const requestId = crypto.randomUUID(); // a retried click repairs once
        actions.append(h("button", { class: "btn primary", "data-action": "repair", onclick: () => act("Repair", () => api.repairRun({ runId, project, requestId })) }, "Repair run"));
      }
    }
    const listed = session.projects.find((p) => p.name === project);
    const several = session.projects.length > 1;
    const counts = new Map<string, number>();
    for (const n of model!.nodes.values()) counts.set(nodeKey(n.state), (counts.get(nodeKey(n.state)) ?? 0) + 1);

    replace(head,
      h("div", { class: "run-title" },
        h("a", { href: runsHref(several ? project : ""), "data-link": "", class: "crumb" }, several && project ? `Runs · ${project}` : "Runs"),
        h("span", { class: "crumb-sep" }, "/"),
        h("h1", { class: "run-id", title: "run id" }, run.runId),
        badge(state, "big"),
        h("span", { class: `link link-${link}`, title: "live updates" }, link === "live" ? "live" : link === "ended" ? "" : "reconnecting…"),
      ),
      h("div", { class: "run-meta" },
        project ? meta("Project", h("a", { href: runsHref(project), "data-link": "", class: "project-name", "data-state": listed?.state === ProjectState.BROKEN ? "broken" : null },
          listed?.state === ProjectState.BROKEN ? `${project} (broken)` : project)) : null,
        meta("Pipeline", h("a", { href: runsHref(several ? project : "", { pipeline: run.pipeline }), "data-link": "", class: "pipeline-name" }, run.pipeline)),
        meta("Env", run.env),
        run.startDate || run.endDate ? meta("Dates", `${run.startDate} → ${run.endDate}`) : null,
        meta("Created", h("time", { datetime: iso(date(run.createTime)) }, when(date(run.createTime)))),
        meta("Duration", h("span", { class: "run-duration", "data-live-start": start && !end ? start.getTime() : null }, duration(span(start, end)))),
        run.repairCount ? meta("Repairs", String(run.repairCount)) : null,
        meta("Nodes", h("span", { class: "counts" }, ...[...counts].map(([k, c]) => h("span", { class: `count st-${k}`, title: label(k) }, `${c} ${label(k).toLowerCase()}`)))),
        actions,
      ),
      run.message && !activeRun(run.state) ? h("p", { class: `run-message st-${state}` }, run.message) : null,
      notice ? h("p", { class: "notice", role: "alert" }, notice) : null,
    );
  }

  // The timeline's rows are made once; each draw moves their bars.
  let rows: Map<string, { row: HTMLElement; bar: HTMLElement; dur: HTMLElement }> | undefined;
  function drawTimeline() {
    if (!model) return;
    if (!rows) {
      rows = new Map();
      for (const name of model.order) {
        const bar = h("div", { class: "bar" });
        const dur = h("span", { class: "tl-dur" });
        const row = h("div", { class: "tl-row", "data-node": name, onclick: () => select(name) },
          h("span", { class: "tl-name", title: name }, name), h("span", { class: "tl-track" }, bar), dur);
        rows.set(name, { row, bar, dur });
      }
      replace(timeline, h("h2", { class: "section-title" }, "Timeline"), ...[...rows.values()].map((r) => r.row));
    }
    const t0 = date(model.run.startTime)?.getTime();
    const now = Date.now();
    let t1 = date(model.run.endTime)?.getTime() ?? now;
    for (const n of model.nodes.values()) t1 = Math.max(t1, n.end?.getTime() ?? (n.start ? now : 0));
    const total = t0 !== undefined ? Math.max(t1 - t0, 1) : 1;
    for (const [name, { row, bar, dur }] of rows) {
      const n = model.nodes.get(name)!;
      row.classList.toggle("selected", name === selected);
      bar.className = `bar st-${nodeKey(n.state)}`;
      if (t0 !== undefined && n.start) {
        const a = n.start.getTime() - t0;
        const b = (n.end?.getTime() ?? now) - t0;
        bar.style.left = `${(100 * a) / total}%`;
        bar.style.width = `${Math.max((100 * (b - a)) / total, 0.4)}%`;
      } else {
        bar.classList.add("none");
      }
      dur.textContent = duration(span(n.start, n.end));
    }
  }

  void (async () => {
    try {
      const { run } = await api.getRun({ runId, project });
      if (!run) throw new Error("GetRun answered without a run");
      project = run.project;
      session.show(project);
      let specs: Awaited<ReturnType<typeof api.getPipeline>>["pipeline"];
      try {
        specs = (await api.getPipeline({ project, name: run.pipeline, env: run.env })).pipeline;
      } catch (err) {
        // The pipeline may have left the project since; the nodes still show.
        session.failed(err);
        notice = `The pipeline's current configuration is not available (${message(err)}): the graph has no edges.`;
      }
      model = new RunModel(run, specs?.nodes ?? []);
      dag = new Dag(model.order, model.edges(), select);
      dag.select(selected);
      replace(graph, dag.el);
      replace(el, head, h("div", { class: "run-body" }, h("div", { class: "run-main" }, graph, timeline), panel));
      draw();
      void watch();
      void loadRecent(run);
    } catch (err) {
      session.failed(err);
      replace(el, h("div", { class: "empty" },
        h("h1", null, "Run not shown"),
        h("p", null, message(err)),
        h("a", { href: runsHref(session.projects.length > 1 ? project : ""), "data-link": "" }, "Back to the runs")));
    }
  })();

  return {
    el,
    title: `${runId} · tauro-exec`,
    close() {
      stop.abort();
      clearInterval(clock);
      clearTimeout(refreshTimer);
    },
  };
}

/** keyed rebuilds el with build only when key differs from the last one. */
function keyed(el: HTMLElement, key: string, build: () => void): void {
  if (el.dataset.key === key) return;
  el.dataset.key = key;
  build();
}

/** nodeSignature changes whenever the node's panel would show something new. */
function nodeSignature(n: NodeModel): string {
  const metrics = n.metrics.get(n.attempt);
  return JSON.stringify([n.name, n.state, n.attempt, n.start?.getTime(), n.end?.getTime(), n.error?.message,
    n.attempts.length, n.log.length, n.progress.length, metrics ? [...metrics].join() : "",
    (n.expectations.get(n.attempt) ?? []).map((x) => `${x.name}:${x.passed}:${x.failed}`).join()]);
}

/** liveDurations moves every running duration under root to now. */
function liveDurations(root: HTMLElement): void {
  const now = Date.now();
  for (const e of root.querySelectorAll<HTMLElement>("[data-live-start]")) {
    e.textContent = duration(now - Number(e.dataset.liveStart));
  }
}

function meta(name: string, value: Node | string): HTMLElement {
  return h("div", { class: "meta" }, h("span", { class: "meta-k" }, name), h("span", { class: "meta-v" }, value));
}
