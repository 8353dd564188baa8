"""Plain tauro node functions: DataFrames in, a DataFrame out."""

from pyspark.sql import functions as F


def adults(people, *, start_date, end_date):
    print(f"adults of {start_date}..{end_date}")  # shows on the node's run
    return people.where(F.col("age") >= 21)


def tag_by_period(adults, *, start_date, end_date):
    return adults.withColumn("period", F.lit(f"{start_date}..{end_date}"))
