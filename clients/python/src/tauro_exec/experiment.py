"""The handle on one hyperparameter search: its snapshot, its events, and cancelling it.

An experiment's trials are runs of its pipeline that execd starts with each
trial's hyperparameters; the optimiser proposing them runs in execd's Python
workers. The space is written with ``Real``, ``Integer`` and ``Categorical``
(space.py).

    from tauro_exec import Client, Real, Integer

    with Client() as client:
        exp = client.experiment("train", space=[Real(1e-3, 1e-1, prior="log-uniform", name="lr"),
                                                Integer(2, 8, name="depth")],
                                objective="rmse", n_trials=20, max_parallel_trials=2)
        exp.wait()
        print(exp.best.params, exp.best.value)
        exp.trials.to_pandas()
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from tauro_exec import _display
from tauro_exec._proto.tauro.exec.v1 import exec_pb2 as pb
from tauro_exec._rpc import Transport
from tauro_exec._watch import DEFAULT_RECONNECT_TIMEOUT, Stream, follow
from tauro_exec.errors import ExperimentFailed
from tauro_exec.experiment_events import ExperimentEvent
from tauro_exec.experiment_models import ExperimentState, Trial, Trials, TrialState
from tauro_exec.models import MlflowRun, mlflow_run
from tauro_exec.space import whole_number_names


class Experiment:
    """A hyperparameter search, as last read from execd.

    ``watch()`` yields its events live; ``wait()`` blocks until it ends;
    ``best`` and ``trials`` read the snapshot (``refresh()`` reads it again).
    """

    def __init__(self, transport: Transport, x: pb.Experiment) -> None:
        self._rpc = transport
        self._set(x)

    def _set(self, x: pb.Experiment) -> None:
        self._pb = x
        self._integers = whole_number_names(x.space)
        self._trials = {t.number: Trial.from_proto(t, self._integers) for t in x.trials}
        self._best = Trial.from_proto(x.best, self._integers) if x.HasField("best") else None
        self._state = ExperimentState(x.state)
        self._message = x.message
        self._last = x.last_sequence

    @property
    def id(self) -> str:
        return self._pb.experiment_id

    @property
    def name(self) -> str:
        return self._pb.name

    @property
    def project(self) -> str:
        """The project the experiment belongs to, as execd's projects file names it."""
        return self._pb.project

    @property
    def pipeline(self) -> str:
        return self._pb.pipeline

    @property
    def state(self) -> ExperimentState:
        return self._state

    @property
    def message(self) -> str:
        return self._message

    @property
    def n_trials(self) -> int:
        return self._pb.n_trials

    @property
    def max_parallel_trials(self) -> int:
        return self._pb.max_parallel_trials

    @property
    def objective(self) -> tuple[str, str, str]:
        """(metric, node, "minimize" or "maximize")."""
        o = self._pb.objective
        return o.metric, o.node, "maximize" if o.direction == pb.DIRECTION_MAXIMIZE else "minimize"

    @property
    def shared_nodes(self) -> list[str]:
        return list(self._pb.shared_nodes)

    @property
    def trial_nodes(self) -> list[str]:
        return list(self._pb.trial_nodes)

    @property
    def shared_run_id(self) -> str:
        return self._pb.shared_run_id

    @property
    def mlflow(self) -> MlflowRun | None:
        """The experiment's parent run in MLflow, when its pipeline's mlops
        block is on; each trial is a child run of it (``Trial.mlflow``)."""
        return mlflow_run(self._pb.HasField("mlflow"), self._pb.mlflow)

    @property
    def best(self) -> Trial | None:
        """The succeeded trial with the best value so far."""
        return self._best

    @property
    def trials(self) -> Trials:
        out = Trials(self._trials[n] for n in sorted(self._trials))
        out.best = self._best.number if self._best else None
        return out

    @property
    def last_sequence(self) -> int:
        return self._last

    def __repr__(self) -> str:
        best = f" best={self._best.value:.6g}" if self._best and self._best.value is not None else ""
        return f"<Experiment {self.id} pipeline={self.pipeline} state={self.state.name} trials={len(self._trials)}/{self.n_trials}{best}>"

    def _repr_html_(self) -> str:
        metric, _, direction = self.objective
        caption = f"experiment {self.id} ({self.name or self.pipeline}): {self.state.name}, {direction} {metric}"
        if self._message:
            caption += f" — {self._message}"
        if self.mlflow:
            caption += f" · MLflow {self.mlflow}"
        return _display.trials_html(self.trials, self.trials.best, caption)

    def refresh(self) -> Experiment:
        resp = self._rpc.call(self._rpc.stub.GetExperiment, pb.GetExperimentRequest(experiment_id=self.id))
        self._set(resp.experiment)
        return self

    def cancel(self, reason: str = "") -> Experiment:
        """Cancel every running trial and start no new one; returns self once it has ended."""
        req = pb.CancelExperimentRequest(experiment_id=self.id, reason=reason)
        self._set(self._rpc.call(self._rpc.stub.CancelExperiment, req, retry=False).experiment)
        return self

    def watch(
        self, after_sequence: int = 0, *, reconnect_timeout: float = DEFAULT_RECONNECT_TIMEOUT
    ) -> Iterator[ExperimentEvent]:
        """Yield the experiment's events after ``after_sequence``, replayed then live, each once.

        A dropped stream or an unreachable daemon is retried (for up to
        ``reconnect_timeout`` seconds without progress) and resumes after the
        last event seen. Ends after the terminal event.
        """
        return follow(self, self._rpc, after_sequence, None, reconnect_timeout)

    def wait(self, timeout: float | None = None, *, progress: bool | None = None) -> Experiment:
        """Block until the experiment ends; return self if it succeeded.

        Raises ``ExperimentFailed`` otherwise, ``TimeoutError`` after ``timeout``
        seconds. ``progress`` shows each trial as it happens (by default only in
        IPython/Jupyter, where the trials table updates in place).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        shown = _display.progress_for(self._repr_html_, self._progress_line, progress)
        try:
            for ev in follow(self, self._rpc, self._last, deadline, DEFAULT_RECONNECT_TIMEOUT):
                if shown is not None:
                    shown.update(ev)
        finally:
            if shown is not None:
                shown.close()
        if self._state is not ExperimentState.SUCCEEDED:
            raise ExperimentFailed(self)
        return self

    def _progress_line(self, ev: ExperimentEvent) -> str | None:
        if ev.trial is not None and ev.trial.state is TrialState.RUNNING and not ev.trial.run_id:
            return None  # recorded before its run starts; the next event has the run
        return f"[{self.id}] {ev.describe()}"

    # ---- following (the loop is _watch.follow) ------------------------------

    def _open_watch(self, after_sequence: int, timeout: float | None) -> Stream:
        req = pb.WatchExperimentRequest(experiment_id=self.id, after_sequence=after_sequence)
        return self._rpc.stub.WatchExperiment(req, timeout=timeout)

    def _event(self, response: pb.WatchExperimentResponse) -> ExperimentEvent:
        return ExperimentEvent.from_proto(response.event, self._integers)

    def _reread(self, timeout: float | None) -> tuple[bool, int]:
        req = pb.GetExperimentRequest(experiment_id=self.id)
        got = self._rpc.call(self._rpc.stub.GetExperiment, req, retry=False, timeout=timeout)
        seen = self._last
        self._set(got.experiment)
        self._last = max(self._last, seen)
        return self._state.is_terminal, got.experiment.last_sequence

    def _timeout_error(self) -> TimeoutError:
        return TimeoutError(f"experiment {self.id} is still {self._state.name} (wait timed out)")

    def _apply(self, ev: ExperimentEvent) -> None:
        self._last = max(self._last, ev.sequence)
        if ev.state is not None:
            self._state, self._message = ev.state, ev.message
        if ev.trial is not None:
            self._trials[ev.trial.number] = ev.trial
            if ev.best:
                self._best = ev.trial
