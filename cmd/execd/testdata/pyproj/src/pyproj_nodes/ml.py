"""An ML-style node that writes down what it saw, so the test can read it back."""

import json


def train(*, start_date, end_date, ml_context):
    spark = ml_context["spark"]
    hp = ml_context["hyperparams"]
    conf = {k: spark.conf.get(f"tauro.ml.{k}", None) for k in ("alpha", "beta", "gamma", "delta")}
    meta = ml_context["execution_metadata"]
    ml_context["log_metric"]("rmse", 0.25)
    row = {
        "hyperparams": json.dumps(hp, sort_keys=True),
        "conf": json.dumps(conf, sort_keys=True),
        "model_version": ml_context["model_version"],
        "node": meta["node"],
        "run_id": meta["run_id"],
        "attempt": meta["attempt"],
        "node_function": ml_context["node_config"].get("function", ""),
        "pipeline_type": ml_context["pipeline_config"].get("type", ""),
    }
    return spark.createDataFrame([row])
