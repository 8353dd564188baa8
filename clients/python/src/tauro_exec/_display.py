"""How runs and experiments look in a notebook, and the live progress ``wait()`` shows.

IPython is never imported here at module import: the client must load fast and
work without it. Inside Jupyter the progress is an HTML table updated in place;
anywhere else it is one compact line per event on stderr.
"""

from __future__ import annotations

import html
import importlib
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Generic, Protocol, TextIO, TypeVar

from tauro_exec.experiment_models import ExperimentState, Trial, TrialState, format_param
from tauro_exec.models import MlflowRun, NodeState, Project, ProjectState, RunState

if TYPE_CHECKING:
    from tauro_exec.experiment import Experiment
    from tauro_exec.run import Run

E_contra = TypeVar("E_contra", contravariant=True)

_RUN_COLOURS = {
    RunState.SUCCEEDED: "#1a7f37",
    RunState.FAILED: "#cf222e",
    RunState.CANCELLED: "#9a6700",
    RunState.INTERRUPTED: "#9a6700",
    RunState.RUNNING: "#0969da",
}
_EXPERIMENT_COLOURS = {
    ExperimentState.SUCCEEDED: "#1a7f37",
    ExperimentState.FAILED: "#cf222e",
    ExperimentState.CANCELLED: "#9a6700",
    ExperimentState.RUNNING: "#0969da",
}
_TRIAL_COLOURS = {
    TrialState.SUCCEEDED: "#1a7f37",
    TrialState.FAILED: "#cf222e",
    TrialState.CANCELLED: "#9a6700",
    TrialState.RUNNING: "#0969da",
}
_PROJECT_COLOURS = {
    ProjectState.SERVING: "#1a7f37",
    ProjectState.BROKEN: "#cf222e",
}
_NODE_COLOURS = {
    NodeState.SUCCEEDED: "#1a7f37",
    NodeState.FAILED: "#cf222e",
    NodeState.TIMED_OUT: "#cf222e",
    NodeState.CANCELLED: "#9a6700",
    NodeState.SKIPPED: "#6e7781",
    NodeState.RETRYING: "#9a6700",
    NodeState.RUNNING: "#0969da",
}


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def format_duration(d: timedelta | None) -> str:
    if d is None:
        return ""
    s = d.total_seconds()
    if s < 60:
        return f"{s:.1f}s"
    m, s = divmod(int(s), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


def run_html(run: Run, *, now: datetime | None = None) -> str:
    """An HTML table of the run's nodes, states, attempts and durations."""
    now = now or datetime.now(timezone.utc)
    colour = _RUN_COLOURS.get(run.state, "inherit")
    # PROJECT/PIPELINE, as the CLI names a pipeline; a daemon older than projects sends none.
    pipeline = f"{run.project}/{run.pipeline}" if run.project else run.pipeline
    head = (
        f"<b>run</b> <code>{_e(run.id)}</code> &middot; pipeline <b>{_e(pipeline)}</b> &middot; "
        f'<span style="color:{colour};font-weight:bold">{_e(run.state.name)}</span>'
    )
    if run.duration is not None:
        head += f" &middot; {_e(format_duration(run.duration))}"
    if run.mlflow is not None:
        head += f" &middot; {_mlflow_link(run.mlflow, 'MLflow run')}"
    parts = [f'<div class="tauro-exec-run"><p>{head}</p>']
    if run.message:
        parts.append(f"<p>{_e(run.message)}</p>")
    parts.append(
        '<table><thead><tr><th style="text-align:left">node</th><th style="text-align:left">state</th>'
        '<th style="text-align:right">attempts</th><th style="text-align:right">duration</th>'
        '<th style="text-align:left">error</th></tr></thead><tbody>'
    )
    for n in run.nodes:
        if n.duration is not None:
            took = format_duration(n.duration)
        elif n.state is NodeState.RUNNING and n.start_time is not None:
            took = format_duration(now - n.start_time) + "\u2026"
        else:
            took = ""
        error = ""
        if n.error is not None:
            first = n.error.message.partition("\n")[0]
            error = f"{n.error.type}: {first}" if n.error.type else first
        tip = f' title="{_e(n.error)}"' if n.error is not None else ""
        node_colour = _NODE_COLOURS.get(n.state, "inherit")
        # The latest attempt's own MLflow run, beside the node's name.
        tracked = next((a.mlflow for a in reversed(n.attempts) if a.mlflow is not None), None)
        mlflow = f" {_mlflow_link(tracked, 'mlflow')}" if tracked is not None else ""
        parts.append(
            f'<tr><td style="text-align:left"><code>{_e(n.name)}</code>{mlflow}</td>'
            f'<td style="text-align:left;color:{node_colour}">{_e(n.state.name)}</td>'
            f'<td style="text-align:right">{_e(n.attempt)}</td>'
            f'<td style="text-align:right">{_e(took)}</td>'
            f'<td style="text-align:left"{tip}>{_e(error)}</td></tr>'
        )
    parts.append("</tbody></table>")
    parts.append(_expectations_html(run))
    parts.append("</div>")
    return "".join(parts)


def _mlflow_link(m: MlflowRun, label: str) -> str:
    """A link to an MLflow run's page, or its id when execd knows no URL."""
    if m.url:
        return f'<a href="{_e(m.url)}" target="_blank" title="MLflow run {_e(m.run_id)}">{_e(label)}</a>'
    return f'<span title="MLflow run">{_e(label)} <code>{_e(m.run_id)}</code></span>'


def _expectations_html(run: Run) -> str:
    """A table of each node's expectation counts (its last attempt's); "" when none has any."""
    rows = []
    for n in run.nodes:
        if not n.attempts or not n.attempts[-1].expectations:
            continue
        for x in n.attempts[-1].expectations:
            colour = "#1a7f37" if x.ok else ("#cf222e" if x.severity == "error" else "#9a6700")
            result = "ok" if x.ok else f"{x.severity}: {x.message}"
            rows.append(
                f'<tr><td style="text-align:left"><code>{_e(n.name)}</code></td>'
                f'<td style="text-align:left">{_e(x.name)}</td><td style="text-align:left">{_e(x.kind)}</td>'
                f'<td style="text-align:right">{x.passed:,}</td><td style="text-align:right">{x.failed:,}</td>'
                f'<td style="text-align:left;color:{colour}">{_e(result)}</td></tr>'
            )
    if not rows:
        return ""
    return (
        '<table class="tauro-exec-expectations"><thead><tr><th style="text-align:left">node</th>'
        '<th style="text-align:left">expectation</th><th style="text-align:left">kind</th>'
        '<th style="text-align:right">passed</th><th style="text-align:right">failed</th>'
        '<th style="text-align:left">result</th></tr></thead><tbody>' + "".join(rows) + "</tbody></table>"
    )


def runs_html(runs: Sequence[Run], *, more: bool) -> str:
    """A table of runs, one row each; ``more`` says that further pages were not fetched."""
    rows = []
    for r in runs:
        colour = _RUN_COLOURS.get(r.state, "inherit")
        created = r.create_time.astimezone().strftime("%Y-%m-%d %H:%M:%S") if r.create_time else ""
        counts: dict[str, int] = {}
        for n in r.nodes:
            counts[n.state.name.lower()] = counts.get(n.state.name.lower(), 0) + 1
        nodes = ", ".join(f"{c} {s}" for s, c in counts.items())
        rows.append(
            f"<tr><td><code>{_e(r.id)}</code></td><td>{_e(r.project)}</td><td>{_e(r.pipeline)}</td>"
            f'<td style="color:{colour}">{_e(r.state.name)}</td><td>{_e(created)}</td>'
            f'<td style="text-align:right">{_e(format_duration(r.duration))}</td><td>{_e(nodes)}</td>'
            f"<td>{_e(_first_line(r.message))}</td></tr>"
        )
    head = "<th>run</th><th>project</th><th>pipeline</th><th>state</th><th>created</th><th>took</th><th>nodes</th><th></th>"
    return _list_table(head, rows, "run", more)


def experiments_html(experiments: Sequence[Experiment], *, more: bool) -> str:
    """A table of experiments, one row each; ``more`` says that further pages were not fetched."""
    rows = []
    for x in experiments:
        colour = _EXPERIMENT_COLOURS.get(x.state, "inherit")
        metric, _, direction = x.objective
        best = "" if x.best is None or x.best.value is None else f"{x.best.value:.6g}"
        rows.append(
            f"<tr><td><code>{_e(x.id)}</code></td><td>{_e(x.project)}</td><td>{_e(x.name)}</td><td>{_e(x.pipeline)}</td>"
            f'<td style="color:{colour}">{_e(x.state.name)}</td><td style="text-align:right">{_e(x.n_trials)}</td>'
            f'<td>{_e(direction)} {_e(metric)}</td><td style="text-align:right">{_e(best)}</td>'
            f"<td>{_e(_first_line(x.message))}</td></tr>"
        )
    head = (
        "<th>experiment</th><th>project</th><th>name</th><th>pipeline</th><th>state</th><th>trials</th>"
        "<th>objective</th><th>best</th><th></th>"
    )
    return _list_table(head, rows, "experiment", more)


def projects_html(projects: Sequence[Project]) -> str:
    """A table of projects, one row each, with the caller's role and why a broken one is."""
    rows = []
    for p in projects:
        colour = _PROJECT_COLOURS.get(p.state, "inherit")
        rows.append(
            f'<tr><td><b>{_e(p.name)}</b></td><td style="color:{colour}">{_e(p.state.name)}</td>'
            f"<td>{_e(p.role.name.lower())}</td><td>{_e(p.default_env)}</td>"
            f'<td style="text-align:right">{_e(p.workers)}</td><td><code>{_e(p.folder)}</code></td>'
            f"<td>{_e(_first_line(p.error))}</td></tr>"
        )
    head = "<th>project</th><th>state</th><th>your role</th><th>env</th><th>workers</th><th>folder</th><th></th>"
    return _list_table(head, rows, "project", False)


def _first_line(message: str) -> str:
    return message.partition("\n")[0][:200]


def _list_table(head: str, rows: list[str], noun: str, more: bool) -> str:
    shown = f"{len(rows)} {noun}{'' if len(rows) == 1 else 's'}"
    if more:
        shown += " shown; more not fetched yet (iterate, index or len() fetches them)"
    return (
        f'<table class="tauro-exec-list"><caption style="text-align:left">{shown}</caption>'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def trials_html(trials: Sequence[Trial], best: int | None, caption: str = "") -> str:
    """An HTML table of trials, one column per parameter; the best one starred."""
    names: list[str] = []
    for t in trials:
        names.extend(k for k in t.params if k not in names)
    e = html.escape
    head = "".join(f"<th>{e(n)}</th>" for n in names)
    rows = []
    for t in trials:
        colour = _TRIAL_COLOURS.get(t.state, "inherit")
        params = "".join(f"<td>{e(format_param(t.params.get(n, '')))}</td>" for n in names)
        value = "" if t.value is None else f"{t.value:.6g}"
        mark = " &#9733;" if best == t.number else ""
        took = "" if t.duration is None else f"{t.duration.total_seconds():.1f}s"
        mlflow = f" {_mlflow_link(t.mlflow, 'mlflow')}" if t.mlflow is not None else ""
        rows.append(
            f"<tr><td>{t.number}{mark}</td><td style='color:{colour}'>{t.state.name}</td>{params}"
            f"<td>{value}</td><td>{took}</td><td><code>{e(t.run_id)}</code>{mlflow}</td><td>{e(t.message[:200])}</td></tr>"
        )
    cap = f"<caption style='text-align:left'>{e(caption)}</caption>" if caption else ""
    return (
        f"<table>{cap}<thead><tr><th>trial</th><th>state</th>{head}<th>value</th><th>took</th><th>run</th><th></th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


class Progress(Protocol[E_contra]):
    def update(self, event: E_contra) -> None: ...

    def close(self) -> None: ...


class TextProgress(Generic[E_contra]):
    """One line per event, for terminals and logs; ``line`` returns None for an event not worth one."""

    def __init__(self, out: TextIO, line: Callable[[E_contra], str | None]) -> None:
        self._out = out
        self._line = line

    def update(self, event: E_contra) -> None:
        text = self._line(event)
        if text is not None:
            print(text, file=self._out, flush=True)

    def close(self) -> None:
        pass


class NotebookProgress:
    """An HTML view (a run's nodes, an experiment's trials), redrawn in place as events arrive."""

    # Redrawing on every event of a large pipeline would flood the front end.
    _min_interval = 0.25

    def __init__(self, render: Callable[[], str], display_module: Any) -> None:
        self._render = render
        self._html = display_module.HTML
        self._handle = display_module.display(self._html(render()), display_id=True)
        self._drawn = time.monotonic()

    def update(self, event: object) -> None:
        now = time.monotonic()
        if now - self._drawn >= self._min_interval:
            self._draw()
            self._drawn = now

    def close(self) -> None:
        self._draw()

    def _draw(self) -> None:
        if self._handle is not None:
            self._handle.update(self._html(self._render()))


def _ipython_shell() -> Any:
    """The running IPython shell, if this process is inside one."""
    ipython = sys.modules.get("IPython")
    get = getattr(ipython, "get_ipython", None)
    return get() if callable(get) else None


def in_ipython() -> bool:
    return _ipython_shell() is not None


def progress_for(
    render: Callable[[], str], line: Callable[[E_contra], str | None], enabled: bool | None
) -> Progress[E_contra] | None:
    """The progress display wait() should use, or None for none.

    Inside Jupyter, ``render()``'s HTML redrawn in place; elsewhere ``line``
    of each event on stderr. ``enabled=None`` turns progress on only inside
    IPython or Jupyter.
    """
    shell = _ipython_shell()
    if enabled is None:
        enabled = shell is not None
    if not enabled:
        return None
    if getattr(shell, "kernel", None) is not None:
        try:
            display = importlib.import_module("IPython.display")
        except ImportError:
            pass
        else:
            return NotebookProgress(render, display)
    return TextProgress(sys.stderr, line)
