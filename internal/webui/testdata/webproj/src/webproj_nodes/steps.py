"""Nodes of the browser test's project."""

import time

# How long enrich_orders takes: long enough for the page to show it running.
SLOW_SECONDS = 10


def slow_enrich(*, start_date, end_date, ml_context):
    spark = ml_context["spark"]
    for step in range(SLOW_SECONDS):
        time.sleep(1)
        ml_context["log_metric"]("seconds_done", step + 1)
    return spark.sql("SELECT id AS order_id, 'enriched' AS tag FROM range(200)")


def explode(*, start_date, end_date):
    return _check_ledger({"balance": -3})


def _check_ledger(ledger):
    raise ValueError(f"ledger balance is negative: {ledger['balance']}")
