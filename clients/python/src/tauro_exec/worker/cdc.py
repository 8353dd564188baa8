"""Change data capture into Delta: the foreachBatch function execd runs for a
streaming sink that declares `cdc`.

Each micro-batch holds change events: rows keyed by `keys`, ordered by
`sequence_by`, deletes marked by `apply_as_deletes`. They may arrive out of
order and more than once, within a batch and across batches, and a batch may be
replayed after a restart. Every write below is a MERGE whose result depends
only on the batch and on what the tables already hold, so a replayed batch
changes nothing a second time.

Deletes leave no row in the target, so they are remembered in a side Delta
table, `<target>/_tauro_cdc` (Delta and Spark skip folders starting with `_`):
it lives and dies with the sink's folder, so a full refresh clears it too.

This module runs in the Spark Connect server's own Python worker, pickled by
value: it may import only the standard library and pyspark.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

# The columns an event carries beside the user's: its sequence, and whether
# it deletes its key.
SEQ = "__seq"
DELETE = "__delete"
# SCD type 2's validity columns, as Databricks names them.
START_AT = "__START_AT"
END_AT = "__END_AT"
STATE_FOLDER = "_tauro_cdc"


@dataclass(frozen=True)
class ChangeSpec:
    """A sink's cdc settings, as execd's plan resolved them."""

    target: str
    keys: tuple[str, ...]
    sequence_by: str
    apply_as_deletes: str  # "" when the input has no deletes
    except_columns: tuple[str, ...]
    scd_type: int

    @property
    def state(self) -> str:
        return self.target.rstrip("/") + "/" + STATE_FOLDER

    def view(self, what: str) -> str:
        """A temporary view's name for this sink: the queries of a run share
        their session, and so its views."""
        return f"tauro_cdc_{hashlib.sha1(self.target.encode()).hexdigest()[:12]}_{what}"


def change_capture(spec: ChangeSpec) -> Callable[[DataFrame, int], None]:
    """The foreachBatch function applying spec's changes, fn(batch_df, batch_id)."""
    return functools.partial(apply_changes, spec)


def apply_changes(spec: ChangeSpec, batch_df: DataFrame, batch_id: int) -> None:
    events = change_events(spec, batch_df)
    if spec.scd_type == 1:
        apply_scd1(spec, batch_df.sparkSession, events)
    else:
        apply_scd2(spec, batch_df.sparkSession, events)


def q(name: str) -> str:
    """name as a quoted SQL identifier."""
    return "`" + name.replace("`", "``") + "`"


def delta(path: str) -> str:
    return "delta." + q(path)


def data_columns(spec: ChangeSpec, columns: Sequence[str]) -> list[str]:
    """The batch's columns the target keeps: all but except_columns."""
    return [c for c in columns if c not in spec.except_columns and c not in (SEQ, DELETE)]


def change_events(spec: ChangeSpec, batch_df: DataFrame) -> DataFrame:
    """The batch as events: its kept columns, SEQ and DELETE."""
    deletes = F.expr(spec.apply_as_deletes) if spec.apply_as_deletes else F.lit(False)
    cols = data_columns(spec, batch_df.columns)
    events = batch_df.select(
        *[F.col(q(c)) for c in cols],
        F.col(q(spec.sequence_by)).alias(SEQ),
        F.coalesce(deletes, F.lit(False)).alias(DELETE),
    )
    nulls = events.where(F.col(SEQ).isNull()).limit(1).count()
    if nulls:
        raise ValueError(
            f"cdc: a row of this micro-batch has a null {spec.sequence_by} (its sequence_by column), "
            "so its order among its key's changes is unknown; give every change a sequence value"
        )
    return events


def same_keys(spec: ChangeSpec, left: str, right: str) -> str:
    """The SQL condition matching left's and right's keys, nulls equal."""
    return " AND ".join(f"{left}.{q(k)} <=> {right}.{q(k)}" for k in spec.keys)


def newest_first(spec: ChangeSpec, events: DataFrame, *first: Column) -> DataFrame:
    """events ranked per key (`_rank` 1 first) by first, then a tie-break on
    the whole row, so duplicates resolve the same way when a batch is replayed."""
    order = [*first, F.to_json(F.struct(*[F.col(q(c)) for c in events.columns])).desc()]
    w = Window.partitionBy(*[F.col(q(k)) for k in spec.keys]).orderBy(*order)
    return events.withColumn("_rank", F.row_number().over(w))


def write_clauses(cols: Sequence[str]) -> tuple[str, str]:
    """A MERGE's UPDATE SET list and INSERT column and value lists writing
    cols of the target t from the source s: only cols, whatever else s has."""
    sets = ", ".join(f"t.{q(c)} = s.{q(c)}" for c in cols)
    names = ", ".join(q(c) for c in cols)
    values = ", ".join(f"s.{q(c)}" for c in cols)
    return sets, f"({names}) VALUES ({values})"


def create_table(spark: SparkSession, path: str, schema: DataFrame) -> None:
    """Create the Delta table at path with schema's columns unless it exists."""
    ddl = ", ".join(f"{q(f.name)} {f.dataType.simpleString()}" for f in schema.schema.fields)
    spark.sql(f"CREATE TABLE IF NOT EXISTS {delta(path)} ({ddl}) USING delta")


# -- SCD type 1: the latest row per key --


def apply_scd1(spec: ChangeSpec, spark: SparkSession, events: DataFrame) -> None:
    """Keep each key's newest row. The state table holds each key's newest
    sequence applied and whether it was a delete; the target is merged first,
    from what the state says, then the state, so a replay after a failure
    between the two merges makes the same target merge again."""
    newest = newest_first(spec, events, F.col(SEQ).desc(), F.col(DELETE).desc()).where("_rank = 1").drop("_rank")
    cols = data_columns(spec, events.columns)
    create_table(spark, spec.target, newest.select(*[q(c) for c in cols]).limit(0))
    create_table(spark, spec.state, newest.select(*[q(k) for k in spec.keys], SEQ, DELETE).limit(0))
    newest_view, fresh_view = spec.view("newest"), spec.view("fresh")
    newest.createOrReplaceTempView(newest_view)
    spark.sql(
        f"CREATE OR REPLACE TEMP VIEW {fresh_view} AS SELECT n.* FROM {newest_view} n "
        f"LEFT JOIN {delta(spec.state)} s ON {same_keys(spec, 'n', 's')} "
        f"WHERE s.{SEQ} IS NULL OR n.{SEQ} > s.{SEQ}"
    )
    sets, insert = write_clauses(cols)
    spark.sql(
        f"MERGE INTO {delta(spec.target)} t USING {fresh_view} s ON {same_keys(spec, 't', 's')} "
        f"WHEN MATCHED AND s.{DELETE} THEN DELETE "
        f"WHEN MATCHED THEN UPDATE SET {sets} "
        f"WHEN NOT MATCHED AND NOT s.{DELETE} THEN INSERT {insert}"
    )
    spark.sql(
        f"MERGE INTO {delta(spec.state)} t USING {newest_view} s ON {same_keys(spec, 't', 's')} "
        f"WHEN MATCHED AND s.{SEQ} > t.{SEQ} THEN UPDATE SET t.{SEQ} = s.{SEQ}, t.{DELETE} = s.{DELETE} "
        f"WHEN NOT MATCHED THEN INSERT *"
    )


# -- SCD type 2: history with validity intervals --


def apply_scd2(spec: ChangeSpec, spark: SparkSession, events: DataFrame) -> None:
    """Rebuild the history of the keys the batch touches from their rows in
    the target, every delete ever seen of them (the state table) and the
    batch's events, and replace those keys' rows with it in one MERGE."""
    cols = data_columns(spec, events.columns)
    keys = [q(k) for k in spec.keys]
    history_schema = events.select(
        *[q(c) for c in cols], F.col(SEQ).alias(START_AT), F.col(SEQ).alias(END_AT)
    ).limit(0)
    create_table(spark, spec.target, history_schema)
    create_table(spark, spec.state, events.select(*keys, SEQ).limit(0))
    # Deletes first: the rebuild below reads them from the state table.
    events.where(F.col(DELETE)).select(*keys, SEQ).distinct().createOrReplaceTempView(spec.view("deletes"))
    spark.sql(
        f"MERGE INTO {delta(spec.state)} t USING {spec.view('deletes')} s "
        f"ON {same_keys(spec, 't', 's')} AND t.{SEQ} = s.{SEQ} WHEN NOT MATCHED THEN INSERT *"
    )
    touched = events.select(*keys).distinct()
    current = spark.read.format("delta").load(spec.target).join(touched, list(spec.keys), "left_semi")
    deletes = spark.read.format("delta").load(spec.state).join(touched, list(spec.keys), "left_semi")
    # Each existing row is the update that started it; _from 0 keeps it over
    # a duplicate of the same sequence from the batch.
    rows_as_events = current.select(
        *[q(c) for c in cols], F.col(START_AT).alias(SEQ), F.lit(False).alias(DELETE), F.lit(0).alias("_from")
    )
    deletes_as_events = deletes.select(*keys, SEQ, F.lit(True).alias(DELETE), F.lit(0).alias("_from"))
    all_events = (
        events.where(~F.col(DELETE))
        .withColumn("_from", F.lit(1))
        .unionByName(rows_as_events)
        .unionByName(deletes_as_events, allowMissingColumns=True)
    )
    w = Window.partitionBy(*[F.col(k) for k in keys], F.col(SEQ)).orderBy(
        F.col(DELETE).desc(), F.col("_from"), F.to_json(F.struct(*[F.col(q(c)) for c in cols])).desc()
    )
    versions = all_events.withColumn("_rank", F.row_number().over(w)).where("_rank = 1")
    by_key = Window.partitionBy(*[F.col(k) for k in keys]).orderBy(F.col(SEQ))
    history = (
        versions.withColumn(END_AT, F.lead(F.col(SEQ)).over(by_key))
        .where(~F.col(DELETE))
        .select(*[q(c) for c in cols], F.col(SEQ).alias(START_AT), END_AT)
    )
    replaced = current.join(history, [*spec.keys, START_AT], "left_anti")
    source = history.withColumn("_drop", F.lit(False)).unionByName(replaced.withColumn("_drop", F.lit(True)))
    source.createOrReplaceTempView(spec.view("history"))
    sets, insert = write_clauses([*cols, START_AT, END_AT])
    spark.sql(
        f"MERGE INTO {delta(spec.target)} t USING {spec.view('history')} s "
        f"ON {same_keys(spec, 't', 's')} AND t.{START_AT} = s.{START_AT} "
        f"WHEN MATCHED AND s._drop THEN DELETE "
        f"WHEN MATCHED THEN UPDATE SET {sets} "
        f"WHEN NOT MATCHED AND NOT s._drop THEN INSERT {insert}"
    )
