"""Node functions the pool tests run on real workers."""

import logging

from tauro_exec import Retryable

log = logging.getLogger(__name__)


def numbers(*, start_date, end_date, ml_context):
    ml_context["log_metric"]("made", 5)
    log.warning("numbers for %s..%s", start_date, end_date)
    return ml_context["spark"].range(1, 6)


def double(df, *, start_date, end_date):
    return df.selectExpr("id * 2 AS doubled")


def fails(*, start_date, end_date):
    raise ValueError("boom from fails")


def flaky(*, start_date, end_date):
    raise Retryable("try again")


def sleepy(*, start_date, end_date, ml_context):
    # A Spark job that sleeps, so the node is busy on Spark when cancelled or killed.
    log.info("sleeping")
    ml_context["spark"].sql("SELECT reflect('java.lang.Thread', 'sleep', CAST(60000 AS BIGINT))").collect()
    return ml_context["spark"].range(1)


def no_dates(df):
    return df


def not_a_frame(*, start_date, end_date):
    return 42
