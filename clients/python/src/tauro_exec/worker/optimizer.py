"""The optimiser behind experiments: Optuna's TPE sampler driven by ask/tell.

It is stateless on purpose. Each proposal builds a fresh in-memory study, tells
it every trial the experiment has (finished ones with their value or failure,
running ones as running, so parallel proposals spread out), and asks for one
more. execd keeps the trials; the optimiser's state is only ever their replay,
so a restarted execd resumes an experiment by telling the same trials again.

The seed of each proposal is derived from the experiment's seed and the
trial's number, so an experiment is repeatable and two proposals of one
experiment never share a random stream.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Kind = Literal["real", "integer", "categorical"]
TrialState = Literal["complete", "failed", "running"]
Direction = Literal["minimize", "maximize"]
SamplerName = Literal["tpe", "random"]


class SpaceError(ValueError):
    """A search space the optimiser cannot search."""


@dataclass(frozen=True)
class Dimension:
    """One searched hyperparameter."""

    name: str
    kind: Kind
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    categories: tuple[Any, ...] = ()


@dataclass(frozen=True)
class Observation:
    """A trial as the optimiser is told it."""

    params: Mapping[str, Any]
    state: TrialState
    value: float | None = None


@dataclass(frozen=True)
class Proposal:
    params: dict[str, Any] = field(default_factory=dict)


def startup_trials(n_trials: int) -> int:
    """How many random trials TPE takes before it models the space.

    Optuna's default is 10, which is most of a small budget; a fifth of the
    budget, between 3 and 10, leaves room for the model to work.
    """
    return max(3, min(10, n_trials // 5))


def trial_seed(seed: int, number: int) -> int:
    """A 32-bit seed for one proposal, from the experiment's seed and the trial number."""
    import numpy as np

    return int(np.random.SeedSequence([seed & 0xFFFFFFFFFFFFFFFF, number]).generate_state(1)[0])


def suggest(
    space: Sequence[Dimension],
    *,
    trials: Sequence[Observation],
    number: int,
    seed: int,
    n_trials: int,
    direction: Direction = "minimize",
    sampler: SamplerName = "tpe",
) -> dict[str, Any]:
    """The parameters of trial `number`, given every trial so far."""
    import optuna
    from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if not space:
        raise SpaceError("the search space is empty; give at least one dimension")
    dists: dict[str, BaseDistribution] = {}
    for d in space:
        if d.name in dists:
            raise SpaceError(f"dimension {d.name!r} is given twice")
        if d.kind == "real":
            dists[d.name] = FloatDistribution(d.low, d.high, log=d.log)
        elif d.kind == "integer":
            dists[d.name] = IntDistribution(int(d.low), int(d.high), log=d.log)
        elif d.kind == "categorical":
            if not d.categories:
                raise SpaceError(f"dimension {d.name!r} has no categories")
            dists[d.name] = CategoricalDistribution(list(d.categories))
        else:
            raise SpaceError(f"dimension {d.name!r} has unknown kind {d.kind!r}")

    s = trial_seed(seed, number)
    chosen: optuna.samplers.BaseSampler
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if sampler == "random":
            chosen = optuna.samplers.RandomSampler(seed=s)
        else:
            chosen = optuna.samplers.TPESampler(
                seed=s, n_startup_trials=startup_trials(n_trials), multivariate=True, constant_liar=True
            )
    with warnings.catch_warnings():  # multivariate TPE is marked experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return _propose(optuna, chosen, dists, trials, direction)


def _propose(optuna: Any, chosen: Any, dists: dict[str, Any], trials: Sequence[Observation], direction: str) -> dict[str, Any]:
    from optuna.trial import TrialState as OptunaState

    study = optuna.create_study(direction=direction, sampler=chosen)
    states = {"complete": OptunaState.COMPLETE, "failed": OptunaState.FAIL, "running": OptunaState.RUNNING}
    for t in trials:
        params = {k: _coerce(dists[k], v) for k, v in t.params.items() if k in dists}
        if len(params) != len(dists):
            continue  # a trial of another space tells nothing about this one
        value = t.value if t.state == "complete" else None
        if t.state == "complete" and (value is None or not math.isfinite(value)):
            continue
        study.add_trial(
            optuna.trial.create_trial(params=params, distributions=dists, value=value, state=states[t.state])
        )
    trial = study.ask(dists)
    return {name: _plain(trial.params[name]) for name in dists}


def _coerce(dist: Any, value: Any) -> Any:
    from optuna.distributions import IntDistribution

    if isinstance(dist, IntDistribution):
        return int(value)
    return value


def _plain(value: Any) -> Any:
    """numpy scalars as Python values, for JSON."""
    item = getattr(value, "item", None)
    return item() if callable(item) else value
