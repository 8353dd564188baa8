"""Plain Python values for an experiment: its state, its trials and their states.

As ``models.py`` does for runs, each ``from_proto`` keeps the generated
messages out of user code.
"""

from __future__ import annotations

import enum
import importlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from google.protobuf import json_format, struct_pb2

from tauro_exec._proto.tauro.exec.v1 import exec_pb2 as pb
from tauro_exec.models import MlflowRun, mlflow_run, timestamp


class ExperimentState(enum.Enum):
    UNSPECIFIED = pb.EXPERIMENT_STATE_UNSPECIFIED
    PENDING = pb.EXPERIMENT_STATE_PENDING
    RUNNING = pb.EXPERIMENT_STATE_RUNNING
    SUCCEEDED = pb.EXPERIMENT_STATE_SUCCEEDED
    FAILED = pb.EXPERIMENT_STATE_FAILED
    CANCELLED = pb.EXPERIMENT_STATE_CANCELLED

    @classmethod
    def _missing_(cls, value: object) -> ExperimentState:
        return cls.UNSPECIFIED

    @property
    def is_terminal(self) -> bool:
        return self in (ExperimentState.SUCCEEDED, ExperimentState.FAILED, ExperimentState.CANCELLED)


class TrialState(enum.Enum):
    UNSPECIFIED = pb.TRIAL_STATE_UNSPECIFIED
    RUNNING = pb.TRIAL_STATE_RUNNING
    SUCCEEDED = pb.TRIAL_STATE_SUCCEEDED
    FAILED = pb.TRIAL_STATE_FAILED
    CANCELLED = pb.TRIAL_STATE_CANCELLED

    @classmethod
    def _missing_(cls, value: object) -> TrialState:
        return cls.UNSPECIFIED


@dataclass(frozen=True)
class Trial:
    """One proposal of the optimiser and the run that tried it."""

    number: int
    state: TrialState
    params: dict[str, Any]
    value: float | None
    run_id: str
    start_time: datetime | None
    end_time: datetime | None
    message: str
    # The trial's child run in MLflow, when its pipeline's mlops block is on.
    mlflow: MlflowRun | None = None

    @property
    def duration(self) -> timedelta | None:
        if self.start_time is None or self.end_time is None:
            return None
        return self.end_time - self.start_time

    @classmethod
    def from_proto(cls, t: pb.Trial, integers: frozenset[str] = frozenset()) -> Trial:
        """The trial; ``integers`` names its dimensions of whole numbers (JSON numbers arrive as floats)."""
        return cls(
            number=t.number,
            state=TrialState(t.state),
            params=_params(t.params, integers),
            value=t.value if t.HasField("value") else None,
            run_id=t.run_id,
            start_time=timestamp(t.start_time) if t.HasField("start_time") else None,
            end_time=timestamp(t.end_time) if t.HasField("end_time") else None,
            message=t.message,
            mlflow=mlflow_run(t.HasField("mlflow"), t.mlflow),
        )


def _params(s: struct_pb2.Struct, integers: frozenset[str]) -> dict[str, Any]:
    out = json_format.MessageToDict(s)
    return {k: int(v) if k in integers and isinstance(v, float) and v.is_integer() else v for k, v in out.items()}


def format_param(v: object) -> str:
    """A hyperparameter's value as progress lines and the trials table show it."""
    return f"{v:.4g}" if isinstance(v, float) else str(v)


class Trials(list[Trial]):
    """An experiment's trials: a list that shows as a table in Jupyter."""

    best: int | None = None

    def to_pandas(self) -> Any:
        """One row per trial: number, state, value, one column per parameter, run_id, times."""
        try:
            pd = importlib.import_module("pandas")
        except ImportError as e:
            raise ImportError("to_pandas needs pandas: pip install pandas") from e
        rows = []
        for t in self:
            row: dict[str, Any] = {"number": t.number, "state": t.state.name, "value": t.value}
            row.update(t.params)
            row.update({"run_id": t.run_id, "start_time": t.start_time, "end_time": t.end_time, "message": t.message})
            row["mlflow_run_id"] = t.mlflow.run_id if t.mlflow else None
            rows.append(row)
        return pd.DataFrame(rows)

    def _repr_html_(self) -> str:
        from tauro_exec import _display  # which imports this module for the states

        return _display.trials_html(self, self.best)
