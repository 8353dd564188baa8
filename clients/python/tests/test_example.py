"""The sales example's Python pipeline, as `make demo` runs it, checked row by row.

customer_insights runs on a real execd with its real workers and Spark; every
output is read back and compared with the same figures computed here in plain
Python from the CSV the pipeline read.
"""

from __future__ import annotations

import csv
import datetime as dt
import shutil
import subprocess
import sys
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq  # type: ignore[import-untyped]
import pytest

from harness import REPO, Daemon

from tauro_exec import Client, NodeMetric, NodeState

EXAMPLE = REPO / "examples" / "sales"
START, END = "2025-01-01", "2025-01-31"
# Global defaults, then customer_insights' own, then the request's; score_customers adds its own.
RUN_HYPERPARAMS = {
    "recency_weight": 0.2,
    "frequency_weight": 0.3,
    "monetary_weight": 0.6,
    "high_value_threshold": 0.55,
    "at_risk_threshold": 0.25,
}
NODE_AT_RISK = 0.3


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("example")
    shutil.copytree(EXAMPLE, root / "sales", ignore=shutil.ignore_patterns("data", "output", "__pycache__"))
    project = root / "sales"
    subprocess.run([sys.executable, str(project / "generate_data.py"), "--out", str(project / "data" / "orders.csv")], check=True)
    return project


@pytest.fixture(scope="module")
def example_client(example: Path, binary: Path, spark_remote: str) -> Iterator[Client]:
    d = Daemon(binary, example, example.parent / "state", spark_remote, example.parent / "execd.log")
    d.start()
    try:
        with Client(d.address, timeout=60) as c:
            yield c
    finally:
        d.stop()


def expected_orders(path: Path) -> list[dict[str, Any]]:
    """extract_orders by hand: January lines with a quantity and a price."""
    out = []
    with path.open() as f:
        for r in csv.DictReader(f):
            if not (START <= r["order_date"] <= END) or not r["unit_price"] or int(r["quantity"]) <= 0:
                continue
            q = int(r["quantity"])
            out.append({**r, "quantity": q, "amount": q * float(r["unit_price"])})
    return out


def parquet(project: Path, table: str) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = pq.read_table(project / "output" / "dev" / table).to_pylist()
    return data


def delta(spark_remote: str, project: Path, table: str) -> list[dict[str, Any]]:
    """A Delta output's current rows, read through the test's Spark."""
    from pyspark.sql import SparkSession

    spark = SparkSession.builder.remote(spark_remote).getOrCreate()
    return [r.asDict() for r in spark.read.format("delta").load(str(project / "output" / "dev" / table)).collect()]


def test_customer_insights_outputs_match_the_input(example_client: Client, example: Path, spark_remote: str) -> None:
    events = []
    run = example_client.execute("customer_insights", start_date=START, end_date=END, hyperparams={"monetary_weight": 0.6})
    for e in run.watch():
        events.append(e)
    run.refresh()
    assert [(n.name, n.state) for n in run.nodes] == [
        ("extract_orders", NodeState.SUCCEEDED),
        ("customer_features", NodeState.SUCCEEDED),
        ("product_mix", NodeState.SUCCEEDED),
        ("score_customers", NodeState.SUCCEEDED),
        ("segment_report", NodeState.SUCCEEDED),
    ]
    assert run.hyperparams == RUN_HYPERPARAMS
    assert run.model_version == "rfm-1"

    orders = expected_orders(example / "data" / "orders.csv")
    assert len(parquet(example, "silver/customers/orders")) == len(orders)

    # customer_features
    by_customer: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for o in orders:
        by_customer[o["customer_id"]].append(o)
    end = dt.date.fromisoformat(END)
    want_features = {}
    for cid, rows in by_customer.items():
        last = max(dt.date.fromisoformat(o["order_date"]) for o in rows)
        want_features[cid] = {
            "orders": len({o["order_id"] for o in rows}),
            "revenue": round(sum(o["amount"] for o in rows), 2),
            "recency_days": (end - last).days,
        }
    features = {r["customer_id"]: r for r in delta(spark_remote, example, "gold/customers/features")}
    assert features.keys() == want_features.keys()
    for cid, want in want_features.items():
        got = features[cid]
        assert (got["orders"], got["recency_days"]) == (want["orders"], want["recency_days"]), cid
        assert got["revenue"] == pytest.approx(want["revenue"], abs=0.011), cid

    # product_mix: most units, ties to the lower product id
    want_favourite = {}
    for cid, rows in by_customer.items():
        units: Counter[str] = Counter()
        for o in rows:
            units[o["product_id"]] += o["quantity"]
        want_favourite[cid] = min(units, key=lambda p: (-units[p], p))
    mix = {r["customer_id"]: r["favourite_product"] for r in parquet(example, "gold/customers/product_mix")}
    assert mix == want_favourite

    # score_customers: min-max scaled RFM with the merged weights, the node's own at-risk threshold
    hp = RUN_HYPERPARAMS
    weights = hp["recency_weight"] + hp["frequency_weight"] + hp["monetary_weight"]

    def scaled(col: str, cid: str) -> float:
        values = [f[col] for f in want_features.values()]
        lo, hi = min(values), max(values)
        return (want_features[cid][col] - lo) / (hi - lo) if hi > lo else 1.0

    want_score = {
        cid: (
            hp["recency_weight"] * (1 - scaled("recency_days", cid))
            + hp["frequency_weight"] * scaled("orders", cid)
            + hp["monetary_weight"] * scaled("revenue", cid)
        )
        / weights
        for cid in want_features
    }
    scores = {r["customer_id"]: r for r in delta(spark_remote, example, "gold/customers/scores")}
    assert scores.keys() == want_score.keys()
    for cid, s in scores.items():
        assert s["score"] == pytest.approx(want_score[cid], abs=2e-4), cid
        want_segment = "high_value" if s["score"] >= hp["high_value_threshold"] else "at_risk" if s["score"] < NODE_AT_RISK else "regular"
        assert s["segment"] == want_segment, cid
        assert s["model_version"] == "rfm-1"
    segments = Counter(s["segment"] for s in scores.values())
    assert set(segments) == {"high_value", "regular", "at_risk"}, segments

    metrics = run.node("score_customers").attempts[-1].metrics
    assert metrics["customers"] == len(want_score)
    assert metrics["mean_score"] == pytest.approx(sum(want_score.values()) / len(want_score), abs=2e-4)
    assert metrics["high_value_share"] == pytest.approx(segments["high_value"] / len(scores))
    streamed = {e.name for e in events if isinstance(e, NodeMetric) and e.node == "score_customers"}
    assert {"customers", "mean_score", "high_value_share"} <= streamed

    # segment_report: the scores and the product mix, joined and totalled
    report = {r["segment"]: r for r in parquet(example, "gold/customers/segment_report")}
    assert report.keys() == set(segments)
    for seg, r in report.items():
        members = [cid for cid, s in scores.items() if s["segment"] == seg]
        assert r["customers"] == len(members)
        assert r["revenue"] == pytest.approx(sum(scores[c]["revenue"] for c in members), abs=0.011)
        favourites: Counter[str] = Counter(want_favourite[c] for c in members)
        assert r["top_product"] == min(favourites, key=lambda p: (-favourites[p], p))
        assert r["window"] == f"{START}..{END}"
