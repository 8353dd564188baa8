"""Typed experiment events, as ``Experiment.watch()`` yields them.

Every event carries the experiment-wide ``sequence``, the time it was
recorded and the experiment's project; an event of a kind this client does not know yet keeps its
sequence with nothing else set.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from tauro_exec._proto.tauro.exec.v1 import exec_pb2 as pb
from tauro_exec.experiment_models import ExperimentState, Trial, format_param
from tauro_exec.models import RunState, timestamp


@dataclass(frozen=True)
class ExperimentEvent:
    """One change of an experiment: exactly one of state, trial or shared_run is set."""

    sequence: int
    time: datetime | None
    state: ExperimentState | None = None
    message: str = ""
    trial: Trial | None = None
    best: bool = False
    shared_run_id: str = ""
    shared_run_state: RunState | None = None
    # The experiment's project.
    project: str = ""

    @classmethod
    def from_proto(cls, ev: pb.ExperimentEvent, integers: frozenset[str] = frozenset()) -> ExperimentEvent:
        t = timestamp(ev.time) if ev.HasField("time") else None
        project = ev.project
        kind = ev.WhichOneof("kind")
        if kind == "experiment_state_changed":
            c = ev.experiment_state_changed
            return cls(ev.sequence, t, state=ExperimentState(c.state), message=c.message, project=project)
        if kind == "trial_state_changed":
            tc = ev.trial_state_changed
            return cls(ev.sequence, t, trial=Trial.from_proto(tc.trial, integers), best=tc.best, project=project)
        if kind == "shared_run_state_changed":
            s = ev.shared_run_state_changed
            return cls(
                ev.sequence, t, shared_run_id=s.run_id, shared_run_state=RunState(s.state), message=s.message, project=project
            )
        return cls(ev.sequence, t, project=project)

    def describe(self) -> str:
        if self.state is not None:
            return f"experiment {self.state.name}" + (f": {self.message}" if self.message else "")
        if self.trial is not None:
            t = self.trial
            params = " ".join(f"{k}={format_param(v)}" for k, v in sorted(t.params.items()))
            line = f"trial {t.number} {t.state.name} {params}"
            if t.value is not None:
                line += f" value={t.value:.6g}"
            if self.best:
                line += " (best so far)"
            if t.message:
                line += f" {t.message}"
            return line
        if self.shared_run_state is not None:
            return f"shared nodes' run {self.shared_run_id} {self.shared_run_state.name}"
        return "event"

