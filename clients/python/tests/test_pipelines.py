"""Pipelines, validation and errors, against a real execd."""

from __future__ import annotations

import socket

import grpc
import pytest

from tauro_exec import (
    Client,
    NotFound,
    PipelineType,
    TauroExecError,
    Unavailable,
    ValidationError,
)


def test_pipelines_lists_every_pipeline_of_the_project(client: Client) -> None:
    found = {p.name: p for p in client.pipelines()}

    assert {"quick", "slow", "broken", "failing"} <= set(found)
    assert found["quick"].type is PipelineType.BATCH
    assert found["quick"].node_count == 4


def test_pipeline_returns_its_nodes_and_plan(client: Client) -> None:
    p = client.pipeline("quick")

    assert [n.name for n in p.nodes] == ["numbers", "evens", "odds", "summary"]
    assert {n.kind for n in p.nodes} == {"sql"}
    assert p.plan.order == ["numbers", "evens", "odds", "summary"]
    assert p.plan.stages == [["numbers"], ["evens", "odds"], ["summary"]]


def test_validate_returns_the_plan_in_dependency_order(client: Client) -> None:
    plan = client.validate("quick", start_date="2025-01-01", end_date="2025-01-31")

    assert plan.order == ["numbers", "evens", "odds", "summary"]
    assert plan.critical_path[0] == "numbers" and plan.critical_path[-1] == "summary"
    assert plan.batch_nodes == plan.order


def test_validate_raises_validation_error_listing_every_violation(client: Client) -> None:
    with pytest.raises(ValidationError) as caught:
        client.validate("broken")

    err = caught.value
    assert isinstance(err, TauroExecError)
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT
    codes = [v.code for v in err.violations]
    assert len(codes) >= 3, err.violations
    assert {"CYCLE", "UNKNOWN_DEPENDENCY"} <= set(codes)
    cycle = next(v for v in err.violations if v.code == "CYCLE")
    assert "loop_a" in cycle.message and "loop_b" in cycle.message
    # Each violation on its own line, with its field and code.
    lines = str(err).splitlines()
    for v in err.violations:
        assert any(v.field in line and v.code in line and v.message in line for line in lines), v


def test_validate_reports_bad_dates_as_violations(client: Client) -> None:
    with pytest.raises(ValidationError) as caught:
        client.validate("quick", start_date="2025-02-30", end_date="yesterday")

    assert caught.value.violations
    assert any("date" in v.field for v in caught.value.violations), caught.value.violations


def test_unknown_pipeline_is_an_error_naming_it(client: Client) -> None:
    with pytest.raises((NotFound, ValidationError)) as caught:
        client.pipeline("no_such_pipeline")

    assert "no_such_pipeline" in str(caught.value)


def test_unknown_run_raises_not_found(client: Client) -> None:
    with pytest.raises(NotFound) as caught:
        client.run("no-such-run")

    assert caught.value.code == grpc.StatusCode.NOT_FOUND


def test_a_daemon_that_is_not_there_raises_unavailable() -> None:
    with socket.socket() as s:  # a loopback port that was just free: connecting is refused
        s.bind(("127.0.0.1", 0))
        target = "127.0.0.1:%d" % s.getsockname()[1]

    with Client(target, timeout=2) as c, pytest.raises(Unavailable) as caught:
        c.pipelines()

    assert "execd" in str(caught.value)
