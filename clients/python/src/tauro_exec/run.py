"""The handle on one run: its state, its events, and what can be done to it."""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import Any

from google.protobuf import json_format

from tauro_exec import _display
from tauro_exec._proto.tauro.exec.v1 import exec_pb2 as pb
from tauro_exec._rpc import Transport
from tauro_exec._watch import DEFAULT_RECONNECT_TIMEOUT, Stream, follow
from tauro_exec.errors import NodeFailure, RunFailed
from tauro_exec.events import Event, NodeStateChanged, RunStateChanged, describe_event, event_from_proto
from tauro_exec.models import MlflowRun, NodeError, NodeRun, NodeState, RunState, mlflow_run, timestamp


class Run:
    """A run of a pipeline, as last read from execd.

    The attributes are a snapshot: ``refresh()`` reads the run again, and
    ``watch()`` / ``wait()`` keep it current as events arrive.
    """

    def __init__(self, transport: Transport, run: pb.Run) -> None:
        self._rpc = transport
        self._set(run)

    def _set(self, run: pb.Run) -> None:
        self._pb = run
        self._state = RunState(run.state)
        self._message = run.message
        self._nodes = [NodeRun.from_proto(n) for n in run.nodes]
        self._last_sequence = run.last_sequence

    # ---- the snapshot ------------------------------------------------------

    @property
    def id(self) -> str:
        return self._pb.run_id

    @property
    def project(self) -> str:
        """The project the run belongs to, as execd's projects file names it."""
        return self._pb.project

    @property
    def pipeline(self) -> str:
        return self._pb.pipeline

    @property
    def state(self) -> RunState:
        return self._state

    @property
    def message(self) -> str:
        """Why the run failed or was cancelled."""
        return self._message

    @property
    def nodes(self) -> list[NodeRun]:
        return list(self._nodes)

    def node(self, name: str) -> NodeRun:
        for n in self._nodes:
            if n.name == name:
                return n
        raise KeyError(f"run {self.id} has no node {name!r}")

    @property
    def env(self) -> str:
        return self._pb.env

    @property
    def start_date(self) -> date | None:
        return date.fromisoformat(self._pb.start_date) if self._pb.start_date else None

    @property
    def end_date(self) -> date | None:
        return date.fromisoformat(self._pb.end_date) if self._pb.end_date else None

    @property
    def hyperparams(self) -> dict[str, Any]:
        """The effective hyperparameters recorded on the run."""
        return json_format.MessageToDict(self._pb.hyperparams)

    @property
    def model_version(self) -> str:
        return self._pb.model_version

    @property
    def mlflow(self) -> MlflowRun | None:
        """The run's parent run in MLflow, when its pipeline's mlops block is
        on; each ML node attempt's run is its child (``Attempt.mlflow``)."""
        return mlflow_run(self._pb.HasField("mlflow"), self._pb.mlflow)

    @property
    def select(self) -> list[str]:
        return list(self._pb.select)

    @property
    def full_refresh(self) -> list[str]:
        """The streaming nodes the run was asked to rebuild from scratch."""
        return list(self._pb.full_refresh)

    @property
    def reset_checkpoint(self) -> list[str]:
        """The streaming nodes whose checkpoint the run was asked to reset."""
        return list(self._pb.reset_checkpoint)

    @property
    def max_workers(self) -> int:
        return self._pb.max_workers

    @property
    def fail_fast(self) -> bool:
        return self._pb.fail_fast

    @property
    def priority(self) -> int:
        return self._pb.priority

    @property
    def request_id(self) -> str:
        return self._pb.request_id

    @property
    def repair_count(self) -> int:
        return self._pb.repair_count

    @property
    def create_time(self) -> datetime | None:
        return timestamp(self._pb.create_time) if self._pb.HasField("create_time") else None

    @property
    def start_time(self) -> datetime | None:
        return timestamp(self._pb.start_time) if self._pb.HasField("start_time") else None

    @property
    def end_time(self) -> datetime | None:
        return timestamp(self._pb.end_time) if self._pb.HasField("end_time") else None

    @property
    def duration(self) -> timedelta | None:
        start, end = self.start_time, self.end_time
        return end - start if start is not None and end is not None else None

    @property
    def last_sequence(self) -> int:
        """Sequence of the newest event this snapshot reflects."""
        return self._last_sequence

    def __repr__(self) -> str:
        tracked = f" mlflow={self.mlflow}" if self.mlflow else ""
        return f"<Run {self.id} pipeline={self.pipeline} state={self.state.name}{tracked}>"

    def _repr_html_(self) -> str:
        return _display.run_html(self)

    # ---- calls -------------------------------------------------------------

    def refresh(self) -> Run:
        """Read the run again; returns self."""
        resp = self._rpc.call(self._rpc.stub.GetRun, pb.GetRunRequest(run_id=self.id))
        self._set(resp.run)
        return self

    def cancel(self, reason: str = "") -> Run:
        """Ask execd to stop the run: running nodes are cancelled, pending ones never start.

        Returns self; ``wait()`` follows the run until it has stopped.
        """
        req = pb.CancelRunRequest(run_id=self.id, reason=reason)
        self._set(self._rpc.call(self._rpc.stub.CancelRun, req, retry=False).run)
        return self

    def stop(self, reason: str = "") -> Run:
        """End the run's streaming queries gracefully, each after its current micro-batch.

        Batch nodes run on; a run whose nodes all end well ends SUCCEEDED.
        Returns self once the run has ended.
        """
        req = pb.StopRunRequest(run_id=self.id, reason=reason)
        self._set(self._rpc.call(self._rpc.stub.StopRun, req, retry=False).run)
        return self

    def repair(self, *, request_id: str | None = None) -> Run:
        """Re-run, in this run record, the nodes that did not succeed and what depends on them.

        Returns self, now following the repair; ``wait()`` waits for it.
        """
        req = pb.RepairRunRequest(run_id=self.id, request_id=request_id or str(uuid.uuid4()))
        self._set(self._rpc.call(self._rpc.stub.RepairRun, req).run)
        return self

    def watch(
        self, after_sequence: int = 0, *, reconnect_timeout: float = DEFAULT_RECONNECT_TIMEOUT
    ) -> Iterator[Event]:
        """Yield the run's events with a sequence above ``after_sequence``, in order.

        Replays what is stored, then follows live. A dropped stream or an
        unreachable daemon is retried (for up to ``reconnect_timeout`` seconds
        without progress) and resumes after the last event seen, so every
        sequence is yielded exactly once. Ends once the run is terminal and
        every event up to its last one has been yielded.
        """
        return follow(self, self._rpc, after_sequence, None, reconnect_timeout)

    def wait(self, timeout: float | None = None, *, progress: bool | None = None) -> Run:
        """Block until the run is terminal; return self if it succeeded.

        Raises ``RunFailed`` (with each failed node's error) when it ended in any
        other state, and ``TimeoutError`` when ``timeout`` seconds pass first.
        ``progress`` shows live progress; by default only inside IPython/Jupyter.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        shown = _display.progress_for(self._repr_html_, describe_event, progress)
        try:
            for ev in follow(self, self._rpc, self._last_sequence, deadline, DEFAULT_RECONNECT_TIMEOUT):
                if shown is not None:
                    shown.update(ev)
        finally:
            if shown is not None:
                shown.close()
        if self.state is not RunState.SUCCEEDED:
            raise RunFailed(self, self._failures())
        return self

    # ---- following (the loop is _watch.follow) ------------------------------

    def _open_watch(self, after_sequence: int, timeout: float | None) -> Stream:
        return self._rpc.stub.WatchRun(pb.WatchRunRequest(run_id=self.id, after_sequence=after_sequence), timeout=timeout)

    def _event(self, response: pb.WatchRunResponse) -> Event:
        return event_from_proto(response.event)

    def _reread(self, timeout: float | None) -> tuple[bool, int]:
        got = self._rpc.call(self._rpc.stub.GetRun, pb.GetRunRequest(run_id=self.id), retry=False, timeout=timeout)
        seen = self._last_sequence
        self._set(got.run)
        self._last_sequence = max(self._last_sequence, seen)
        return self.state.is_terminal, got.run.last_sequence

    def _timeout_error(self) -> TimeoutError:
        return TimeoutError(f"run {self.id} is still {self.state.name} (wait timed out)")

    def _apply(self, ev: Event) -> None:
        """Bring the snapshot up to date with one event, without a round trip."""
        self._last_sequence = max(self._last_sequence, ev.sequence)
        if isinstance(ev, RunStateChanged):
            self._state, self._message = ev.state, ev.message
        elif isinstance(ev, NodeStateChanged):
            for i, n in enumerate(self._nodes):
                if n.name == ev.node:
                    self._nodes[i] = _advance(n, ev)
                    return
            self._nodes.append(_advance(NodeRun(ev.node, NodeState.PENDING, 0, None, None, None), ev))

    def _failures(self) -> list[NodeFailure]:
        # Only the nodes that failed themselves: skipped ones merely follow them.
        out = []
        for n in self._nodes:
            if n.state in (NodeState.FAILED, NodeState.TIMED_OUT):
                out.append(NodeFailure(n.name, n.error or NodeError(n.state.name, "no error was recorded")))
        return out


def _advance(n: NodeRun, ev: NodeStateChanged) -> NodeRun:
    start, end, error = n.start_time, n.end_time, n.error
    if ev.state is NodeState.RUNNING:
        start = start or ev.time
        end, error = None, None
    elif ev.state.is_terminal:
        end = ev.time
        if start is None and end is not None and ev.duration is not None:
            start = end - ev.duration
    if ev.error is not None:
        error = ev.error
    elif ev.state is NodeState.SUCCEEDED:
        error = None
    return dataclasses.replace(n, state=ev.state, attempt=ev.attempt or n.attempt, start_time=start, end_time=end, error=error)

