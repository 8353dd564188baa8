"""How a run looks in a notebook, and the live progress ``Run.wait()`` shows.

IPython is never imported here at module import: the client must load fast and
work without it. Inside Jupyter the progress is an HTML table updated in place;
anywhere else it is one compact line per event on stderr.
"""

from __future__ import annotations

import html
import importlib
import sys
import time
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from tauro_exec.events import Event, describe_event
from tauro_exec.models import NodeState, RunState

if TYPE_CHECKING:
    from tauro_exec.run import Run

_RUN_COLOURS = {
    RunState.SUCCEEDED: "#1a7f37",
    RunState.FAILED: "#cf222e",
    RunState.CANCELLED: "#9a6700",
    RunState.INTERRUPTED: "#9a6700",
    RunState.RUNNING: "#0969da",
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
    head = (
        f"<b>run</b> <code>{_e(run.id)}</code> &middot; pipeline <b>{_e(run.pipeline)}</b> &middot; "
        f'<span style="color:{colour};font-weight:bold">{_e(run.state.name)}</span>'
    )
    if run.duration is not None:
        head += f" &middot; {_e(format_duration(run.duration))}"
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
        parts.append(
            f'<tr><td style="text-align:left"><code>{_e(n.name)}</code></td>'
            f'<td style="text-align:left;color:{node_colour}">{_e(n.state.name)}</td>'
            f'<td style="text-align:right">{_e(n.attempt)}</td>'
            f'<td style="text-align:right">{_e(took)}</td>'
            f'<td style="text-align:left"{tip}>{_e(error)}</td></tr>'
        )
    parts.append("</tbody></table></div>")
    return "".join(parts)


class Progress(Protocol):
    def update(self, event: Event) -> None: ...

    def close(self) -> None: ...


class TextProgress:
    """One line per event, for terminals and logs."""

    def __init__(self, out: TextIO) -> None:
        self._out = out

    def update(self, event: Event) -> None:
        print(describe_event(event), file=self._out, flush=True)

    def close(self) -> None:
        pass


class NotebookProgress:
    """The run's HTML table, redrawn in place as events arrive."""

    # Redrawing on every event of a large pipeline would flood the front end.
    _min_interval = 0.25

    def __init__(self, run: Run, display_module: Any) -> None:
        self._run = run
        self._html = display_module.HTML
        self._handle = display_module.display(self._html(run_html(run)), display_id=True)
        self._drawn = time.monotonic()

    def update(self, event: Event) -> None:
        now = time.monotonic()
        if now - self._drawn >= self._min_interval:
            self._draw()
            self._drawn = now

    def close(self) -> None:
        self._draw()

    def _draw(self) -> None:
        if self._handle is not None:
            self._handle.update(self._html(run_html(self._run)))


def _ipython_shell() -> Any:
    """The running IPython shell, if this process is inside one."""
    ipython = sys.modules.get("IPython")
    get = getattr(ipython, "get_ipython", None)
    return get() if callable(get) else None


def in_ipython() -> bool:
    return _ipython_shell() is not None


def progress_for(run: Run, enabled: bool | None) -> Progress | None:
    """The progress display wait() should use, or None for none.

    ``enabled=None`` turns progress on only inside IPython or Jupyter.
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
            return NotebookProgress(run, display)
    return TextProgress(sys.stderr)
