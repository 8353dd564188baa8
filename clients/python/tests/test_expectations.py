"""Expectation results read from the contract: the event, an attempt's sums, the
line the progress prints and the notebook table. No server."""

from __future__ import annotations

from typing import Any, cast

from tauro_exec import NodeExpectations, Run
from tauro_exec._proto.tauro.exec.v1 import exec_pb2 as pb
from tauro_exec.events import describe_event, event_from_proto


def _result(**kw: Any) -> pb.ExpectationResult:
    return pb.ExpectationResult(**kw)


def test_an_expectations_event_carries_its_batch_and_results() -> None:
    ev = pb.RunEvent(run_id="r", sequence=9, project="sales")
    x = ev.node_expectations
    x.node, x.attempt, x.batch_id = "clean", 1, 4
    x.results.append(_result(name="every_27th", kind="drop", passed=963, failed=37, severity="warn", message="37 of 1000 rows"))
    got = event_from_proto(ev)
    assert isinstance(got, NodeExpectations) and got.batch_id == 4 and got.node == "clean"
    r = got.results[0]
    assert (r.name, r.kind, r.passed, r.failed, r.ok) == ("every_27th", "drop", 963, 37, False)
    assert "clean batch 4" in describe_event(got) and "every_27th drop 963 passed 37 failed  BROKEN (warn): 37 of 1000 rows" in describe_event(got)
    x.ClearField("batch_id")
    assert cast(NodeExpectations, event_from_proto(ev)).batch_id is None


def test_a_runs_table_shows_each_nodes_expectation_counts() -> None:
    run = pb.Run(run_id="r", pipeline="daily", state=pb.RUN_STATE_FAILED)
    n = run.nodes.add(name="clean", state=pb.NODE_STATE_FAILED, attempt=1)
    a = n.attempts.add(attempt=1, state=pb.NODE_STATE_FAILED)
    a.expectations.append(_result(name="every_27th", kind="fail", passed=963, failed=37, severity="error", message="the node fails"))
    a.expectations.append(_result(name="row_count", kind="row_count", passed=963, severity="error", ok=True))
    r = Run(cast(Any, None), run)
    got = r.nodes[0].attempts[0].expectations
    assert [(x.name, x.passed, x.failed, x.ok) for x in got] == [("every_27th", 963, 37, False), ("row_count", 963, 0, True)]
    table = r._repr_html_()
    assert "tauro-exec-expectations" in table and "every_27th" in table and "963" in table and "error: the node fails" in table
