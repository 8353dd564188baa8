"""A Python node that takes a moment, as real ones do."""

import time


def tagged(*, start_date, end_date, ml_context):
    time.sleep(1.5)
    spark = ml_context["spark"]
    return spark.range(0, 30).selectExpr("id", "CASE WHEN id % 3 = 0 THEN 'fizz' ELSE 'plain' END AS tag")
