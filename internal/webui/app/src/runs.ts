// The runs list of one project: newest first, filtered by pipeline and
// state (kept in the URL with the project), refreshed every few seconds. An
// operator of the project may start a run of the chosen pipeline.

import { api, message, ProjectState, type Run } from "./api";
import { h, replace } from "./dom";
import { date, duration, iso, span, when } from "./format";
import type { Page, Session } from "./session";
import { brokenNotice } from "./projects";
import { activeRun, badge, label, nodeKey, runKey, runStates } from "./states";

const PAGE = 50;
const REFRESH_MS = 4000;

export function runsPage(session: Session): Page {
  const project = session.project;
  const listed = session.projects.find((p) => p.name === project);
  const params = new URLSearchParams(location.search);
  let pipeline = params.get("pipeline") ?? "";
  let state = params.get("state") ?? "";
  let shown = PAGE;
  let next = "";
  let timer: ReturnType<typeof setTimeout> | undefined;
  let closed = false;

  const pipelineSel = h("select", { name: "pipeline", "aria-label": "pipeline" }, h("option", { value: "" }, "All pipelines"));
  if (pipeline) pipelineSel.append(h("option", { value: pipeline }, pipeline));
  pipelineSel.value = pipeline;
  const stateSel = h("select", { name: "state", "aria-label": "state" }, h("option", { value: "" }, "Any state"),
    ...runStates.map((s) => h("option", { value: runKey(s) }, label(runKey(s)))));
  stateSel.value = state;

  const body = h("tbody");
  const status = h("p", { class: "muted list-status" });
  const more = h("button", { class: "btn", hidden: true, onclick: () => { shown += PAGE; void load(); } }, "Load more");
  // Starting is offered where the caller's role in this project allows it.
  const startBtn = h("button", {
    class: "btn primary", "data-action": "start", onclick: () => void startRun(),
    hidden: !session.canOperate(project) || listed?.state === ProjectState.BROKEN,
  }, "Start run");
  const notice = h("p", { class: "notice", role: "alert", hidden: true });
  const several = session.projects.length > 1;
  const el = h("section", { class: "runs-page", "data-project": project },
    h("div", { class: "toolbar" },
      h("h1", null, "Runs", project ? h("span", { class: "project-name" }, project) : null),
      h("div", { class: "filters" },
        h("label", null, h("span", null, "Pipeline"), pipelineSel),
        h("label", null, h("span", null, "State"), stateSel),
        startBtn)),
    several && listed && listed.state !== ProjectState.BROKEN
      ? h("p", { class: "project-facts muted" }, listed.folder, listed.defaultEnv ? ` · env ${listed.defaultEnv}` : "") : null,
    brokenNotice(listed),
    notice,
    h("div", { class: "table-wrap" },
      h("table", { class: "grid runs" },
        h("thead", null, h("tr", null,
          h("th", null, "Run"), h("th", null, "Pipeline"), h("th", null, "State"), h("th", null, "Nodes"),
          h("th", null, "Created"), h("th", { class: "num" }, "Duration"))),
        body)),
    status, more);

  const startable = () => {
    startBtn.disabled = !pipeline;
    startBtn.title = pipeline ? `start a run of ${pipeline}` : "choose a pipeline to start";
  };
  startable();
  const startRun = async () => {
    if (!pipeline || !confirm(`Start a run of ${pipeline}${several ? ` in ${project}` : ""}?`)) return;
    notice.hidden = true;
    try {
      const { run } = await api.executePipeline({ project, pipeline, requestId: crypto.randomUUID() });
      if (run && !closed) session.open(`/runs/${encodeURIComponent(run.runId)}`);
    } catch (err) {
      session.failed(err);
      notice.textContent = `The run did not start: ${message(err)}`;
      notice.hidden = false;
    }
  };

  const filtersChanged = () => {
    pipeline = pipelineSel.value;
    state = stateSel.value;
    shown = PAGE;
    startable();
    const url = new URL(location.href);
    for (const [k, v] of [["pipeline", pipeline], ["state", state]]) {
      if (v) url.searchParams.set(k, v);
      else url.searchParams.delete(k);
    }
    history.replaceState(null, "", url);
    void load();
  };
  pipelineSel.addEventListener("change", filtersChanged);
  stateSel.addEventListener("change", filtersChanged);

  void api.listPipelines({ project }).then(({ pipelines }) => {
    for (const p of pipelines) {
      if (p.name !== pipeline) pipelineSel.append(h("option", { value: p.name }, p.name));
    }
    pipelineSel.value = pipeline;
  }, (err) => session.failed(err));

  async function load() {
    clearTimeout(timer);
    const states = runStates.filter((s) => runKey(s) === state);
    try {
      const runs: Run[] = [];
      let token = "";
      // Refreshing keeps as many rows as were shown.
      do {
        const res = await api.listRuns({ project, pageSize: Math.min(shown - runs.length, 1000), pageToken: token, pipeline, states });
        runs.push(...res.runs);
        token = res.nextPageToken;
      } while (token && runs.length < shown);
      next = token;
      if (closed) return;
      replace(body, ...runs.map(row));
      status.textContent = runs.length ? "" : pipeline || state ? "No runs match these filters."
        : listed?.state === ProjectState.BROKEN ? "No runs of this project are on record."
        : "No runs yet. Start one with the Python client, grpcurl or a Go client.";
      more.hidden = !next;
    } catch (err) {
      session.failed(err);
      status.textContent = `Runs could not be listed: ${message(err)}`;
    }
    if (!closed) timer = setTimeout(() => void load(), REFRESH_MS);
  }
  void load();

  return {
    el,
    title: several && project ? `Runs · ${project} · tauro-exec` : "Runs · tauro-exec",
    close() {
      closed = true;
      clearTimeout(timer);
    },
  };
}

function row(r: Run): HTMLTableRowElement {
  const created = date(r.createTime);
  const href = `/runs/${encodeURIComponent(r.runId)}`;
  const key = runKey(r.state);
  return h("tr", { "data-run-id": r.runId, "data-state": key, class: activeRun(r.state) ? "active" : null },
    h("td", null, h("a", { href, "data-link": "", class: "run-link mono" }, r.runId)),
    h("td", null, r.pipeline),
    h("td", null, badge(key)),
    h("td", null, h("span", { class: "cells" }, ...r.nodes.map((n) =>
      h("span", { class: `cell st-${nodeKey(n.state)}`, title: `${n.name}: ${label(nodeKey(n.state))}` })))),
    h("td", null, h("time", { datetime: iso(created), title: iso(created) }, when(created))),
    h("td", { class: "num" }, duration(span(date(r.startTime), date(r.endTime)))),
  );
}
