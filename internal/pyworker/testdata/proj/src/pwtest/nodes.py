"""Node functions the pool tests run on real workers."""

import logging
import time

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


def tauro_stream(input_df, node_config):
    return input_df


def not_a_frame(*, start_date, end_date):
    return 42


def no_columns(*, start_date, end_date, ml_context):
    return ml_context["spark"].range(3).select()


def bad_column(*, start_date, end_date, ml_context):
    return ml_context["spark"].range(3).select("no_such_column")


def _tick_key(ml_context):
    return "tauro.pwtest.tick." + ml_context["execution_metadata"]["run_id"]


def ticking(*, start_date, end_date, ml_context):
    # One Spark task that records its progress in a JVM system property (the
    # local server runs tasks in its own JVM) for about a minute.
    spark, key = ml_context["spark"], _tick_key(ml_context)
    log.info("ticking")
    spark.range(0, 1200, 1, 1).selectExpr(
        "reflect('java.lang.Thread', 'sleep', CAST(50 AS BIGINT)) AS slept",
        f"reflect('java.lang.System', 'setProperty', '{key}', CAST(id AS STRING)) AS previous",
    ).collect()
    return spark.range(1)


def ticks(*, start_date, end_date, ml_context):
    # Reads ticking's progress twice, 1.5 s apart, and logs both readings.
    spark, key = ml_context["spark"], _tick_key(ml_context)

    def read():
        return spark.sql(f"SELECT reflect('java.lang.System', 'getProperty', '{key}') AS t").collect()[0].t

    first = read()
    time.sleep(1.5)
    log.warning("ticks %s %s", first, read())
    return spark.range(1)
