"""The one watch loop (tauro_exec._watch) as Run and Experiment use it, on a scripted stub.

No daemon: a stub plays execd's side call by call, so a dropped stream, a
daemon that is away and a deadline can be set up exactly.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest

from tauro_exec import Experiment, Run, Unavailable
from tauro_exec._proto.tauro.exec.v1 import exec_pb2 as pb
from tauro_exec._rpc import Transport


class FakeRpcError(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, details: str = "") -> None:
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


class FakeStream:
    """A server stream: its responses, then an error or a clean end."""

    def __init__(self, responses: list[Any], error: grpc.StatusCode | None = None) -> None:
        self._responses, self._error = responses, error
        self.cancelled = False

    def __iter__(self) -> Iterator[Any]:
        yield from self._responses
        if self._error is not None:
            raise FakeRpcError(self._error, "scripted")

    def cancel(self) -> bool:
        self.cancelled = True
        return True


@dataclass
class Kind:
    """What differs between following a run and following an experiment."""

    name: str
    watch_method: str
    get_method: str
    terminal: int
    running: int

    def handle(self, rpc: Transport) -> Any:
        if self.name == "run":
            return Run(rpc, pb.Run(run_id="r1", pipeline="p", state=self.running))
        return Experiment(rpc, pb.Experiment(experiment_id="x1", pipeline="p", state=self.running))

    def event(self, sequence: int, state: int) -> Any:
        if self.name == "run":
            ev = pb.RunEvent(run_id="r1", sequence=sequence, run_state_changed=pb.RunStateChanged(state=state))
            return pb.WatchRunResponse(event=ev)
        xev = pb.ExperimentEvent(
            experiment_id="x1", sequence=sequence, experiment_state_changed=pb.ExperimentStateChanged(state=state)
        )
        return pb.WatchExperimentResponse(event=xev)

    def snapshot(self, state: int, last: int) -> Any:
        if self.name == "run":
            return pb.GetRunResponse(run=pb.Run(run_id="r1", pipeline="p", state=state, last_sequence=last))
        return pb.GetExperimentResponse(
            experiment=pb.Experiment(experiment_id="x1", pipeline="p", state=state, last_sequence=last)
        )


KINDS = [
    Kind("run", "WatchRun", "GetRun", pb.RUN_STATE_SUCCEEDED, pb.RUN_STATE_RUNNING),
    Kind("experiment", "WatchExperiment", "GetExperiment", pb.EXPERIMENT_STATE_SUCCEEDED, pb.EXPERIMENT_STATE_RUNNING),
]


@dataclass
class Stub:
    """Plays execd: each watch call takes the next scripted stream, each get the next snapshot."""

    kind: Kind
    streams: list[FakeStream]
    snapshots: list[Any]
    watches: list[tuple[int, float | None]] = field(default_factory=list)  # (after_sequence, timeout)
    gets: list[float | None] = field(default_factory=list)  # timeouts

    def __getattr__(self, name: str) -> Any:
        if name == self.kind.watch_method:
            return self._watch
        if name == self.kind.get_method:
            return self._get
        raise AttributeError(name)

    def _watch(self, req: Any, timeout: float | None = None) -> FakeStream:
        self.watches.append((req.after_sequence, timeout))
        return self.streams.pop(0)

    def _get(self, req: Any, timeout: float | None = None) -> Any:
        self.gets.append(timeout)
        snap = self.snapshots.pop(0) if len(self.snapshots) > 1 else self.snapshots[0]
        if isinstance(snap, grpc.StatusCode):
            raise FakeRpcError(snap)
        return snap


def transport(stub: Stub, timeout: float | None) -> Transport:
    # The channel is never used: every call goes to the stub.
    rpc = Transport("127.0.0.1:9", timeout)
    rpc.stub = stub  # type: ignore[assignment]
    return rpc


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
def test_a_dropped_stream_resumes_after_the_last_event_and_yields_each_once(kind: Kind) -> None:
    first = FakeStream([kind.event(1, kind.running), kind.event(2, kind.running)], error=grpc.StatusCode.UNAVAILABLE)
    second = FakeStream([kind.event(2, kind.running), kind.event(3, kind.terminal)])
    stub = Stub(kind, [first, second], [kind.snapshot(kind.terminal, 3)])
    handle = kind.handle(transport(stub, 30))

    seqs = [ev.sequence for ev in handle.watch()]

    assert seqs == [1, 2, 3]
    assert [after for after, _ in stub.watches] == [0, 2]
    assert first.cancelled and second.cancelled
    assert handle.state.name == "SUCCEEDED" and handle.last_sequence == 3


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
def test_a_stream_that_ends_before_the_last_event_is_opened_again(kind: Kind) -> None:
    # The snapshot is terminal but names an event the stream has not given yet.
    stub = Stub(
        kind,
        [FakeStream([kind.event(1, kind.running)]), FakeStream([kind.event(2, kind.terminal)])],
        [kind.snapshot(kind.terminal, 2)],
    )

    seqs = [ev.sequence for ev in kind.handle(transport(stub, 30)).watch()]

    assert seqs == [1, 2]
    assert [after for after, _ in stub.watches] == [0, 1]


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
@pytest.mark.parametrize("client_timeout", [None, 30.0, 2.0])
def test_wait_bounds_every_call_by_what_is_left_of_its_timeout(kind: Kind, client_timeout: float | None) -> None:
    stub = Stub(kind, [FakeStream([kind.event(1, kind.terminal)])], [kind.snapshot(kind.terminal, 1)])

    kind.handle(transport(stub, client_timeout)).wait(timeout=5)

    bound = 5 if client_timeout is None else min(5, client_timeout)
    assert [t is not None and 0 < t <= 5 for _, t in stub.watches] == [True]
    assert [t is not None and 0 < t <= bound for t in stub.gets] == [True], stub.gets


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
def test_watch_without_a_deadline_reads_the_snapshot_with_the_clients_timeout(kind: Kind) -> None:
    stub = Stub(kind, [FakeStream([kind.event(1, kind.terminal)])], [kind.snapshot(kind.terminal, 1)])

    list(kind.handle(transport(stub, 7.0)).watch())

    assert stub.watches == [(0, None)]  # a watch may follow for as long as the target lives
    assert stub.gets == [7.0]


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
def test_wait_times_out_naming_the_state_when_the_target_does_not_end(kind: Kind) -> None:
    stub = Stub(kind, [FakeStream([]) for _ in range(50)], [kind.snapshot(kind.running, 0)])

    with pytest.raises(TimeoutError, match=f"{kind.name} .* is still RUNNING \\(wait timed out\\)"):
        kind.handle(transport(stub, 30)).wait(timeout=0.5)


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
def test_a_deadline_exceeded_stream_is_a_timeout_error(kind: Kind) -> None:
    stub = Stub(kind, [FakeStream([], error=grpc.StatusCode.DEADLINE_EXCEEDED)], [kind.snapshot(kind.running, 0)])

    with pytest.raises(TimeoutError, match="still RUNNING"):
        kind.handle(transport(stub, 30)).wait(timeout=5)


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
def test_an_unreachable_daemon_is_given_up_after_the_reconnect_timeout(kind: Kind) -> None:
    stub = Stub(
        kind,
        [FakeStream([], error=grpc.StatusCode.UNAVAILABLE) for _ in range(50)],
        [kind.snapshot(kind.running, 0)],
    )

    with pytest.raises(Unavailable):
        list(kind.handle(transport(stub, 30)).watch(reconnect_timeout=0.3))
    assert len(stub.watches) >= 2  # it did reconnect before giving up


def test_no_module_but_the_watch_loop_paces_reconnects() -> None:
    # A second loop would need its own pacing between attempts: there is one.
    import tauro_exec

    src = Path(tauro_exec.__file__).parent
    pacing = sorted(
        p.name for p in src.rglob("*.py") if "_proto" not in p.parts and "Backoff()" in p.read_text()
    )
    assert pacing == ["_watch.py"]
