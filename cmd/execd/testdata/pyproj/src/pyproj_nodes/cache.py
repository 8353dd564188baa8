"""Nodes that report whether execd keeps the shared node's result cached in Spark."""

import re


def _shared_view(ml_context):
    # execd's name for a node's result: global_temp.tauro_<run>_<node>.
    run_id = re.sub(r"[^A-Za-z0-9_]+", "_", ml_context["execution_metadata"]["run_id"])
    return f"global_temp.tauro_{run_id}_shared"


def _report(ml_context, rows):
    spark = ml_context["spark"]
    cached = spark.catalog.isCached(_shared_view(ml_context))
    return spark.createDataFrame([{"node": ml_context["execution_metadata"]["node"], "cached": cached, "rows": rows}])


def seen_while_reading(shared, *, start_date, end_date, ml_context):
    return _report(ml_context, shared.count())


def seen_after_reading(*, start_date, end_date, ml_context):
    return _report(ml_context, -1)
