"""foreachBatch: each micro-batch's newest row per key MERGEd into a Delta
table, exactly once per batch id. The function runs in the Spark Connect
server's own Python worker, pickled with this module by value, so the paths
below are computed where execd's worker imported it: the project folder."""

import os

from pyspark.sql import Window
from pyspark.sql import functions as F

OUTPUT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "output")
TARGET = os.path.join(OUTPUT, "latest")
# While this file exists, the next batch fails once, after its MERGE
# committed: the retry replays the batch, which Delta must skip.
FAIL_ONCE = os.path.join(OUTPUT, "fail_once")


class InjectedFailure(Exception):
    pass


def merge_latest(batch_df, batch_id):
    spark = batch_df.sparkSession
    spark.sql(f"CREATE TABLE IF NOT EXISTS delta.`{TARGET}` (key STRING, value INT, seq INT) USING delta")
    newest = (
        batch_df.withColumn("_n", F.row_number().over(Window.partitionBy("key").orderBy(F.col("seq").desc())))
        .where("_n = 1")
        .drop("_n")
    )
    newest.createOrReplaceTempView("batch_updates")
    # Delta commits this MERGE once per (app id, batch id): a replayed batch
    # is skipped. The version resets after each write.
    spark.conf.set("spark.databricks.delta.write.txnAppId", "upsert_latest")
    spark.conf.set("spark.databricks.delta.write.txnVersion", str(batch_id))
    spark.conf.set("spark.databricks.delta.write.txnVersion.autoReset.enabled", "true")
    spark.sql(
        f"MERGE INTO delta.`{TARGET}` t USING batch_updates s ON t.key = s.key "
        "WHEN MATCHED AND s.seq > t.seq THEN UPDATE SET * WHEN NOT MATCHED THEN INSERT *"
    )
    if os.path.exists(FAIL_ONCE):
        os.remove(FAIL_ONCE)
        raise InjectedFailure(f"batch {batch_id} failed after its MERGE, on purpose")
