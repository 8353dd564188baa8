"""tauro-style streaming transforms: fn(input_df, node_config)."""

from pyspark.sql import functions as F


def label_ticks(input_df, node_config):
    # What it saw goes into the rows, for the test to read from the sink.
    return input_df.select(
        "value",
        F.lit(node_config["label"]).alias("label"),
        F.lit(node_config["name"]).alias("node"),
        F.lit(node_config["streaming"]["trigger"]["interval"]).alias("trigger_every"),
        F.lit(input_df.isStreaming).alias("was_streaming"),
    )
