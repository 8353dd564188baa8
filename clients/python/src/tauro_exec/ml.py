"""What a node function sees of execd: the ``ml_context`` it may accept and ``Retryable``.

A node function is called as ``fn(*dfs, start_date=..., end_date=...)``, with
``ml_context=...`` added when it has such a parameter (or ``**kwargs``)::

    from tauro_exec import MLContext, Retryable

    def train(features, *, start_date, end_date, ml_context: MLContext):
        lr = ml_context["hyperparams"]["learning_rate"]
        ...
        ml_context["log_metric"]("rmse", 0.42)            # or ("loss", 0.3, step=epoch)
        ml_context["tracker"].log_params({"lr": lr})       # the attempt's MLflow run
        uri = ml_context["tracker"].log_model(model, "model")
        ml_context["registry"].register_model("churn", alias="candidate")
        return predictions

With the pipeline's mlops block on, each ML node attempt has its own MLflow
run (a child of the execd run's); ``ml_context["mlflow"]`` names it. A node
written for tauro's mlops layer finds ``mlops_run_id`` and
``mlops_integration`` there too (tauro_exec.worker.tauro_mlops).

This module imports nothing heavy, so the client alone does not need pyspark.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, TypedDict

if TYPE_CHECKING:
    from pyspark.sql.connect.session import SparkSession

    from tauro_exec.worker.tauro_mlops import MLOpsIntegration
    from tauro_exec.worker.tracking import Registry, Tracker


class Retryable(Exception):
    """Raise it (or a subclass) from a node function for a failure worth retrying.

    Any other exception fails the node at once; this one is retried with the
    node's backoff while attempts remain (``max_retries``).
    """


class ExecutionMetadata(TypedDict):
    """Where the call happens: the node, its run and the attempt (from 1)."""

    node: str
    pipeline: str
    run_id: str
    attempt: int
    start_time: str


class LogMetric(Protocol):
    """ml_context["log_metric"]: stores value on the node attempt and streams it;
    execd also sends it to the attempt's MLflow run, at step (0 when not given)."""

    def __call__(self, name: str, value: float, step: int = 0) -> None: ...


class MlflowInfo(TypedDict):
    """The node attempt's own MLflow run. run_id is None when the tracking
    server did not answer before the call (metrics still reach it later)."""

    tracking_uri: str
    experiment_id: str
    run_id: str | None
    parent_run_id: str | None
    required: bool
    url: str | None


class MLContext(TypedDict):
    """The ``ml_context`` argument of a node function."""

    model_version: str
    # Global default_hyperparams < pipeline hyperparams < the request's < the node's.
    hyperparams: dict[str, Any]
    node_config: dict[str, Any]
    pipeline_config: dict[str, Any]
    execution_metadata: ExecutionMetadata
    spark: SparkSession
    log_metric: LogMetric
    # Logs to the attempt's MLflow run (metrics through execd), and registers
    # its models; without a run, calls that need the server warn, or raise
    # when the mlops block is required.
    tracker: Tracker
    registry: Registry
    # None when the node has no MLflow run (mlops off, or not an ML node).
    mlflow: MlflowInfo | None
    # tauro's names: its mlops layer's run id (the attempt's MLflow run) and
    # integration object, for node functions written for tauro.
    mlops_run_id: str | None
    mlops_integration: MLOpsIntegration


__all__ = ["ExecutionMetadata", "LogMetric", "MLContext", "MlflowInfo", "Retryable"]
