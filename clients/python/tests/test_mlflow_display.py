"""What the client shows of MLflow: the runs of runs, attempts, experiments and
trials, run messages and a metric's step. No server: messages built here."""

from __future__ import annotations

from typing import Any

from tauro_exec import Experiment, MlflowRun, NodeMetric, Run, RunMessage, Trial
from tauro_exec._display import run_html, trials_html
from tauro_exec._proto.tauro.exec.v1 import exec_pb2 as pb
from tauro_exec.events import describe_event, event_from_proto

URL = "http://mlflow.example:5000/#/experiments/3/runs/"


def _run(tracked: bool) -> Run:
    r = pb.Run(run_id="r1", pipeline="train", state=pb.RUN_STATE_SUCCEEDED)
    node = r.nodes.add(name="fit", state=pb.NODE_STATE_SUCCEEDED, attempt=2)
    first = node.attempts.add(attempt=1, state=pb.NODE_STATE_FAILED)
    second = node.attempts.add(attempt=2, state=pb.NODE_STATE_SUCCEEDED)
    r.nodes.add(name="prep", state=pb.NODE_STATE_SUCCEEDED, attempt=1).attempts.add(attempt=1)
    if tracked:
        r.mlflow.CopyFrom(pb.MlflowRun(experiment_id="3", run_id="parent", url=URL + "parent"))
        first.mlflow.CopyFrom(pb.MlflowRun(experiment_id="3", run_id="child1", url=URL + "child1"))
        second.mlflow.CopyFrom(pb.MlflowRun(experiment_id="3", run_id="child2"))  # no URL known
    transport: Any = None  # never called: the snapshot only
    return Run(transport, r)


def test_a_tracked_run_shows_its_mlflow_run_and_each_attempts() -> None:
    run = _run(tracked=True)
    assert run.mlflow == MlflowRun("3", "parent", URL + "parent")
    fit = run.node("fit")
    assert [a.mlflow for a in fit.attempts] == [MlflowRun("3", "child1", URL + "child1"), MlflowRun("3", "child2", "")]
    assert run.node("prep").attempts[0].mlflow is None  # not an ML node
    assert repr(run) == f"<Run r1 pipeline=train state=SUCCEEDED mlflow={URL}parent>"

    html = run_html(run)
    assert f'<a href="{URL}parent" target="_blank" title="MLflow run parent">MLflow run</a>' in html
    # The node's latest attempt's run, which has no URL: its id.
    assert "<code>fit</code> <span title=\"MLflow run\">mlflow <code>child2</code></span>" in html
    assert "<code>prep</code></td>" in html


def test_an_untracked_run_shows_no_mlflow() -> None:
    run = _run(tracked=False)
    assert run.mlflow is None and all(a.mlflow is None for a in run.node("fit").attempts)
    assert "mlflow" not in run_html(run).lower() and "mlflow" not in repr(run)


def test_run_messages_and_metric_steps_are_typed_and_described() -> None:
    ev = pb.RunEvent(run_id="r1", sequence=4, project="p")
    ev.run_message.level, ev.run_message.text = "warning", "MLflow at http://m:5000 does not answer; metrics are kept to send later"
    got = event_from_proto(ev)
    assert got == RunMessage("r1", 4, None, project="p", level="warning", text=ev.run_message.text)
    assert describe_event(got).endswith("run warning: MLflow at http://m:5000 does not answer; metrics are kept to send later")

    metric = pb.RunEvent(run_id="r1", sequence=5, node_metric=pb.NodeMetric(node="fit", attempt=1, name="loss", value=0.5, step=3))
    m = event_from_proto(metric)
    assert isinstance(m, NodeMetric) and (m.name, m.value, m.step) == ("loss", 0.5, 3)
    assert describe_event(m).endswith("metric loss = 0.5 (step 3)")
    metric.node_metric.step = 0
    assert describe_event(event_from_proto(metric)).endswith("metric loss = 0.5")


def test_an_experiment_and_its_trials_show_their_mlflow_runs() -> None:
    x = pb.Experiment(experiment_id="x1", pipeline="train", state=pb.EXPERIMENT_STATE_SUCCEEDED, n_trials=2)
    x.mlflow.CopyFrom(pb.MlflowRun(experiment_id="3", run_id="xparent", url=URL + "xparent"))
    t0 = x.trials.add(number=0, state=pb.TRIAL_STATE_SUCCEEDED, run_id="run-a", value=0.2)
    t0.mlflow.CopyFrom(pb.MlflowRun(experiment_id="3", run_id="trial0", url=URL + "trial0"))
    x.trials.add(number=1, state=pb.TRIAL_STATE_FAILED, run_id="run-b")
    transport: Any = None
    exp = Experiment(transport, x)
    assert exp.mlflow == MlflowRun("3", "xparent", URL + "xparent")
    trials = exp.trials
    assert trials[0].mlflow == MlflowRun("3", "trial0", URL + "trial0") and trials[1].mlflow is None
    assert f"MLflow {URL}xparent" in exp._repr_html_()
    html = trials_html(trials, None)
    assert f'<code>run-a</code> <a href="{URL}trial0"' in html and "<code>run-b</code></td>" in html
    assert list(trials.to_pandas()["mlflow_run_id"]) == ["trial0", None]
    assert Trial.from_proto(pb.Trial(number=3)).mlflow is None
