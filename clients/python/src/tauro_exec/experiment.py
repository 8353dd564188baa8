"""Hyperparameter search: the space, and the handle on one experiment.

The space is written as tauro writes skopt's (``Real``, ``Integer``,
``Categorical``), without importing skopt; skopt's own objects are accepted
too. An experiment's trials are runs of its pipeline that execd starts with
each trial's hyperparameters; the optimiser proposing them runs in execd's
Python workers.

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

import enum
import html
import importlib
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from google.protobuf import json_format, struct_pb2

from tauro_exec._proto.tauro.exec.v1 import exec_pb2 as pb
from tauro_exec._rpc import Transport
from tauro_exec._watch import DEFAULT_RECONNECT_TIMEOUT, Stream, follow
from tauro_exec.errors import TauroExecError
from tauro_exec.models import RunState, timestamp


# ---- the space -------------------------------------------------------------

_PRIORS = {"uniform": pb.PRIOR_UNIFORM, "log-uniform": pb.PRIOR_LOG_UNIFORM}


@dataclass(frozen=True)
class Real:
    """A float from ``low`` to ``high``; skopt's ``Real`` signature."""

    low: float
    high: float
    prior: str = "uniform"
    base: int = 10
    transform: str | None = None
    name: str | None = None
    dtype: Any = float


@dataclass(frozen=True)
class Integer:
    """A whole number from ``low`` to ``high``, both included; skopt's ``Integer`` signature."""

    low: int
    high: int
    prior: str = "uniform"
    base: int = 10
    transform: str | None = None
    name: str | None = None
    dtype: Any = int


@dataclass(frozen=True)
class Categorical:
    """One of ``categories``; skopt's ``Categorical`` signature (``prior`` is not used)."""

    categories: Sequence[Any]
    prior: Sequence[float] | None = None
    transform: str | None = None
    name: str | None = None


Dimension = Real | Integer | Categorical


def dimension_proto(d: Any, name: str | None = None) -> pb.SearchDimension:
    """One dimension as the contract's message.

    ``d`` is a ``Real``, ``Integer`` or ``Categorical`` (these or skopt's), a
    ``(low, high)`` or ``(low, high, prior)`` tuple (two ints make an Integer),
    or a list of categories; ``name`` names it when ``d`` does not.
    """
    kind = type(d).__name__
    dim_name = getattr(d, "name", None) or name
    if not dim_name:
        raise ValueError(f"dimension {d!r} has no name: give it name=... or pass the space as a mapping of names")
    if kind in ("Real", "Integer"):
        prior = getattr(d, "prior", "uniform") or "uniform"
        if prior not in _PRIORS:
            raise ValueError(f"dimension {dim_name!r}: prior must be 'uniform' or 'log-uniform', got {prior!r}")
        return pb.SearchDimension(
            name=dim_name,
            kind=pb.DIMENSION_KIND_REAL if kind == "Real" else pb.DIMENSION_KIND_INTEGER,
            low=float(d.low),
            high=float(d.high),
            prior=_PRIORS[prior],
        )
    if kind == "Categorical":
        values = [struct_pb2.Value() for _ in d.categories]
        for v, c in zip(values, d.categories):
            _set_value(v, c)
        return pb.SearchDimension(name=dim_name, kind=pb.DIMENSION_KIND_CATEGORICAL, categories=values)
    if isinstance(d, tuple) and len(d) in (2, 3) and all(isinstance(x, (int, float)) for x in d[:2]):
        prior = d[2] if len(d) == 3 else "uniform"
        both_int = all(isinstance(x, int) and not isinstance(x, bool) for x in d[:2])
        cls = Integer if both_int else Real
        return dimension_proto(cls(d[0], d[1], prior=prior, name=dim_name))
    if isinstance(d, (list, tuple)):
        return dimension_proto(Categorical(list(d), name=dim_name))
    raise TypeError(f"dimension {dim_name!r}: use Real(...), Integer(...), Categorical([...]), (low, high) or a list, not {kind}")


def _set_value(v: struct_pb2.Value, c: Any) -> None:
    if isinstance(c, bool):
        v.bool_value = c
    elif isinstance(c, (int, float)):
        v.number_value = float(c)
    elif isinstance(c, str):
        v.string_value = c
    elif c is None:
        v.null_value = struct_pb2.NULL_VALUE
    else:
        raise TypeError(f"a category must be a string, number, boolean or None, not {type(c).__name__}")


def space_protos(space: Sequence[Any] | Mapping[str, Any] | None) -> list[pb.SearchDimension]:
    if space is None:
        return []
    if isinstance(space, Mapping):
        return [dimension_proto(d, name) for name, d in space.items()]
    return [dimension_proto(d) for d in space]


# ---- the experiment --------------------------------------------------------


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
        )


def _whole(d: pb.SearchDimension) -> bool:
    """Whether d's values are whole numbers: an Integer dimension, or a
    Categorical one whose choices all are (a node reads them as ints)."""
    if d.kind == pb.DIMENSION_KIND_INTEGER:
        return True
    return (
        d.kind == pb.DIMENSION_KIND_CATEGORICAL
        and len(d.categories) > 0
        and all(c.WhichOneof("kind") == "number_value" and c.number_value.is_integer() for c in d.categories)
    )


def _params(s: struct_pb2.Struct, integers: frozenset[str]) -> dict[str, Any]:
    out = json_format.MessageToDict(s)
    return {k: int(v) if k in integers and isinstance(v, float) and v.is_integer() else v for k, v in out.items()}


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
            rows.append(row)
        return pd.DataFrame(rows)

    def _repr_html_(self) -> str:
        return trials_html(self, self.best)


_TRIAL_COLOURS = {
    TrialState.SUCCEEDED: "#1a7f37",
    TrialState.FAILED: "#cf222e",
    TrialState.CANCELLED: "#9a6700",
    TrialState.RUNNING: "#0969da",
}


def trials_html(trials: Sequence[Trial], best: int | None, caption: str = "") -> str:
    names: list[str] = []
    for t in trials:
        names.extend(k for k in t.params if k not in names)
    e = html.escape
    head = "".join(f"<th>{e(n)}</th>" for n in names)
    rows = []
    for t in trials:
        colour = _TRIAL_COLOURS.get(t.state, "inherit")
        params = "".join(f"<td>{e(_fmt(t.params.get(n, '')))}</td>" for n in names)
        value = "" if t.value is None else f"{t.value:.6g}"
        mark = " &#9733;" if best == t.number else ""
        took = "" if t.duration is None else f"{t.duration.total_seconds():.1f}s"
        rows.append(
            f"<tr><td>{t.number}{mark}</td><td style='color:{colour}'>{t.state.name}</td>{params}"
            f"<td>{value}</td><td>{took}</td><td><code>{e(t.run_id)}</code></td><td>{e(t.message[:200])}</td></tr>"
        )
    cap = f"<caption style='text-align:left'>{e(caption)}</caption>" if caption else ""
    return (
        f"<table>{cap}<thead><tr><th>trial</th><th>state</th>{head}<th>value</th><th>took</th><th>run</th><th></th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


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

    @classmethod
    def from_proto(cls, ev: pb.ExperimentEvent, integers: frozenset[str] = frozenset()) -> ExperimentEvent:
        t = timestamp(ev.time) if ev.HasField("time") else None
        kind = ev.WhichOneof("kind")
        if kind == "experiment_state_changed":
            c = ev.experiment_state_changed
            return cls(ev.sequence, t, state=ExperimentState(c.state), message=c.message)
        if kind == "trial_state_changed":
            tc = ev.trial_state_changed
            return cls(ev.sequence, t, trial=Trial.from_proto(tc.trial, integers), best=tc.best)
        if kind == "shared_run_state_changed":
            s = ev.shared_run_state_changed
            return cls(ev.sequence, t, shared_run_id=s.run_id, shared_run_state=RunState(s.state), message=s.message)
        return cls(ev.sequence, t)

    def describe(self) -> str:
        if self.state is not None:
            return f"experiment {self.state.name}" + (f": {self.message}" if self.message else "")
        if self.trial is not None:
            t = self.trial
            params = " ".join(f"{k}={_fmt(v)}" for k, v in sorted(t.params.items()))
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


class ExperimentFailed(TauroExecError):
    """An experiment ended FAILED or CANCELLED."""

    def __init__(self, experiment: Experiment) -> None:
        self.experiment = experiment
        super().__init__(f"experiment {experiment.id} ended {experiment.state.name}: {experiment.message}")


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
        self._integers = frozenset(d.name for d in x.space if _whole(d))
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
        return trials_html(self.trials, self.trials.best, caption)

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
        show = _progress(self, progress)
        try:
            for ev in follow(self, self._rpc, self._last, deadline, DEFAULT_RECONNECT_TIMEOUT):
                if show is not None:
                    show(ev)
        finally:
            if show is not None:
                show(None)
        if self._state is not ExperimentState.SUCCEEDED:
            raise ExperimentFailed(self)
        return self

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


def _progress(x: Experiment, enabled: bool | None) -> Any:
    """A callable shown each event (and None at the end), or None for no progress."""
    shell = None
    ipython = sys.modules.get("IPython")
    if ipython is not None:
        shell = getattr(ipython, "get_ipython", lambda: None)()
    if enabled is None:
        enabled = shell is not None
    if not enabled:
        return None
    if getattr(shell, "kernel", None) is not None:
        shown = importlib.import_module("IPython.display")
        handle = shown.display(shown.HTML(x._repr_html_()), display_id=True)

        def update(ev: ExperimentEvent | None) -> None:
            if handle is not None:
                handle.update(shown.HTML(x._repr_html_()))

        return update

    def line(ev: ExperimentEvent | None) -> None:
        if ev is None:
            return
        if ev.trial is not None and ev.trial.state is TrialState.RUNNING and not ev.trial.run_id:
            return  # recorded before its run starts; the next event has the run
        print(f"[{x.id}] {ev.describe()}", file=sys.stderr)

    return line
