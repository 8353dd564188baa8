"""A node attempt's tracker and registry, through the worker's RunNode, against
the real MLflow tracking server ($TAURO_MLFLOW_URI) and the real Spark Connect
server ($TAURO_SPARK_REMOTE).

execd creates each attempt's MLflow child run; here the test creates it
(a parent and a child run, as execd does) and names it in the request's
context.mlflow. The nodes are in NODES, written to a project folder.
"""

from __future__ import annotations

import json
import tempfile
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tauro_exec._proto.tauro.exec.v1 import worker_pb2 as pb
from tauro_exec.worker import NodeWorker
from tauro_exec.worker.control import Control

mlflow = pytest.importorskip("mlflow")

NODES = '''
import json
import os
import pickle
import tempfile

from pyspark.ml import Pipeline
from pyspark.ml.classification import LogisticRegression
from pyspark.ml.feature import VectorAssembler
from sklearn.linear_model import LinearRegression


def _report(spark, report):
    return spark.createDataFrame([(json.dumps(report),)], ["report"])


def train(*, start_date, end_date, ml_context):
    """Everything a node logs, in execd's ml_context API."""
    spark, tracker, registry = ml_context["spark"], ml_context["tracker"], ml_context["registry"]
    name = ml_context["hyperparams"]["model_name"]
    tracker.log_params({"alpha": 0.5, "layers": 2})
    tracker.set_tags({"team": "ml"})
    for step in range(3):
        tracker.log_metric("loss", 1.0 / (step + 1), step=step)
    ml_context["log_metric"]("rmse", 0.25)  # the signature nodes already use
    folder = tempfile.mkdtemp()
    with open(os.path.join(folder, "notes.txt"), "w") as f:
        f.write("trained on four rows")
    notes = tracker.log_artifact(os.path.join(folder, "notes.txt"), "reports")

    sk = LinearRegression().fit([[0.0], [1.0], [2.0]], [1.0, 3.0, 5.0])
    sk_uri = tracker.log_model(sk, "sk_model")
    sk_version = registry.register_model(name + "-sk", tags={"kind": "linear"}, alias="candidate")

    rows = spark.createDataFrame([(0.0, 1.0, 0.0), (1.0, 0.0, 1.0), (0.1, 0.9, 0.0), (0.9, 0.1, 1.0)], ["a", "b", "label"])
    pipeline = Pipeline(stages=[VectorAssembler(inputCols=["a", "b"], outputCol="features"), LogisticRegression(maxIter=5)])
    spark_uri = tracker.log_model(pipeline.fit(rows), "spark_model")
    spark_version = registry.register_model(name + "-spark", spark_uri, tags={"kind": "logistic"})
    registry.set_alias(name + "-spark", "champion", spark_version)
    loaded = registry.load_model(f"models:/{name}-sk@candidate")
    return _report(spark, {
        "loaded_predicts": float(loaded.predict([[3.0]])[0]),
        "mlflow": ml_context["mlflow"], "notes": notes, "sk_uri": sk_uri, "sk_version": sk_version,
        "spark_uri": spark_uri, "spark_version": spark_version,
    })


def without_run(*, start_date, end_date, ml_context):
    """What needs the server when the attempt has no MLflow run."""
    tracker, registry = ml_context["tracker"], ml_context["registry"]
    tracker.log_metric("loss", 0.5, step=7)  # through execd: always
    got = {
        "param": tracker.log_param("alpha", 1),
        "model": tracker.log_model(LinearRegression().fit([[0.0], [1.0]], [0.0, 1.0]), "m"),
        "version": registry.register_model("never"),
        "mlflow": ml_context["mlflow"],
        "mlops_run_id": ml_context["mlops_run_id"],
    }
    return _report(ml_context["spark"], got)


def tauro_style(*, start_date, end_date, ml_context=None):
    """A node as tauro's mlops layer has it call: its run id, its
    integration object, the tracker and registry behind it."""
    mlops_integration = ml_context.get("mlops_integration")
    mlops_run_id = ml_context.get("mlops_run_id")
    if not mlops_integration or not mlops_run_id:
        raise RuntimeError("no tauro mlops integration in ml_context")
    tracker = mlops_integration.mlops_context.experiment_tracker
    registry = mlops_integration.mlops_context.model_registry
    name = ml_context["hyperparams"]["model_name"]

    tracker.log_parameter(mlops_run_id, "fit_intercept", True)
    tracker.log_param(mlops_run_id, "solver", "lsqr")
    tracker.set_tag(mlops_run_id, "framework", "sklearn")
    for epoch in range(2):
        tracker.log_metric(mlops_run_id, "train_loss", 0.5 - epoch * 0.1, step=epoch)
    model = LinearRegression().fit([[0.0], [1.0]], [0.0, 2.0])
    path = os.path.join(tempfile.mkdtemp(), "model.pkl")
    with open(path, "wb") as f:
        pickle.dump(model, f)
    tracker.log_artifact(mlops_run_id, path)

    # The steps of tauro's register_trained_model_from_result helper.
    logged = mlops_integration.log_artifact(run_id=mlops_run_id, artifact_path=path, artifact_type="model")
    mlops_integration.register_model_from_run(
        run_id=mlops_run_id, model_name=name, artifact_path=logged, artifact_type="sklearn",
        framework="sklearn", description="tauro node", hyperparams={"fit_intercept": True},
        metrics={"r2": 1.0}, tags={"stage": "Staging"},
    )
    # The registry straight, as tauro's README has it.
    version = registry.register_model(
        name=name, artifact_path=path, framework="sklearn", metrics={"r2": 1.0},
        hyperparameters={"fit_intercept": True}, tags={"team": "ml"},
    )
    registry.promote_model(name, version.version, "Production")
    return _report(ml_context["spark"], {"logged": logged, "version": version.version, "run": version.experiment_run_id})
'''


# The worker, its nodes' package and its Spark Connect server.
Worker = tuple[NodeWorker, str, str]


class _Context:
    """The bit of a gRPC servicer context RunNode uses."""

    def add_callback(self, callback: Any) -> bool:
        return True


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory, spark_remote: str) -> Iterator[Worker]:
    root = tmp_path_factory.mktemp("mlproj")
    package = "mlnodes_" + uuid.uuid4().hex[:8]
    (root / package).mkdir()
    (root / package / "__init__.py").write_text("")
    (root / package / "nodes.py").write_text(textwrap.dedent(NODES))
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(root))
        # As the worker's main sets it: pyspark.ml then trains through Connect.
        mp.setenv("SPARK_CONNECT_MODE_ENABLED", "1")
        w = NodeWorker([root], [package], spark_remote, Control(None))
        yield w, package, spark_remote
        w.close()


@pytest.fixture(scope="module")
def client(mlflow_uri: str) -> Any:
    return mlflow.MlflowClient(tracking_uri=mlflow_uri, registry_uri=mlflow_uri)


def _runs(client: Any) -> tuple[str, str, str]:
    """An experiment, the execd run's parent run and the attempt's child run."""
    experiment = client.create_experiment(f"worker-test-{uuid.uuid4().hex[:12]}")
    parent = client.create_run(experiment, run_name="execd run").info.run_id
    child = client.create_run(experiment, run_name="train #1", tags={"mlflow.parentRunId": parent}).info.run_id
    return experiment, parent, child


def _spark(remote: str) -> Any:
    """A Spark session active in the test's thread, as the node's is in its own."""
    from pyspark.sql.connect.session import SparkSession

    from tauro_exec.worker.session import make_active

    spark = SparkSession.builder.remote(remote).getOrCreate()
    make_active(spark)
    return spark


def _run_node(
    worker: Worker, function: str, mlflow_context: pb.MlflowContext | None, hyperparams: dict[str, Any]
) -> tuple[list[pb.RunNodeResponse], dict[str, Any] | pb.WorkerError]:
    """Calls one node as execd does; its events and its report (or its error)."""
    w, package, remote = worker
    call = uuid.uuid4().hex[:8]
    context = pb.NodeContext(pipeline="ml", run_id="run-" + call, attempt=1, hyperparams_json=json.dumps(hyperparams))
    if mlflow_context is not None:
        context.mlflow.CopyFrom(mlflow_context)
    request = pb.RunNodeRequest(
        node=function, module=f"{package}.nodes", function=function, result_view=f"r_{call}", context=context, call_id=call
    )
    events = list(w.RunNode(request, _Context()))  # type: ignore[arg-type]
    last = events[-1]
    if last.HasField("error"):
        return events, last.error
    (row,) = _spark(remote).table(last.result.view).collect()
    report: dict[str, Any] = json.loads(row["report"])
    return events, report


def _metrics(events: list[pb.RunNodeResponse]) -> list[tuple[str, float, int]]:
    return [(e.metric.name, e.metric.value, e.metric.step) for e in events if e.HasField("metric")]


def _download(uri: str, mlflow_uri: str) -> str:
    """uri's artifacts, locally; models:/ by the version's source (mlflow
    resolves models:/ on the global registry URI, which the test leaves)."""
    if uri.startswith("models:/"):
        client = mlflow.MlflowClient(tracking_uri=mlflow_uri, registry_uri=mlflow_uri)
        ref = uri[len("models:/") :]
        if "@" in ref:
            name, alias = ref.split("@")
            uri = client.get_model_version_by_alias(name, alias).source
        else:
            name, version = ref.split("/")
            uri = client.get_model_version(name, version).source
    return str(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=tempfile.mkdtemp(), tracking_uri=mlflow_uri))


def test_a_node_logs_params_metrics_artifacts_and_models_to_its_own_run_and_registers_them(
    worker: Worker, client: Any, mlflow_uri: str, spark_remote: str
) -> None:
    experiment, parent, child = _runs(client)
    name = f"wt-{uuid.uuid4().hex[:8]}"
    started = time.monotonic()
    events, report = _run_node(
        worker, "train", pb.MlflowContext(tracking_uri=mlflow_uri, experiment_id=experiment, run_id=child, parent_run_id=parent), {"model_name": name}
    )
    assert isinstance(report, dict), report
    assert time.monotonic() - started < 120

    # Metrics go through execd, with their steps; none went to MLflow straight.
    assert _metrics(events) == [("loss", 1.0, 0), ("loss", 0.5, 1), ("loss", 1 / 3, 2), ("rmse", 0.25, 0)]
    run = client.get_run(child)
    assert run.data.metrics == {}
    assert run.data.params == {"alpha": "0.5", "layers": "2"}
    assert run.data.tags["team"] == "ml"
    assert report["mlflow"] == {
        "tracking_uri": mlflow_uri, "experiment_id": experiment, "run_id": child, "parent_run_id": parent,
        "required": False, "url": f"{mlflow_uri}/#/experiments/{experiment}/runs/{child}",
    }
    assert report["notes"] == f"runs:/{child}/reports/notes.txt"
    assert Path(_download(report["notes"], mlflow_uri)).read_text() == "trained on four rows"
    assert {a.path for a in client.list_artifacts(child)} == {"reports", "sk_model", "spark_model"}

    # scikit-learn: registered from the node's own run, with its tag and alias, and it predicts.
    assert report["sk_uri"] == f"runs:/{child}/sk_model" and report["sk_version"] == 1
    sk = client.get_model_version_by_alias(name + "-sk", "candidate")
    assert (sk.version, sk.run_id, sk.tags) == ("1", child, {"kind": "linear"})
    model = mlflow.sklearn.load_model(_download(f"models:/{name}-sk@candidate", mlflow_uri))
    assert model.predict([[3.0]])[0] == pytest.approx(7.0)
    assert report["loaded_predicts"] == pytest.approx(7.0)  # the node's registry.load_model

    # Spark ML over Spark Connect: registered, loaded back and transforming.
    spark_version = client.get_model_version_by_alias(name + "-spark", "champion")
    assert (spark_version.version, spark_version.run_id, spark_version.tags) == ("1", child, {"kind": "logistic"})
    from pyspark.ml import PipelineModel

    spark = _spark(spark_remote)
    local = _download(f"models:/{name}-spark/1", mlflow_uri)
    rows = spark.createDataFrame([(0.0, 1.0), (1.0, 0.0)], ["a", "b"])
    predicted = PipelineModel.load(str(Path(local) / "sparkml")).transform(rows).select("prediction").collect()
    assert [r["prediction"] for r in predicted] == [0.0, 1.0]
    pyfunc = mlflow.pyfunc.load_model(local)  # the pyfunc flavour works over Connect too
    assert list(pyfunc.predict(rows.toPandas())["prediction"]) == [0.0, 1.0]


def test_without_an_mlflow_run_calls_that_need_the_server_warn_or_fail_when_required(
    worker: Worker, mlflow_uri: str
) -> None:
    no_run = pb.MlflowContext(tracking_uri=mlflow_uri, experiment_id="1", run_id="", parent_run_id="")
    events, report = _run_node(worker, "without_run", no_run, {})
    assert isinstance(report, dict), report
    assert (report["param"], report["model"], report["version"], report["mlops_run_id"]) == (None, None, None, None)
    assert report["mlflow"]["run_id"] is None and report["mlflow"]["url"] is None
    assert _metrics(events) == [("loss", 0.5, 7)]
    warnings = [e.log.text for e in events if e.HasField("log") and e.log.level == "warning"]
    assert len(warnings) == 3, warnings
    assert all("did not answer before the node started" in w and "goes on without it" in w for w in warnings)

    no_run.required = True
    events, error = _run_node(worker, "without_run", no_run, {})
    assert isinstance(error, pb.WorkerError), error
    assert error.type == "TrackingUnavailable" and error.retryable
    assert error.message.startswith("param alpha was not logged: the MLflow tracking server at")
    assert "the pipeline's mlops block is required, so the node fails" in error.message
    assert _metrics(events) == [("loss", 0.5, 7)]  # what came before still went

    # No MLflow context at all (mlops off): the tracker warns likewise.
    events, report = _run_node(worker, "without_run", None, {})
    assert isinstance(report, dict) and report["mlflow"] is None
    assert any("has no MLflow run" in e.log.text for e in events if e.HasField("log"))


def test_a_node_written_for_tauros_mlops_layer_runs_unchanged(worker: Worker, client: Any, mlflow_uri: str) -> None:
    experiment, parent, child = _runs(client)
    name = f"wt-tauro-{uuid.uuid4().hex[:8]}"
    events, report = _run_node(
        worker, "tauro_style", pb.MlflowContext(tracking_uri=mlflow_uri, experiment_id=experiment, run_id=child, parent_run_id=parent), {"model_name": name}
    )
    assert isinstance(report, dict), report
    assert _metrics(events) == [("train_loss", 0.5, 0), ("train_loss", 0.4, 1)]
    run = client.get_run(child)
    assert run.data.params == {"fit_intercept": "True", "solver": "lsqr"}
    assert run.data.tags["framework"] == "sklearn"
    assert report["logged"] == f"runs:/{child}/artifacts/model/model.pkl"
    assert report["version"] == 2 and report["run"] == child
    versions = {v.version: v for v in client.search_model_versions(f"name = '{name}'")}
    assert set(versions) == {"1", "2"} and {v.run_id for v in versions.values()} == {child}
    first = versions["1"].tags
    assert (first["framework"], first["artifact_type"], first["stage"], first["metric.r2"]) == ("sklearn", "sklearn", "Staging", "1.0")
    assert client.get_model_version_by_alias(name, "production").version == "2"
    import pickle

    with open(Path(_download(f"models:/{name}/2", mlflow_uri)) / "model.pkl", "rb") as f:
        assert pickle.load(f).predict([[2.0]])[0] == pytest.approx(4.0)


def test_a_metric_needs_a_name_a_finite_value_and_an_integer_step() -> None:
    from tauro_exec.worker.tracking import metric_sink

    sent: list[tuple[str, float, int]] = []
    log_metric = metric_sink(lambda n, v, s: sent.append((n, v, s)))
    np = pytest.importorskip("numpy")
    log_metric("loss", np.float32(0.5), step=np.int64(4))
    log_metric("acc", 1)
    assert sent == [("loss", 0.5, 4), ("acc", 1.0, 0)] and all(type(s) is int for _, _, s in sent)
    bad: list[tuple[str, float, Any]] = [("", 1.0, 0), ("x", float("nan"), 0), ("x", 1.0, 1.5), ("x", 1.0, True)]
    for name, value, step in bad:
        with pytest.raises(ValueError):
            log_metric(name, value, step)


def test_log_model_of_an_unsupported_model_says_what_it_logs_even_without_a_run() -> None:
    from tauro_exec.worker.tracking import MlflowTarget, Tracker, metric_sink

    tracker = Tracker(MlflowTarget(), metric_sink(lambda n, v, s: None))
    with pytest.raises(TypeError, match="it logs scikit-learn estimators and Spark ML models"):
        tracker.log_model(object())


def test_a_wrong_call_fails_as_mlflow_says_even_when_tracking_is_not_required(client: Any, mlflow_uri: str) -> None:
    from mlflow.exceptions import MlflowException

    from tauro_exec.worker.tracking import MlflowTarget, Registry, Tracker, metric_sink

    experiment, parent, child = _runs(client)
    tracker = Tracker(MlflowTarget(mlflow_uri, experiment, child, parent), metric_sink(lambda n, v, s: None))
    tracker.log_param("alpha", 1)
    with pytest.raises(MlflowException, match="alpha"):
        tracker.log_param("alpha", 2)  # MLflow keeps a param's first value
    with pytest.raises(MlflowException, match="not found"):
        Registry(tracker).get_version(f"no-such-model-{uuid.uuid4().hex[:8]}", 1)
