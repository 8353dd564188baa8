"""The hybrid example (examples/hybrid), as `make demo` runs it, checked row by row.

store_orders runs on a real execd and Spark: build_stores writes the store
dimension, then enrich_orders streams the order files that arrive in a
folder and joins each with its store. The test drops two batches of files
after the query has started, each once the progress events have counted the
rows of the one before, stops the run, and compares every row of the Delta
sink with the join computed here in plain Python from the CSV files.
"""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from harness import REPO, Daemon

from tauro_exec import Client, NodeMessage, NodeProgress, NodeState, NodeStateChanged, RunState

EXAMPLE = REPO / "examples" / "hybrid"
STREAM = "enrich_orders"
# Files per batch and lines per file the test drops while the query runs.
BATCHES = [2, 3]
LINES = 15


@pytest.fixture
def project(tmp_path: Path) -> Path:
    project = tmp_path / "hybrid"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns("data", "output", "__pycache__"))
    generate(project)
    return project


def generate(project: Path, *args: str) -> None:
    subprocess.run([sys.executable, str(project / "generate_data.py"), "--data", str(project / "data"), *args],
                   check=True, stdout=subprocess.DEVNULL)  # fmt: skip


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def expected_rows(project: Path) -> tuple[int, list[dict[str, Any]]]:
    """Every order line dropped, and enrich_orders by hand: each order of an open store with the store's city and region."""
    stores = {s["store_id"]: s for s in read_csv(project / "data" / "stores.csv") if not s["closed_on"]}
    lines, out = 0, []
    for path in sorted((project / "data" / "incoming_orders").glob("orders-*.csv")):
        for o in read_csv(path):
            lines += 1
            store = stores.get(o["store_id"])
            if store is None:
                continue
            quantity, price = int(o["quantity"]), float(o["unit_price"])
            out.append({
                "order_id": int(o["order_id"]),
                "store_id": o["store_id"],
                "city": store["city"],
                "region": store["region"],
                "product_id": o["product_id"],
                "quantity": quantity,
                "unit_price": price,
                "amount": quantity * price,
                "ordered_at": o["ordered_at"],
            })  # fmt: skip
    return lines, sorted(out, key=lambda r: r["order_id"])


def sink_rows(spark_remote: str, project: Path) -> list[dict[str, Any]]:
    """The Delta sink's rows, read through the test's Spark; times as the CSV writes them."""
    from pyspark.sql import SparkSession

    spark = SparkSession.builder.remote(spark_remote).getOrCreate()
    df = spark.read.format("delta").load(str(project / "output" / "gold" / "orders" / "enriched"))
    df = df.withColumn("ordered_at", df["ordered_at"].cast("string"))
    return sorted((r.asDict() for r in df.collect()), key=lambda r: r["order_id"])


def test_store_orders_joins_every_order_that_arrives_while_it_runs(project: Path, binary: Path, spark_remote: str) -> None:
    d = Daemon(binary, project, project.parent / "state", spark_remote, project.parent / "execd.log")
    d.start()
    try:
        with Client(d.address, timeout=60) as client:
            # Spark checks the pipeline before the dimension exists: the
            # stream's table is written by its upstream batch node at run time.
            plan = client.validate("store_orders")
            assert plan.order == ["build_stores", "enrich_orders"]
            run = client.execute("store_orders")
            # A run that never gets its rows would wait forever: cancel it, and the checks below fail.
            watchdog = threading.Timer(240, lambda: client.run(run.id).cancel("the test gave up waiting"))
            watchdog.start()
            started = time.monotonic()
            dropped: list[int] = []  # order lines dropped per batch
            counted = 0  # input rows the progress events reported
            events = []
            try:
                for ev in run.watch():
                    events.append(ev)
                    if isinstance(ev, NodeProgress) and ev.node == STREAM:
                        counted += ev.input_rows
                    elif not (isinstance(ev, NodeStateChanged) and ev.node == STREAM and ev.state is NodeState.STREAMING):
                        continue
                    assert counted <= sum(dropped), f"progress counted {counted} rows, {sum(dropped)} were dropped"
                    if counted < sum(dropped):
                        continue
                    # The query runs and has processed every file dropped so far.
                    if len(dropped) == len(BATCHES):
                        break
                    generate(project, "--drop", str(BATCHES[len(dropped)]), "--lines", str(LINES))
                    dropped.append(BATCHES[len(dropped)] * LINES)
                processed = time.monotonic() - started
                run.stop("the test has seen every file processed")
            finally:
                watchdog.cancel()
    finally:
        d.stop()

    assert run.state is RunState.SUCCEEDED, run.message
    assert [(n.name, n.state) for n in run.nodes] == [("build_stores", NodeState.SUCCEEDED), (STREAM, NodeState.SUCCEEDED)]
    assert len(dropped) == len(BATCHES) and counted == sum(dropped), (dropped, counted, events)
    assert not [e for e in events if isinstance(e, NodeMessage) and "resumed" in e.text], "a first run resumed"

    lines, want = expected_rows(project)
    assert lines == sum(dropped)
    assert 0 < len(want) < lines, "the closed store's orders should join nothing"
    got = sink_rows(spark_remote, project)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g == w, f"order {w['order_id']}"
    assert (project / "output" / "_checkpoints" / "dev" / "store_orders" / STREAM / "commits").is_dir()
    print(f"\n{lines} order lines in {sum(BATCHES)} files, {len(got)} joined rows; processed {processed:.1f}s after the run started")
