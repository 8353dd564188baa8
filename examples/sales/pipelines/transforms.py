"""Python nodes of the sales example.

A node function takes its inputs as DataFrames, in the order of the node's
`input` (here: the result of its one dependency), and the run's dates as
keywords. It may ask for `ml_context` to read hyperparameters and report
metrics.
"""

from __future__ import annotations

from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F


def enrich(orders: DataFrame, *, start_date: str, end_date: str, ml_context: dict[str, Any] | None = None) -> DataFrame:
    threshold = 500.0
    if ml_context is not None:
        threshold = float(ml_context["hyperparams"].get("high_value_threshold", threshold))
    enriched = orders.withColumn(
        "segment",
        F.when(F.col("amount") >= threshold, F.lit("high_value")).otherwise(F.lit("regular")),
    )
    if ml_context is not None:
        ml_context["log_metric"]("high_value_threshold", threshold)
    return enriched
