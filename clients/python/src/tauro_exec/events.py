"""Typed run events, as ``Run.watch()`` yields them.

Every event carries the run-wide ``sequence`` (from 1, no gaps), the time it
was recorded and the run's project. An event of a kind this client does not know yet is yielded as a
plain ``Event`` so that sequences stay complete.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from google.protobuf.json_format import MessageToDict

from tauro_exec._proto.tauro.exec.v1 import exec_pb2 as pb
from tauro_exec.models import ExpectationResult, NodeError, NodeState, RunState, duration, timestamp


@dataclass(frozen=True)
class Event:
    run_id: str
    sequence: int
    time: datetime | None
    # Keyword-only, so that the kinds' own fields keep their positions.
    project: str = field(default="", kw_only=True)


@dataclass(frozen=True)
class RunStateChanged(Event):
    state: RunState
    message: str


@dataclass(frozen=True)
class RunMessage(Event):
    """Something said about the run as a whole, e.g. that its MLflow tracking
    server does not answer and what it did not take is kept to send later."""

    level: str
    text: str


@dataclass(frozen=True)
class NodeStateChanged(Event):
    node: str
    state: NodeState
    attempt: int
    error: NodeError | None
    # How long until the next attempt, when state is RETRYING.
    retry_in: timedelta | None
    # How long the attempt took, on terminal states.
    duration: timedelta | None


@dataclass(frozen=True)
class NodeMessage(Event):
    node: str
    attempt: int
    level: str
    text: str


@dataclass(frozen=True)
class NodeMetric(Event):
    node: str
    attempt: int
    name: str
    value: float
    # The step the node logged it at (MLflow's step); 0 when it gave none.
    step: int = 0


@dataclass(frozen=True)
class SourceProgress:
    """One source's part of a micro-batch; offsets are the source's own JSON, "" when it has none."""

    description: str
    start_offset: str
    end_offset: str
    latest_offset: str
    input_rows: int
    input_rows_per_second: float
    processed_rows_per_second: float


@dataclass(frozen=True)
class SinkProgress:
    """What a micro-batch wrote; ``output_rows`` is -1 when the sink does not say."""

    description: str
    output_rows: int


@dataclass(frozen=True)
class NodeProgress(Event):
    """One micro-batch of a streaming node's query, as Spark reported it."""

    node: str
    attempt: int
    batch_id: int
    input_rows: int
    input_rows_per_second: float
    processed_rows_per_second: float
    batch_duration: timedelta | None
    # The event-time watermark (RFC 3339), "" when the query has none.
    watermark: str
    state_rows: int
    # Each source's part, in the query's order; the sink; the batch's
    # observed metrics (Dataset.observe) by observation name.
    sources: tuple[SourceProgress, ...] = field(default=(), kw_only=True)
    sink: SinkProgress | None = field(default=None, kw_only=True)
    observed_metrics: dict[str, Any] = field(default_factory=dict, kw_only=True)


class LagState(enum.Enum):
    """Whether a streaming query keeps up: the contract's LagState without its prefix."""

    UNSPECIFIED = pb.LAG_STATE_UNSPECIFIED
    # A batch took longer than max_batch_duration, or none came for too long.
    LAGGING = pb.LAG_STATE_LAGGING
    # A batch within max_batch_duration after LAGGING.
    CAUGHT_UP = pb.LAG_STATE_CAUGHT_UP

    @classmethod
    def _missing_(cls, value: object) -> LagState:
        return cls.UNSPECIFIED


@dataclass(frozen=True)
class NodeLag(Event):
    """A streaming node's query starting to lag, or catching up."""

    node: str
    attempt: int
    state: LagState
    reason: str
    # The batch that showed it; None for "no batch came".
    batch_id: int | None


@dataclass(frozen=True)
class NodeExpectations(Event):
    """How a node's result met its expectations: once per attempt of a batch node,
    once per micro-batch (``batch_id``) of a streaming one."""

    node: str
    attempt: int
    batch_id: int | None
    results: tuple[ExpectationResult, ...]


def event_from_proto(ev: pb.RunEvent) -> Event:
    run_id, seq, project = ev.run_id, ev.sequence, ev.project
    at = timestamp(ev.time) if ev.HasField("time") else None
    kind = ev.WhichOneof("kind")
    if kind == "run_state_changed":
        r = ev.run_state_changed
        return RunStateChanged(run_id, seq, at, project=project, state=RunState(r.state), message=r.message)
    if kind == "node_state_changed":
        n = ev.node_state_changed
        return NodeStateChanged(
            run_id,
            seq,
            at,
            project=project,
            node=n.node,
            state=NodeState(n.state),
            attempt=n.attempt,
            error=NodeError.from_proto(n.error) if n.HasField("error") else None,
            retry_in=duration(n.retry_in) if n.HasField("retry_in") else None,
            duration=duration(n.duration) if n.HasField("duration") else None,
        )
    if kind == "node_message":
        m = ev.node_message
        return NodeMessage(run_id, seq, at, project=project, node=m.node, attempt=m.attempt, level=m.level, text=m.text)
    if kind == "node_metric":
        x = ev.node_metric
        return NodeMetric(
            run_id, seq, at, project=project, node=x.node, attempt=x.attempt, name=x.name, value=x.value, step=x.step
        )
    if kind == "run_message":
        rm = ev.run_message
        return RunMessage(run_id, seq, at, project=project, level=rm.level, text=rm.text)
    if kind == "node_progress":
        p = ev.node_progress
        return NodeProgress(
            run_id,
            seq,
            at,
            project=project,
            node=p.node,
            attempt=p.attempt,
            batch_id=p.batch_id,
            input_rows=p.input_rows,
            input_rows_per_second=p.input_rows_per_second,
            processed_rows_per_second=p.processed_rows_per_second,
            batch_duration=duration(p.batch_duration) if p.HasField("batch_duration") else None,
            watermark=p.watermark,
            state_rows=p.state_rows,
            sources=tuple(
                SourceProgress(
                    s.description,
                    s.start_offset,
                    s.end_offset,
                    s.latest_offset,
                    s.input_rows,
                    s.input_rows_per_second,
                    s.processed_rows_per_second,
                )
                for s in p.sources
            ),
            sink=SinkProgress(p.sink.description, p.sink.output_rows) if p.HasField("sink") else None,
            observed_metrics=MessageToDict(p.observed_metrics) if p.HasField("observed_metrics") else {},
        )
    if kind == "node_lag":
        g = ev.node_lag
        return NodeLag(
            run_id,
            seq,
            at,
            project=project,
            node=g.node,
            attempt=g.attempt,
            state=LagState(g.state),
            reason=g.reason,
            batch_id=g.batch_id if g.HasField("batch_id") else None,
        )
    if kind == "node_expectations":
        e = ev.node_expectations
        return NodeExpectations(
            run_id,
            seq,
            at,
            project=project,
            node=e.node,
            attempt=e.attempt,
            batch_id=e.batch_id if e.HasField("batch_id") else None,
            results=tuple(ExpectationResult.from_proto(r) for r in e.results),
        )
    return Event(run_id, seq, at, project=project)


def describe_event(ev: Event) -> str:
    """One compact line, as the progress display prints it."""
    at = ev.time.astimezone().strftime("%H:%M:%S.%f")[:-3] if ev.time else "--:--:--.---"
    head = f"{at}  #{ev.sequence:<4d}"
    if isinstance(ev, RunStateChanged):
        line = f"{head} run {ev.state.name}"
        return f"{line}: {ev.message}" if ev.message else line
    if isinstance(ev, NodeStateChanged):
        line = f"{head} {ev.node:<24} {ev.state.name:<9} attempt {ev.attempt}"
        if ev.duration is not None:
            line += f"  {ev.duration.total_seconds():.3f}s"
        if ev.retry_in is not None:
            line += f"  retry in {ev.retry_in.total_seconds():.3f}s"
        if ev.error is not None:
            line += f"  {ev.error.type}: {_first_line(ev.error.message)}"
        return line
    if isinstance(ev, NodeMessage):
        return f"{head} {ev.node:<24} {ev.level}: {ev.text}"
    if isinstance(ev, RunMessage):
        return f"{head} run {ev.level}: {ev.text}"
    if isinstance(ev, NodeMetric):
        line = f"{head} {ev.node:<24} metric {ev.name} = {ev.value:g}"
        return f"{line} (step {ev.step})" if ev.step else line
    if isinstance(ev, NodeProgress):
        line = (
            f"{head} {ev.node:<24} batch {ev.batch_id}: {ev.input_rows} rows"
            f"  {ev.input_rows_per_second:.1f} in/s  {ev.processed_rows_per_second:.1f} done/s"
        )
        if ev.batch_duration is not None:
            line += f"  {ev.batch_duration.total_seconds():.3f}s"
        if ev.watermark:
            line += f"  watermark {ev.watermark}"
        if ev.state_rows:
            line += f"  state {ev.state_rows} rows"
        return line
    if isinstance(ev, NodeLag):
        return f"{head} {ev.node:<24} {ev.state.name}: {ev.reason}"
    if isinstance(ev, NodeExpectations):
        where = ev.node if ev.batch_id is None else f"{ev.node} batch {ev.batch_id}"
        return "\n".join(f"{head} {where:<24} expect {describe_expectation(r)}" for r in ev.results)
    return f"{head} (event of a kind this client does not know)"


def describe_expectation(r: ExpectationResult) -> str:
    """``every_27th drop 963 passed 37 failed``, and what broke when it did not hold."""
    line = f"{r.name} {r.kind} {r.passed} passed {r.failed} failed"
    if not r.ok:
        line += f"  BROKEN ({r.severity})" + (f": {r.message}" if r.message else "")
    return line


def _first_line(s: str) -> str:
    first, sep, _ = s.partition("\n")
    return first + " ..." if sep else first
