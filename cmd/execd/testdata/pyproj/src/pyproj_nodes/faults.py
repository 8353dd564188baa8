"""Nodes that fail on purpose."""

import os
import time

from tauro_exec import Retryable


def explode(*, start_date, end_date):
    return _deeper()


def _deeper():
    raise ValueError("boom from python")


def flaky(*, start_date, end_date, ml_context):
    attempt = ml_context["execution_metadata"]["attempt"]
    if attempt < 3:
        raise Retryable(f"not yet (attempt {attempt})")
    return ml_context["spark"].createDataFrame([{"attempt": attempt}])


def survivor(*, start_date, end_date, ml_context):
    attempt = ml_context["execution_metadata"]["attempt"]
    spark = ml_context["spark"]
    if attempt == 1:
        # The test kills this process once it sees the pid.
        ml_context["log_metric"]("pid", os.getpid())
        spark.sql("SELECT reflect('java.lang.Thread', 'sleep', CAST(60000 AS BIGINT))").collect()
        time.sleep(60)
    return spark.createDataFrame([{"attempt": attempt, "pid": os.getpid()}])


def no_dates(people):
    return people


def slow_first(*, start_date, end_date, ml_context):
    """The first attempt waits in Python, where execd being killed ends it."""
    attempt = ml_context["execution_metadata"]["attempt"]
    if attempt == 1:
        ml_context["log_metric"]("pid", os.getpid())
        time.sleep(120)
    return ml_context["spark"].createDataFrame([{"attempt": attempt}])
