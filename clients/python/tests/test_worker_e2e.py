"""Python nodes end to end: a real execd, its real Python workers and the real Spark.

The project is a copy of cmd/execd/testdata/pyproj. Nodes that need to tell the
test what they saw write it to their output, which is read back here.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq  # type: ignore[import-untyped]
import pytest

from harness import REPO, Daemon

from tauro_exec import Client, NodeMessage, NodeMetric, NodeState, NodeStateChanged, RunFailed, RunState, ValidationError

PYPROJ = REPO / "cmd" / "execd" / "testdata" / "pyproj"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pyproj")
    shutil.copytree(PYPROJ, root / "pyproj")
    return root / "pyproj"


@pytest.fixture(scope="module")
def pydaemon(project: Path, binary: Path, spark_remote: str) -> Iterator[Daemon]:
    d = Daemon(binary, project, project.parent / "state", spark_remote, project.parent / "execd.log")
    d.start()
    yield d
    d.stop()


@pytest.fixture
def pyclient(pydaemon: Daemon) -> Iterator[Client]:
    with Client(pydaemon.address, timeout=60) as c:
        yield c


def rows(project: Path, table: str) -> list[dict[str, Any]]:
    """What a node wrote to output test.<schema>.<table>, read without Spark."""
    found = [p for p in (project / "output").rglob(table) if p.is_dir()]
    assert len(found) == 1, f"output {table}: found {found}"
    data: list[dict[str, Any]] = pq.read_table(found[0]).to_pylist()
    return data


def test_python_node_outputs_are_written_and_read_by_downstream_nodes(pyclient: Client, project: Path) -> None:
    run = pyclient.execute("etl", start_date="2025-02-01", end_date="2025-02-28").wait(timeout=180)

    assert [(n.name, n.state) for n in run.nodes] == [
        ("adults", NodeState.SUCCEEDED),
        ("tagged", NodeState.SUCCEEDED),
        ("by_city", NodeState.SUCCEEDED),
    ]
    printed = [(e.node, e.level, e.text) for e in run.watch() if isinstance(e, NodeMessage)]
    assert ("adults", "info", "adults of 2025-02-01..2025-02-28") in printed
    adults = sorted(r["name"] for r in rows(project, "adults"))
    assert adults == ["ana", "cy", "di", "ed"]  # bo is 19
    by_city = {r["city"]: (r["people"], r["period"]) for r in rows(project, "by_city")}
    assert by_city == {
        "lima": (2, "2025-02-01..2025-02-28"),
        "oslo": (1, "2025-02-01..2025-02-28"),
        "rome": (1, "2025-02-01..2025-02-28"),
    }


def test_edited_node_code_takes_effect_without_restarting_execd(pyclient: Client, project: Path) -> None:
    etl = project / "src" / "pyproj_nodes" / "etl.py"
    original = etl.read_text()
    assert 'F.lit(f"{start_date}..{end_date}")' in original
    try:
        etl.write_text(original.replace('F.lit(f"{start_date}..{end_date}")', 'F.lit(f"edited {start_date}")'))
        pyclient.execute("etl", start_date="2025-03-01", end_date="2025-03-31").wait(timeout=180)
        assert {r["period"] for r in rows(project, "by_city")} == {"edited 2025-03-01"}
    finally:
        etl.write_text(original)
    pyclient.execute("etl", start_date="2025-03-01", end_date="2025-03-31").wait(timeout=180)
    assert {r["period"] for r in rows(project, "by_city")} == {"2025-03-01..2025-03-31"}


def test_a_result_that_is_written_and_read_is_cached_until_its_last_reader_is_done(pyclient: Client, project: Path) -> None:
    pyclient.execute("caching").wait(timeout=180)

    seen = {r["node"]: (r["cached"], r["rows"]) for t in ("reader_a", "reader_b", "after_readers") for r in rows(project, t)}
    assert seen == {"reader_a": (True, 10), "reader_b": (True, 10), "after_readers": (False, -1)}


def test_a_failing_nodes_python_traceback_reaches_run_failed(pyclient: Client) -> None:
    with pytest.raises(RunFailed) as caught:
        pyclient.execute("failing").wait(timeout=120)

    (failure,) = caught.value.failures
    assert failure.node == "explode"
    assert failure.error.type == "ValueError"
    assert failure.error.message == "boom from python"
    tb = failure.error.traceback
    assert tb.startswith("Traceback (most recent call last):")
    assert "faults.py" in tb and "in _deeper" in tb and 'raise ValueError("boom from python")' in tb
    assert "tauro_exec/worker/" not in tb
    assert not failure.error.retryable
    assert caught.value.run.node("explode").attempt == 1  # a user error is not retried


def test_a_retryable_error_is_retried_with_backoff_then_succeeds(pyclient: Client, project: Path) -> None:
    run = pyclient.execute("retry")
    states = [(e.state, e.attempt, e.retry_in) for e in run.watch() if isinstance(e, NodeStateChanged) and e.node == "flaky"]
    run.refresh()

    assert run.state is RunState.SUCCEEDED
    retrying = [s for s in states if s[0] is NodeState.RETRYING]
    assert [a for _, a, _ in retrying] == [1, 2]
    assert all(wait is not None and wait.total_seconds() > 0 for _, _, wait in retrying)
    assert [a.error.type for a in run.node("flaky").attempts if a.error] == ["Retryable", "Retryable"]
    assert rows(project, "flaky") == [{"attempt": 3}]


def test_a_worker_killed_mid_node_is_replaced_and_the_node_retried(pyclient: Client, project: Path) -> None:
    run = pyclient.execute("killed")
    killed: list[int] = []
    for ev in run.watch():
        if isinstance(ev, NodeMetric) and ev.name == "pid" and not killed:
            killed.append(int(ev.value))
            # Let the node's Spark job start before the kill.
            threading.Timer(0.5, os.kill, (killed[0], signal.SIGKILL)).start()
    run.refresh()

    assert killed, "the first attempt never reported its pid"
    assert run.state is RunState.SUCCEEDED, run
    node = run.node("survivor")
    assert node.attempt == 2
    first = node.attempts[0].error
    assert first is not None and first.type == "WorkerDied" and first.retryable, first
    (written,) = rows(project, "survivor")
    assert written["attempt"] == 2 and written["pid"] != killed[0]

    # The pool is whole again: both workers serve.
    assert pyclient.execute("etl").wait(timeout=120).state is RunState.SUCCEEDED


def test_validate_reports_import_errors_and_bad_signatures_before_anything_runs(pyclient: Client, project: Path) -> None:
    with pytest.raises(ValidationError) as caught:
        pyclient.validate("badfuncs")

    by_field = {v.field: v for v in caught.value.violations}
    assert set(by_field) == {"nodes.bad_import.function", "nodes.bad_signature.function"}
    assert all(v.code == "INVALID_FUNCTION" for v in by_field.values())
    assert "No module named 'pyproj_nodes.no_such_module'" in by_field["nodes.bad_import.function"].message
    assert "start_date" in by_field["nodes.bad_signature.function"].message

    # execute refuses it the same way, and records no run.
    before = len(list(pyclient.runs(pipeline="badfuncs")))
    with pytest.raises(ValidationError):
        pyclient.execute("badfuncs")
    assert len(list(pyclient.runs(pipeline="badfuncs"))) == before


def test_hyperparameters_merge_in_precedence_order_and_reach_spark_conf(pyclient: Client, project: Path) -> None:
    # global defaults alpha..delta=1 < pipeline beta..delta=2 < request gamma,delta=3 < node delta=4
    run = pyclient.execute("ml", hyperparams={"gamma": 3, "delta": 3}).wait(timeout=120)

    (seen,) = rows(project, "seen")
    assert json.loads(seen["hyperparams"]) == {"alpha": 1, "beta": 2, "gamma": 3, "delta": 4}
    assert json.loads(seen["conf"]) == {"alpha": "1", "beta": "2", "gamma": "3", "delta": "4"}
    assert seen["model_version"] == "v2"  # the pipeline's, as the request names none
    assert (seen["node"], seen["run_id"], seen["attempt"]) == ("train", run.id, 1)
    assert seen["node_function"] == "train" and seen["pipeline_type"] == "ml"
    assert run.node("train").attempts[-1].metrics["rmse"] == 0.25
    # The run records the effective run-level set (the node's own override is per node).
    assert run.hyperparams == {"alpha": 1, "beta": 2, "gamma": 3, "delta": 3}
    assert run.model_version == "v2"

    pyclient.execute("ml", model_version="v9").wait(timeout=120)
    (seen,) = rows(project, "seen")
    assert seen["model_version"] == "v9"
    assert json.loads(seen["conf"]) == {"alpha": "1", "beta": "2", "gamma": "2", "delta": "4"}
