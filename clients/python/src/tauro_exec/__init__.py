"""tauro-exec: run tauro pipelines on Spark through the execd service.

    from tauro_exec import Client

    with Client("127.0.0.1:50051") as client:
        run = client.execute("quick", start_date="2025-01-01", end_date="2025-01-31")
        run.wait()
"""

from tauro_exec.client import Client
from tauro_exec.errors import (
    ExperimentFailed,
    FailedPrecondition,
    NodeFailure,
    NotFound,
    PermissionDenied,
    RunFailed,
    TauroExecError,
    Unauthenticated,
    Unavailable,
    ValidationError,
    Violation,
)
from tauro_exec.events import (
    Event,
    LagState,
    NodeExpectations,
    NodeLag,
    NodeMessage,
    NodeMetric,
    NodeProgress,
    NodeStateChanged,
    RunMessage,
    RunStateChanged,
    SinkProgress,
    SourceProgress,
)
from tauro_exec.experiment import Experiment
from tauro_exec.experiment_events import ExperimentEvent
from tauro_exec.experiment_models import ExperimentState, Trial, Trials, TrialState
from tauro_exec.listing import Experiments, Projects, Runs
from tauro_exec.ml import MLContext, MlflowInfo, Retryable
from tauro_exec.models import (
    Attempt,
    Caller,
    ExpectationResult,
    MlflowRun,
    NodeError,
    NodeRun,
    NodeSpec,
    NodeState,
    Pipeline,
    PipelineSummary,
    PipelineType,
    Plan,
    Project,
    ProjectState,
    Role,
    RunState,
)
from tauro_exec.run import Run
from tauro_exec.space import Categorical, Integer, Real

__all__ = [
    "Attempt",
    "Caller",
    "Categorical",
    "Client",
    "Event",
    "Experiment",
    "ExperimentEvent",
    "ExperimentFailed",
    "ExperimentState",
    "Experiments",
    "ExpectationResult",
    "FailedPrecondition",
    "Integer",
    "LagState",
    "MLContext",
    "MlflowInfo",
    "MlflowRun",
    "NodeError",
    "NodeExpectations",
    "NodeFailure",
    "NodeLag",
    "NodeMessage",
    "NodeMetric",
    "NodeProgress",
    "NodeRun",
    "NodeSpec",
    "NodeState",
    "NodeStateChanged",
    "NotFound",
    "PermissionDenied",
    "Pipeline",
    "PipelineSummary",
    "PipelineType",
    "Plan",
    "Project",
    "ProjectState",
    "Projects",
    "Real",
    "Retryable",
    "Role",
    "Run",
    "RunFailed",
    "RunMessage",
    "RunState",
    "RunStateChanged",
    "Runs",
    "SinkProgress",
    "SourceProgress",
    "TauroExecError",
    "Trial",
    "TrialState",
    "Trials",
    "Unauthenticated",
    "Unavailable",
    "ValidationError",
    "Violation",
]
