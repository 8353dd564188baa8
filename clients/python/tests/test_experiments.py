"""Experiments through the Python client, against a real execd with Python workers.

The project is cmd/execd/testdata/expproj: a SQL node `points` that no
hyperparameter reaches, and a Python node `score` whose loss
(x - 1.5)^2 + (y + 2)^2 is smallest (0) at x=1.5, y=-2.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import REPO, Daemon

from tauro_exec import Client, Experiment, ExperimentState, Integer, Real, TrialState, ValidationError

EXPPROJ = REPO / "cmd" / "execd" / "testdata" / "expproj"


@pytest.fixture(scope="module")
def expdaemon(tmp_path_factory: pytest.TempPathFactory, binary: Path, spark_remote: str) -> Iterator[Daemon]:
    root = tmp_path_factory.mktemp("expproj")
    shutil.copytree(EXPPROJ, root / "expproj")
    d = Daemon(binary, root / "expproj", root / "state", spark_remote, root / "execd.log", ("--workers", "2"))
    # The workers import this checkout's tauro_exec, whatever the venv's points at.
    d.start(env={"PYTHONPATH": str(REPO / "clients" / "python" / "src")})
    yield d
    d.stop()


@pytest.fixture
def expclient(expdaemon: Daemon) -> Iterator[Client]:
    with Client(expdaemon.address, timeout=60) as c:
        yield c


def test_an_experiment_streams_its_trials_and_keeps_the_best(expclient: Client) -> None:
    exp = expclient.experiment(
        "toy",
        space={"x": Real(-5, 5), "y": (-5.0, 5.0)},
        objective="loss",
        n_trials=8,
        max_parallel_trials=2,
        seed=3,
    )
    assert isinstance(exp, Experiment)
    assert exp.shared_nodes == ["points"] and exp.trial_nodes == ["score"]
    events = list(exp.watch())
    assert events[-1].state is ExperimentState.SUCCEEDED
    ended = [e.trial for e in events if e.trial is not None and e.trial.state is TrialState.SUCCEEDED]
    assert sorted(t.number for t in ended) == list(range(8))
    bests = [e.trial.value for e in events if e.best and e.trial is not None and e.trial.value is not None]
    assert bests == sorted(bests, reverse=True), "each best so far improves on the last"

    exp.refresh()
    assert exp.state is ExperimentState.SUCCEEDED
    best = exp.best
    assert best is not None and best.value == min(t.value for t in exp.trials if t.value is not None)
    x, y = best.params["x"], best.params["y"]
    assert best.value == pytest.approx((x - 1.5) ** 2 + (y + 2) ** 2)
    table = exp.trials._repr_html_()
    assert "<table>" in table and "&#9733;" in table  # the best is starred
    df = exp.trials.to_pandas()
    assert list(df["number"]) == list(range(8)) and set(df.columns) >= {"x", "y", "value", "run_id"}
    assert expclient.experiment_by_id(exp.id).best == best
    assert any(x.id == exp.id for x in expclient.experiments(pipeline="toy"))


def test_a_bad_space_is_refused_naming_each_field(expclient: Client) -> None:
    with pytest.raises(ValidationError) as info:
        expclient.experiment(
            "toy",
            space=[Real(1e-3, 0, prior="log-uniform", name="x"), Integer(1, 5, name="x")],
            objective="accuracy",
            n_trials=3,
        )
    fields = {v.field for v in info.value.violations}
    assert {"space[0].low", "space[1].name", "objective.metric"} <= fields, fields
    with pytest.raises(ValueError, match="prior must be"):
        expclient.experiment("toy", space=[Real(0, 1, prior="normal", name="x")], objective="loss")


def test_integer_and_categorical_dimensions_reach_the_trials_as_written(expclient: Client) -> None:
    from tauro_exec import Categorical

    exp = expclient.experiment(
        "toy",
        space=[Integer(-5, 5, name="x"), Categorical([-2.0, 0.5], name="y"), Categorical([32, 64], name="batch")],
        objective="loss",
        n_trials=3,
        max_parallel_trials=3,
        seed=1,
    ).wait(timeout=120)
    for t in exp.trials:
        assert isinstance(t.params["x"], int) and -5 <= t.params["x"] <= 5
        assert t.params["y"] in (-2.0, 0.5) and isinstance(t.params["y"], float)
        assert t.params["batch"] in (32, 64) and isinstance(t.params["batch"], int), t.params
        assert t.value == pytest.approx((t.params["x"] - 1.5) ** 2 + (t.params["y"] + 2) ** 2)
