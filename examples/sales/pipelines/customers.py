"""Python nodes of the customer_insights pipeline.

Each node function takes its inputs as Spark DataFrames, in the order of the
node's `input` list, and the run's dates as keywords. A function that names
`ml_context` also gets the run's hyperparameters, model version, Spark
session and a `log_metric` callback. Everything stays lazy: the functions
build Spark plans and execd writes the results, so no rows pass through
Python except the few statistics a node logs as metrics.

    raw_orders -> extract_orders -+-> customer_features -> score_customers -+-> segment_report
                                  +-> product_mix --------------------------+
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from tauro_exec import MLContext


def extract_orders(raw: DataFrame, *, start_date: str, end_date: str) -> DataFrame:
    """Order lines of the run's window that can be counted, with their amount."""
    day = F.to_date(F.col("order_date"))
    return (
        raw.where(day.between(F.lit(start_date).cast("date"), F.lit(end_date).cast("date")))
        .where((F.col("quantity") > 0) & F.col("unit_price").isNotNull())
        .select(
            "order_id",
            "customer_id",
            "product_id",
            day.alias("order_date"),
            "quantity",
            (F.col("quantity") * F.col("unit_price")).alias("amount"),
        )
    )


def customer_features(orders: DataFrame, *, start_date: str, end_date: str) -> DataFrame:
    """Recency, frequency and monetary value of each customer in the window."""
    return orders.groupBy("customer_id").agg(
        F.countDistinct("order_id").alias("orders"),
        F.round(F.sum("amount"), 2).alias("revenue"),
        F.max("order_date").alias("last_order"),
        F.datediff(F.lit(end_date).cast("date"), F.max("order_date")).alias("recency_days"),
    )


def product_mix(orders: DataFrame, *, start_date: str, end_date: str) -> DataFrame:
    """Each customer's favourite product (most units; ties go to the lower id)."""
    units = orders.groupBy("customer_id", "product_id").agg(F.sum("quantity").alias("units"))
    rank = Window.partitionBy("customer_id").orderBy(F.col("units").desc(), F.col("product_id"))
    return (
        units.withColumn("rank", F.row_number().over(rank))
        .where(F.col("rank") == 1)
        .select("customer_id", F.col("product_id").alias("favourite_product"), F.col("units").alias("favourite_units"))
    )


def score_customers(features: DataFrame, *, start_date: str, end_date: str, ml_context: MLContext) -> DataFrame:
    """An RFM model: a weighted score in [0, 1] and a segment for each customer.

    Recency, frequency and monetary value are scaled to [0, 1] over the
    window's customers (recent is high); the weights and the segment
    thresholds are hyperparameters.
    """
    hp = ml_context["hyperparams"]
    w_r, w_f, w_m = (float(hp[k]) for k in ("recency_weight", "frequency_weight", "monetary_weight"))
    high, low = float(hp["high_value_threshold"]), float(hp["at_risk_threshold"])
    if w_r + w_f + w_m <= 0:
        raise ValueError("recency_weight + frequency_weight + monetary_weight must be positive")

    def scaled(col: str) -> Column:
        lo, hi = F.col(f"min_{col}"), F.col(f"max_{col}")
        return F.when(hi > lo, (F.col(col) - lo) / (hi - lo)).otherwise(F.lit(1.0))

    cols = ("recency_days", "orders", "revenue")
    bounds = features.agg(*[f(c).alias(f"{n}_{c}") for c in cols for n, f in (("min", F.min), ("max", F.max))])
    score = (w_r * (1 - scaled("recency_days")) + w_f * scaled("orders") + w_m * scaled("revenue")) / (w_r + w_f + w_m)
    scored = features.crossJoin(bounds).select(
        "customer_id",
        "orders",
        "revenue",
        "recency_days",
        F.round(score, 4).alias("score"),
    )
    segment = (
        F.when(F.col("score") >= high, "high_value").when(F.col("score") < low, "at_risk").otherwise("regular")
    )
    result = scored.withColumn("segment", segment).withColumn("model_version", F.lit(ml_context["model_version"]))

    stats = result.agg(
        F.count("*").alias("customers"),
        F.avg("score").alias("mean_score"),
        F.avg((F.col("segment") == "high_value").cast("double")).alias("high_value_share"),
    ).first()
    if stats is not None and stats["customers"]:
        for name in ("customers", "mean_score", "high_value_share"):
            ml_context["log_metric"](name, float(stats[name]))
    return result


def segment_report(scores: DataFrame, mix: DataFrame, *, start_date: str, end_date: str) -> DataFrame:
    """Per segment: customers, revenue, mean score and the most common favourite product."""
    joined = scores.join(mix, "customer_id", "left")
    favourite = (
        joined.groupBy("segment", "favourite_product")
        .count()
        .withColumn(
            "rank",
            F.row_number().over(Window.partitionBy("segment").orderBy(F.col("count").desc(), F.col("favourite_product"))),
        )
        .where(F.col("rank") == 1)
        .select("segment", F.col("favourite_product").alias("top_product"))
    )
    totals = joined.groupBy("segment").agg(
        F.count("*").alias("customers"),
        F.round(F.sum("revenue"), 2).alias("revenue"),
        F.round(F.avg("score"), 4).alias("mean_score"),
    )
    return totals.join(favourite, "segment").withColumn("window", F.lit(f"{start_date}..{end_date}"))
