"""The order_value_model pipeline's model: a Spark MLlib decision tree.

fit() reads its hyperparameters from ml_context, trains on 80% of the order
lines and logs the root mean squared error (and R^2) on the other 20% with
ml_context["log_metric"]: the metric experiment tune_order_model minimises.
Training runs on Spark; no rows pass through Python. When the project's mlops
block is on (make demo turns it on), the fitted model is also logged, in
MLflow's format, to the attempt's own MLflow run, ready to be registered.
"""

from __future__ import annotations

from pyspark.ml import PipelineModel
from pyspark.ml.evaluation import RegressionEvaluator
from pyspark.ml.feature import VectorAssembler
from pyspark.ml.regression import DecisionTreeRegressor
from pyspark.sql import DataFrame

from tauro_exec import MLContext

FEATURES = ["quantity", "unit_price", "store", "product", "weekday"]


def fit(lines: DataFrame, *, start_date: str, end_date: str, ml_context: MLContext) -> DataFrame:
    hp = ml_context["hyperparams"]
    depth, leaf, bins = int(hp["max_depth"]), int(hp["min_instances_per_node"]), int(hp["max_bins"])
    assembler = VectorAssembler(inputCols=FEATURES, outputCol="features")
    train, test = assembler.transform(lines).randomSplit([0.8, 0.2], seed=7)
    tree = DecisionTreeRegressor(
        labelCol="amount", maxDepth=depth, minInstancesPerNode=leaf, maxBins=bins, seed=7
    ).fit(train)
    predicted = tree.transform(test)
    rmse = RegressionEvaluator(labelCol="amount", metricName="rmse").evaluate(predicted)
    r2 = RegressionEvaluator(labelCol="amount", metricName="r2").evaluate(predicted)
    ml_context["log_metric"]("rmse", rmse)
    ml_context["log_metric"]("r2", r2)
    tracked = ml_context.get("mlflow")
    if tracked and tracked["run_id"]:
        # The model as a whole: order lines in, predicted amounts out.
        ml_context["tracker"].log_model(PipelineModel(stages=[assembler, tree]), "order_value_tree")
    spark = ml_context["spark"]
    return spark.createDataFrame(
        [(ml_context["model_version"], depth, leaf, bins, float(rmse), float(r2), start_date, end_date)],
        "model_version STRING, max_depth INT, min_instances_per_node INT, max_bins INT, rmse DOUBLE, r2 DOUBLE, start_date STRING, end_date STRING",
    )
