"""What a node function sees of execd: the ``ml_context`` it may accept and ``Retryable``.

A node function is called as ``fn(*dfs, start_date=..., end_date=...)``, with
``ml_context=...`` added when it has such a parameter (or ``**kwargs``)::

    from tauro_exec import MLContext, Retryable

    def train(features, *, start_date, end_date, ml_context: MLContext):
        lr = ml_context["hyperparams"]["learning_rate"]
        ...
        ml_context["log_metric"]("rmse", 0.42)
        return predictions

This module imports nothing heavy, so the client alone does not need pyspark.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypedDict

if TYPE_CHECKING:
    from pyspark.sql.connect.session import SparkSession


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


class MLContext(TypedDict):
    """The ``ml_context`` argument of a node function."""

    model_version: str
    # Global default_hyperparams < pipeline hyperparams < the request's < the node's.
    hyperparams: dict[str, Any]
    node_config: dict[str, Any]
    pipeline_config: dict[str, Any]
    execution_metadata: ExecutionMetadata
    spark: SparkSession
    # log_metric(name, value) stores value on the node attempt and streams it.
    log_metric: Callable[[str, float], None]


__all__ = ["ExecutionMetadata", "MLContext", "Retryable"]
