"""Plain Python values for what execd returns: states, nodes, pipelines, plans and projects.

Each ``from_proto`` keeps the generated messages out of user code, so a notebook
sees enums, datetimes and lists instead of protobuf wrappers.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from google.protobuf import duration_pb2, timestamp_pb2

from tauro_exec._proto.tauro.exec.v1 import exec_pb2 as pb


class RunState(enum.Enum):
    """The state of a run: the contract's RunState without its RUN_STATE_ prefix."""

    UNSPECIFIED = pb.RUN_STATE_UNSPECIFIED
    PENDING = pb.RUN_STATE_PENDING
    RUNNING = pb.RUN_STATE_RUNNING
    SUCCEEDED = pb.RUN_STATE_SUCCEEDED
    FAILED = pb.RUN_STATE_FAILED
    CANCELLED = pb.RUN_STATE_CANCELLED
    INTERRUPTED = pb.RUN_STATE_INTERRUPTED
    # Recorded and waiting for admission (run limits, or another run writing the same outputs).
    QUEUED = pb.RUN_STATE_QUEUED

    @classmethod
    def _missing_(cls, value: object) -> RunState:
        # A newer daemon may add states; they must not break an older client.
        return cls.UNSPECIFIED

    @property
    def is_terminal(self) -> bool:
        """True when the run will not change again unless it is repaired."""
        return self in _TERMINAL_RUN_STATES


_TERMINAL_RUN_STATES = frozenset(
    {RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED, RunState.INTERRUPTED}
)


class NodeState(enum.Enum):
    """The state of one node within a run: the contract's NodeState without its NODE_STATE_ prefix."""

    UNSPECIFIED = pb.NODE_STATE_UNSPECIFIED
    PENDING = pb.NODE_STATE_PENDING
    RUNNING = pb.NODE_STATE_RUNNING
    RETRYING = pb.NODE_STATE_RETRYING
    SUCCEEDED = pb.NODE_STATE_SUCCEEDED
    FAILED = pb.NODE_STATE_FAILED
    CANCELLED = pb.NODE_STATE_CANCELLED
    SKIPPED = pb.NODE_STATE_SKIPPED
    TIMED_OUT = pb.NODE_STATE_TIMED_OUT
    # The node's streaming query runs; progress arrives as NodeProgress events.
    STREAMING = pb.NODE_STATE_STREAMING

    @classmethod
    def _missing_(cls, value: object) -> NodeState:
        return cls.UNSPECIFIED

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL_NODE_STATES


_TERMINAL_NODE_STATES = frozenset(
    {
        NodeState.SUCCEEDED,
        NodeState.FAILED,
        NodeState.CANCELLED,
        NodeState.SKIPPED,
        NodeState.TIMED_OUT,
    }
)


class PipelineType(enum.Enum):
    """tauro's pipeline ``type``: the contract's PipelineType without its PIPELINE_TYPE_ prefix."""

    UNSPECIFIED = pb.PIPELINE_TYPE_UNSPECIFIED
    BATCH = pb.PIPELINE_TYPE_BATCH
    STREAMING = pb.PIPELINE_TYPE_STREAMING
    HYBRID = pb.PIPELINE_TYPE_HYBRID
    ML = pb.PIPELINE_TYPE_ML

    @classmethod
    def _missing_(cls, value: object) -> PipelineType:
        return cls.UNSPECIFIED


def timestamp(ts: timestamp_pb2.Timestamp) -> datetime:
    """A timezone-aware UTC datetime; callers check the field is set."""
    return ts.ToDatetime(tzinfo=timezone.utc)


def duration(d: duration_pb2.Duration) -> timedelta:
    return d.ToTimedelta()


@dataclass(frozen=True)
class NodeError:
    """Why a node attempt failed: for Python nodes, the exception and its traceback."""

    type: str
    message: str
    traceback: str = ""
    retryable: bool = False

    def __str__(self) -> str:
        head = f"{self.type}: {self.message}" if self.type else self.message
        if self.traceback:
            return f"{head}\n{self.traceback.rstrip()}"
        return head

    @classmethod
    def from_proto(cls, e: pb.NodeError) -> NodeError:
        return cls(type=e.type, message=e.message, traceback=e.traceback, retryable=e.retryable)


def _node_error(has: bool, e: pb.NodeError) -> NodeError | None:
    return NodeError.from_proto(e) if has else None


@dataclass(frozen=True)
class MlflowRun:
    """A run in an MLflow tracking server: a run's or experiment's parent run,
    or an attempt's or trial's child run."""

    experiment_id: str
    run_id: str
    # The run's page in the MLflow UI; "" when execd knows none.
    url: str

    def __str__(self) -> str:
        return self.url or self.run_id

    @classmethod
    def from_proto(cls, m: pb.MlflowRun) -> MlflowRun:
        return cls(experiment_id=m.experiment_id, run_id=m.run_id, url=m.url)


def mlflow_run(has: bool, m: pb.MlflowRun) -> MlflowRun | None:
    """The MLflow run of a message's ``mlflow`` field, None when unset (tracking off)."""
    return MlflowRun.from_proto(m) if has and m.run_id else None


@dataclass(frozen=True)
class ExpectationResult:
    """How one expectation or check of a node held over what the node produced.

    ``kind`` is a row expectation's action (warn, drop, fail) or a check's kind
    (row_count, unique, not_null, freshness). ``passed`` and ``failed`` count rows:
    those that met the condition and those that did not; for a check, the rows it
    looked at and those that broke it. ``severity`` is "error" (a broken one fails
    the node) or "warn".
    """

    name: str
    kind: str
    passed: int
    failed: int
    severity: str
    ok: bool
    message: str

    @classmethod
    def from_proto(cls, r: pb.ExpectationResult) -> ExpectationResult:
        return cls(r.name, r.kind, r.passed, r.failed, r.severity, r.ok, r.message)


@dataclass(frozen=True)
class Attempt:
    """One attempt at running a node."""

    attempt: int
    state: NodeState
    start_time: datetime | None
    end_time: datetime | None
    error: NodeError | None
    metrics: dict[str, float] = field(default_factory=dict)
    # The attempt's own MLflow run, for an ML node with tracking on.
    mlflow: MlflowRun | None = None
    # The node's expectations over what the attempt produced; summed over
    # micro-batches for a streaming node.
    expectations: list[ExpectationResult] = field(default_factory=list)

    @classmethod
    def from_proto(cls, a: pb.Attempt) -> Attempt:
        return cls(
            attempt=a.attempt,
            state=NodeState(a.state),
            start_time=timestamp(a.start_time) if a.HasField("start_time") else None,
            end_time=timestamp(a.end_time) if a.HasField("end_time") else None,
            error=_node_error(a.HasField("error"), a.error),
            metrics=dict(a.metrics),
            mlflow=mlflow_run(a.HasField("mlflow"), a.mlflow),
            expectations=[ExpectationResult.from_proto(r) for r in a.expectations],
        )


@dataclass(frozen=True)
class NodeRun:
    """A node within a run: its current state and every attempt so far."""

    name: str
    state: NodeState
    attempt: int
    start_time: datetime | None
    end_time: datetime | None
    error: NodeError | None
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def duration(self) -> timedelta | None:
        """Wall time of the node once it has ended, else None."""
        if self.start_time is None or self.end_time is None:
            return None
        return self.end_time - self.start_time

    @classmethod
    def from_proto(cls, n: pb.NodeRun) -> NodeRun:
        return cls(
            name=n.name,
            state=NodeState(n.state),
            attempt=n.attempt,
            start_time=timestamp(n.start_time) if n.HasField("start_time") else None,
            end_time=timestamp(n.end_time) if n.HasField("end_time") else None,
            error=_node_error(n.HasField("error"), n.error),
            attempts=[Attempt.from_proto(a) for a in n.attempts],
        )


@dataclass(frozen=True)
class Plan:
    """The order in which a pipeline's nodes run."""

    order: list[str]
    stages: list[list[str]]
    critical_path: list[str]
    batch_nodes: list[str]
    streaming_nodes: list[str]

    @classmethod
    def from_proto(cls, p: pb.Plan) -> Plan:
        return cls(
            order=list(p.order),
            stages=[list(s.nodes) for s in p.stages],
            critical_path=list(p.critical_path),
            batch_nodes=list(p.batch_nodes),
            streaming_nodes=list(p.streaming_nodes),
        )


@dataclass(frozen=True)
class NodeSpec:
    """A node's configuration after the daemon resolved it."""

    name: str
    kind: str
    function: str
    sql: str
    dependencies: list[str]
    inputs: list[str]
    outputs: list[str]
    description: str
    streaming: bool
    max_retries: int
    timeout: timedelta | None

    @classmethod
    def from_proto(cls, n: pb.NodeSpec) -> NodeSpec:
        return cls(
            name=n.name,
            kind=n.kind,
            function=n.function,
            sql=n.sql,
            dependencies=list(n.dependencies),
            inputs=list(n.inputs),
            outputs=list(n.outputs),
            description=n.description,
            streaming=n.streaming,
            max_retries=n.max_retries,
            timeout=duration(n.timeout) if n.HasField("timeout") else None,
        )


@dataclass(frozen=True)
class PipelineSummary:
    name: str
    type: PipelineType
    node_count: int

    @classmethod
    def from_proto(cls, p: pb.PipelineSummary) -> PipelineSummary:
        return cls(name=p.name, type=PipelineType(p.type), node_count=p.node_count)


@dataclass(frozen=True)
class Pipeline:
    """A pipeline as configured, with its plan."""

    name: str
    type: PipelineType
    nodes: list[NodeSpec]
    plan: Plan

    @classmethod
    def from_proto(cls, p: pb.Pipeline) -> Pipeline:
        return cls(
            name=p.name,
            type=PipelineType(p.type),
            nodes=[NodeSpec.from_proto(n) for n in p.nodes],
            plan=Plan.from_proto(p.plan),
        )


class Role(enum.Enum):
    """What a caller may do: the contract's Role without its ROLE_ prefix, weakest first."""

    UNSPECIFIED = pb.ROLE_UNSPECIFIED
    # Reads: validate, pipelines, runs, events.
    VIEWER = pb.ROLE_VIEWER
    # Also starts, cancels, stops and repairs runs.
    OPERATOR = pb.ROLE_OPERATOR
    ADMIN = pb.ROLE_ADMIN

    @classmethod
    def _missing_(cls, value: object) -> Role:
        return cls.UNSPECIFIED


class ProjectState(enum.Enum):
    """Whether execd can run a project's pipelines: the contract's ProjectState without its prefix."""

    UNSPECIFIED = pb.PROJECT_STATE_UNSPECIFIED
    # Loaded, its workers started.
    SERVING = pb.PROJECT_STATE_SERVING
    # Its folder, settings or workers failed to load (``Project.error`` says
    # why); its runs and experiments can still be read.
    BROKEN = pb.PROJECT_STATE_BROKEN

    @classmethod
    def _missing_(cls, value: object) -> ProjectState:
        return cls.UNSPECIFIED


@dataclass(frozen=True)
class Project:
    """A tauro project execd serves, and the caller's role in it."""

    name: str
    # The project's folder on execd's machine.
    folder: str
    # The environment a request that names none uses.
    default_env: str
    state: ProjectState
    # Why the project is BROKEN, "" when it serves.
    error: str
    role: Role
    # The Python interpreter its node workers run, and how many there are.
    python: str
    workers: int

    @classmethod
    def from_proto(cls, p: pb.Project) -> Project:
        return cls(
            name=p.name,
            folder=p.folder,
            default_env=p.default_env,
            state=ProjectState(p.state),
            error=p.error,
            role=Role(p.role),
            python=p.python,
            workers=p.workers,
        )


@dataclass(frozen=True)
class Caller:
    """Who execd takes the client's credentials for, and what they may do.

    ``role`` holds in every project but those of ``projects``, which maps a
    project to the caller's role there when it differs (a token scoped to
    projects). Without authentication everyone is an admin.
    """

    name: str
    role: Role
    authentication_required: bool
    projects: dict[str, Role] = field(default_factory=dict)

    def role_in(self, project: str) -> Role:
        """The caller's role in one project."""
        return self.projects.get(project, self.role)

    @classmethod
    def from_proto(cls, c: pb.GetCallerResponse) -> Caller:
        return cls(
            name=c.name,
            role=Role(c.role),
            authentication_required=c.authentication_required,
            projects={p.project: Role(p.role) for p in c.projects},
        )
