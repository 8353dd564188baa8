"""Change data capture into Delta (tauro_exec.worker.cdc): a pickle that loads
where tauro_exec is not installed, and MERGEs that give the same tables when
batches are replayed, on the test run's Spark Connect server."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from tauro_exec.worker.batchfn import pickle_change_capture
from tauro_exec.worker.cdc import ChangeSpec, apply_changes

SCHEMA = "id STRING, name STRING, seq INT, op STRING"
# Out of order, duplicated within and across batches, deletes, an update
# older than its key's delete, and a re-insert after one.
BATCHES = [
    [("a", "a1", 1, "U"), ("a", "a3", 3, "U"), ("b", "b1", 1, "U"), ("a", "a3", 3, "U")],
    [("a", "a2", 2, "U"), ("b", None, 5, "D"), ("c", "c1", 1, "U")],
    [("b", "b4", 4, "U"), ("b", "b6", 6, "U"), ("a", None, 9, "D")],
]


@pytest.fixture(scope="module")
def spark(spark_remote: str) -> Iterator[SparkSession]:
    session = SparkSession.builder.remote(spark_remote).create()
    yield session
    session.stop()


def spec(target: Path, scd_type: int) -> ChangeSpec:
    return ChangeSpec(
        target=str(target),
        keys=("id",),
        sequence_by="seq",
        apply_as_deletes="op = 'D'",
        except_columns=("op",),
        scd_type=scd_type,
    )


def test_the_pickle_loads_without_tauro_exec(tmp_path: Path) -> None:
    command = pickle_change_capture(spec(tmp_path / "t", 2))
    # As in the server's own worker: tauro_exec cannot be imported.
    code = (
        "import sys, pickle; sys.modules['tauro_exec'] = None; fn = pickle.loads(sys.stdin.buffer.read()); "
        "print(fn.func.__name__, fn.args[0].scd_type, fn.args[0].state)"
    )
    out = subprocess.run([sys.executable, "-c", code], input=command, capture_output=True, timeout=60, check=True)
    assert out.stdout.decode().split() == ["apply_changes", "2", f"{tmp_path / 't'}/_tauro_cdc"]


def apply_with_replays(spark: SparkSession, s: ChangeSpec) -> None:
    """Every batch applied twice, as a restart replays a batch, and the
    first one again at the end."""
    for batch_id, rows in [*enumerate(BATCHES), (0, BATCHES[0])]:
        for _ in range(2):
            apply_changes(s, spark.createDataFrame(rows, SCHEMA), batch_id)


def test_scd1_keeps_the_newest_row_per_key_through_replays(spark: SparkSession, tmp_path: Path) -> None:
    s = spec(tmp_path / "latest", 1)
    apply_with_replays(spark, s)
    rows = spark.read.format("delta").load(s.target).orderBy("id").collect()
    assert [tuple(r) for r in rows] == [("b", "b6", 6), ("c", "c1", 1)]
    assert spark.read.format("delta").load(s.target).columns == ["id", "name", "seq"]


def test_scd2_keeps_each_version_once_through_replays(spark: SparkSession, tmp_path: Path) -> None:
    s = spec(tmp_path / "history", 2)
    apply_with_replays(spark, s)
    rows = spark.read.format("delta").load(s.target).orderBy("id", "__START_AT").collect()
    assert [tuple(r) for r in rows] == [
        ("a", "a1", 1, 1, 2),
        ("a", "a2", 2, 2, 3),
        ("a", "a3", 3, 3, 9),
        ("b", "b1", 1, 1, 4),
        ("b", "b4", 4, 4, 5),
        ("b", "b6", 6, 6, None),
        ("c", "c1", 1, 1, None),
    ]


def test_a_null_sequence_is_refused_with_its_column(spark: SparkSession, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="null seq"):
        apply_changes(spec(tmp_path / "t", 1), spark.createDataFrame([("a", "a1", None, "U")], SCHEMA), 0)
