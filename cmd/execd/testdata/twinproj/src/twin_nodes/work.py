"""The same module name in two projects; TAG tells them apart."""

import os
import time

TAG = "unset"  # the test writes each copy's own


def stamp(*, start_date, end_date, ml_context):
    spark = ml_context["spark"]
    return spark.createDataFrame([{"tag": TAG, "cwd": os.getcwd()}])


def hold(*, start_date, end_date, ml_context):
    """Logs its worker's pid, then waits for the test to create 'release'
    in the project folder (the workers' working directory)."""
    attempt = ml_context["execution_metadata"]["attempt"]
    ml_context["log_metric"]("pid", os.getpid())
    deadline = time.monotonic() + 120
    while attempt == 1 and not os.path.exists("release") and time.monotonic() < deadline:
        time.sleep(0.1)
    return ml_context["spark"].createDataFrame([{"tag": TAG, "attempt": attempt, "pid": os.getpid()}])
