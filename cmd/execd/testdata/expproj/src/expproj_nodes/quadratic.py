"""A node whose metric has a known optimum: loss = (x - 1.5)^2 + (y + 2)^2."""


def score(points, *, start_date, end_date, ml_context):
    hp = ml_context["hyperparams"]
    x, y = float(hp["x"]), float(hp["y"])
    if x > float(hp["fail_above_x"]):
        raise ValueError(f"x={x} is above fail_above_x")
    spark = ml_context["spark"]
    delay = int(hp["delay_ms"])
    if delay > 0:  # in Spark, so a cancelled trial's sleep is interrupted like any job
        spark.range(1).selectExpr(f"reflect('java.lang.Thread', 'sleep', cast({delay} as bigint))").collect()
    loss = (x - 1.5) ** 2 + (y + 2.0) ** 2
    ml_context["log_metric"]("loss", loss)
    return points.selectExpr("count(*) AS points").selectExpr("points", f"{x} AS x", f"{y} AS y", f"{loss} AS loss")
