"""Running pipelines through the client, on a real execd and real Spark."""

from __future__ import annotations

import sys
import uuid
from datetime import date

import pytest

from tauro_exec import (
    Client,
    Event,
    NodeState,
    NodeStateChanged,
    Run,
    RunFailed,
    RunState,
    RunStateChanged,
)

QUICK_NODES = ["numbers", "evens", "odds", "summary"]


def started(run: Run, node: str, events: list[Event]) -> None:
    """Follow the run until `node` is running, keeping the events seen."""
    for ev in run.watch():
        events.append(ev)
        if isinstance(ev, NodeStateChanged) and ev.node == node and ev.state is NodeState.RUNNING:
            return
    pytest.fail(f"run ended ({run.state.name}) before {node} started: {events}")


def test_execute_returns_at_once_and_wait_returns_the_succeeded_run(client: Client) -> None:
    run = client.execute("quick", start_date=date(2025, 1, 2), end_date="2025-01-30")
    assert run.id and run.pipeline == "quick"
    assert run.start_date == date(2025, 1, 2) and run.end_date == date(2025, 1, 30)

    assert run.wait(timeout=300) is run

    assert run.state is RunState.SUCCEEDED
    assert [n.name for n in run.nodes] == QUICK_NODES
    for n in run.nodes:
        assert n.state is NodeState.SUCCEEDED, n
        assert n.attempt == 1 and n.error is None
        assert n.duration is not None and n.duration.total_seconds() >= 0
    assert run.duration is not None


def test_the_same_request_id_twice_gives_one_run(client: Client) -> None:
    request_id = f"py-{uuid.uuid4()}"

    first = client.execute("quick", request_id=request_id)
    second = client.execute("quick", request_id=request_id)

    assert second.id == first.id
    assert [r.id for r in client.runs(pipeline="quick") if r.request_id == request_id] == [first.id]
    first.wait(timeout=300)


def test_hyperparams_and_model_version_are_recorded_on_the_run(client: Client) -> None:
    run = client.execute("quick", hyperparams={"alpha": 0.5, "layers": [3, 2], "tag": "x"}, model_version="v7")

    assert run.hyperparams.items() >= {"alpha": 0.5, "layers": [3, 2], "tag": "x"}.items()
    assert run.model_version == "v7"
    run.wait(timeout=300)


def test_select_runs_a_node_and_what_it_needs(client: Client) -> None:
    run = client.execute("quick", select=["+evens"]).wait(timeout=300)

    ran = {n.name for n in run.nodes if n.state is NodeState.SUCCEEDED}
    assert ran == {"numbers", "evens"}


def test_watch_yields_every_sequence_once_and_ends_with_the_terminal_state(client: Client) -> None:
    run = client.execute("quick")

    events = list(run.watch())

    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    last = events[-1]
    assert isinstance(last, RunStateChanged) and last.state is RunState.SUCCEEDED
    assert run.state is RunState.SUCCEEDED
    assert run.refresh().last_sequence == len(events)
    node_events = [e for e in events if isinstance(e, NodeStateChanged)]
    assert {e.node for e in node_events} == set(QUICK_NODES)
    assert all(e.time is not None for e in events)
    done = [e for e in node_events if e.state is NodeState.SUCCEEDED]
    assert all(e.duration is not None for e in done)


def test_watch_after_a_sequence_yields_only_what_follows(client: Client) -> None:
    run = client.execute("quick").wait(timeout=300)
    n = run.last_sequence
    assert n >= 3

    assert [e.sequence for e in run.watch(after_sequence=n - 2)] == [n - 1, n]
    assert list(run.watch(after_sequence=n)) == []


def test_cancel_stops_a_running_run(client: Client) -> None:
    run = client.execute("slow")
    started(run, "nap", [])

    run.cancel(reason="test cancels it")
    with pytest.raises(RunFailed) as caught:
        run.wait(timeout=120)

    assert caught.value.run is run
    assert run.state is RunState.CANCELLED
    assert run.node("after_nap").state is not NodeState.SUCCEEDED
    assert run.node("nap").state is not NodeState.SUCCEEDED
    assert "CANCELLED" in str(caught.value)


def test_wait_raises_run_failed_carrying_the_failed_node_error(client: Client) -> None:
    run = client.execute("failing")

    with pytest.raises(RunFailed) as caught:
        run.wait(timeout=300)

    err = caught.value
    assert err.run.state is RunState.FAILED
    assert [f.node for f in err.failures] == ["explode"]
    failure = err.failures[0]
    assert "boom from explode" in failure.error.message
    assert failure.error.type
    assert "explode" in str(err) and "boom from explode" in str(err)
    assert run.node("after_explode").state is NodeState.SKIPPED
    assert run.node("numbers").state is NodeState.SUCCEEDED


def test_wait_times_out_with_timeout_error(client: Client) -> None:
    run = client.execute("slow")
    try:
        with pytest.raises(TimeoutError):
            run.wait(timeout=0.5)
        assert not run.state.is_terminal
    finally:
        run.cancel()


def test_wait_with_progress_prints_a_line_per_event(client: Client, capsys: pytest.CaptureFixture[str]) -> None:
    run = client.execute("quick")
    seen = run.last_sequence  # wait() follows what comes after the snapshot

    run.wait(timeout=300, progress=True)

    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == run.last_sequence - seen
    assert f"#{seen + 1}" in lines[0]
    assert "SUCCEEDED" in lines[-1]
    assert any("summary" in line for line in lines)


def test_runs_lists_newest_first_across_pages(client: Client) -> None:
    ids = [client.execute("quick").id for _ in range(3)]
    for run_id in ids:
        client.run(run_id).wait(timeout=300)

    listed = [r.id for r in client.runs(pipeline="quick", page_size=2)]

    assert len(listed) == len(set(listed))
    assert listed[:3] == ids[::-1]
    assert [r.id for r in client.runs(pipeline="quick", limit=3, page_size=2)] == ids[::-1]
    assert all(r.pipeline == "quick" for r in client.runs(pipeline="quick", page_size=2))

    listed_lazily = client.runs(pipeline="quick", page_size=2)
    assert listed_lazily[2].id == ids[0]  # the second page, fetched on demand
    table = listed_lazily._repr_html_()
    assert table.startswith("<table") and f"<code>{ids[2]}</code>" in table and "SUCCEEDED" in table


def test_runs_filters_by_state(client: Client) -> None:
    failed = client.execute("failing")
    with pytest.raises(RunFailed):
        failed.wait(timeout=300)

    found = list(client.runs(states=[RunState.FAILED]))

    assert failed.id in [r.id for r in found]
    assert all(r.state is RunState.FAILED for r in found)
    assert [r.id for r in client.runs(states=["failed"], limit=1)] == [found[0].id]


def test_repr_html_shows_the_nodes_and_escapes_what_it_shows(client: Client) -> None:
    run = client.execute("slow")
    started(run, "nap", [])
    run.cancel(reason="<script>alert('x')</script> & more")
    with pytest.raises(RunFailed):
        run.wait(timeout=120)

    page = run._repr_html_()

    assert "<table" in page
    for node in ("prepare", "nap", "after_nap"):
        assert f"<code>{node}</code>" in page
    assert "CANCELLED" in page
    assert "<script>" not in page
    assert "&lt;script&gt;" in page and "&amp; more" in page


def test_repair_reruns_what_did_not_succeed(client: Client) -> None:
    run = client.execute("slow")
    started(run, "nap", [])
    run.cancel()
    with pytest.raises(RunFailed):
        run.wait(timeout=120)

    run.repair().wait(timeout=300)

    assert run.state is RunState.SUCCEEDED
    assert run.repair_count == 1
    assert all(n.state is NodeState.SUCCEEDED for n in run.nodes)
    assert run.node("prepare").attempt == 1  # kept, not re-run


class FakeNotebook:
    """Stands in for IPython and IPython.display (not installed in the venv):
    a shell with a kernel, and a display whose handle records every drawing."""

    def __init__(self) -> None:
        self.kernel = object()
        self.drawn: list[str] = []

    def get_ipython(self) -> FakeNotebook:
        return self

    def HTML(self, text: str) -> str:
        return text

    def display(self, obj: str, display_id: bool = False) -> FakeNotebook:
        assert display_id, "progress must be updatable in place"
        self.drawn.append(obj)
        return self

    def update(self, obj: str) -> None:
        self.drawn.append(obj)


def test_wait_in_a_notebook_redraws_the_html_table_by_default(
    client: Client, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    notebook = FakeNotebook()
    monkeypatch.setitem(sys.modules, "IPython", notebook)
    monkeypatch.setitem(sys.modules, "IPython.display", notebook)

    run = client.execute("quick").wait(timeout=300)

    assert len(notebook.drawn) >= 2
    assert "<table" in notebook.drawn[-1] and "SUCCEEDED" in notebook.drawn[-1]
    assert "<code>summary</code>" in notebook.drawn[-1]
    assert notebook.drawn[-1] == run._repr_html_()
    assert capsys.readouterr().err == ""


def test_wait_outside_ipython_shows_nothing_by_default(client: Client, capsys: pytest.CaptureFixture[str]) -> None:
    client.execute("quick").wait(timeout=300)

    assert capsys.readouterr().err == ""
