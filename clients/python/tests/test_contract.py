"""The client's enums and events cover the contract exactly, so a state or an event
kind added to exec.proto fails here until the client says what it means. No server."""

from __future__ import annotations

import enum

import pytest
from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper

from tauro_exec import Event, LagState, NodeLag, NodeProgress, NodeState, PipelineType, ProjectState, Role, RunState
from tauro_exec._proto.tauro.exec.v1 import exec_pb2 as pb
from tauro_exec.events import event_from_proto

ENUMS = [
    (RunState, pb.RunState, "RUN_STATE_"),
    (NodeState, pb.NodeState, "NODE_STATE_"),
    (PipelineType, pb.PipelineType, "PIPELINE_TYPE_"),
    (ProjectState, pb.ProjectState, "PROJECT_STATE_"),
    (Role, pb.Role, "ROLE_"),
    (LagState, pb.LagState, "LAG_STATE_"),
]


@pytest.mark.parametrize(("client", "contract", "prefix"), ENUMS, ids=[c.__name__ for c, _, _ in ENUMS])
def test_each_enum_has_the_contracts_members_under_their_names_without_the_prefix(
    client: type[enum.Enum], contract: EnumTypeWrapper, prefix: str
) -> None:
    values = contract.DESCRIPTOR.values
    assert all(v.name.startswith(prefix) for v in values)
    assert {m.name: m.value for m in client} == {v.name.removeprefix(prefix): v.number for v in values}, (
        f"tauro_exec.models.{client.__name__} differs from exec.proto: give it the contract's members "
        "(and decide whether a new state is terminal)"
    )


@pytest.mark.parametrize(("client", "contract", "prefix"), ENUMS, ids=[c.__name__ for c, _, _ in ENUMS])
def test_a_number_a_newer_daemon_added_reads_as_unspecified(client: type[enum.Enum], contract: EnumTypeWrapper, prefix: str) -> None:
    unknown = max(v.number for v in contract.DESCRIPTOR.values) + 1
    assert client(unknown) is client["UNSPECIFIED"]


@pytest.mark.parametrize("kind", [f.name for f in pb.RunEvent.DESCRIPTOR.oneofs_by_name["kind"].fields])
def test_every_event_kind_of_the_contract_has_its_own_event_type(kind: str) -> None:
    ev = pb.RunEvent(run_id="r", sequence=1)
    getattr(ev, kind).SetInParent()
    got = event_from_proto(ev)
    assert type(got) is not Event, f"RunEvent.{kind} is read as a plain Event; give it a type in tauro_exec.events"
    assert (got.run_id, got.sequence) == ("r", 1)


def test_progress_carries_its_sources_sink_and_observed_metrics_and_lag_is_typed() -> None:
    ev = pb.RunEvent(run_id="r", sequence=5, project="sales")
    p = ev.node_progress
    p.node, p.batch_id, p.input_rows = "enrich", 3, 25
    p.sources.add(description="KafkaV2[Subscribe[orders]]", start_offset='{"orders":{"0":10}}', end_offset='{"orders":{"0":30}}', input_rows=20)
    p.sink.description, p.sink.output_rows = "DeltaSink[/out]", 25
    p.observed_metrics.update({"dq": {"rows": 25, "bad": 2}})
    got = event_from_proto(ev)
    assert isinstance(got, NodeProgress) and got.project == "sales"
    assert got.sources[0].end_offset == '{"orders":{"0":30}}' and got.sources[0].input_rows == 20
    assert got.sink is not None and got.sink.output_rows == 25
    assert got.observed_metrics == {"dq": {"rows": 25, "bad": 2}}

    lag = pb.RunEvent(run_id="r", sequence=6)
    lag.node_lag.node, lag.node_lag.state, lag.node_lag.reason = "enrich", pb.LAG_STATE_LAGGING, "batch 3 took 9s"
    lag.node_lag.batch_id = 3
    got_lag = event_from_proto(lag)
    assert isinstance(got_lag, NodeLag) and got_lag.state is LagState.LAGGING and got_lag.batch_id == 3
    lag.node_lag.ClearField("batch_id")
    assert event_from_proto(lag).batch_id is None  # type: ignore[attr-defined]
