"""A workload written by hand: the peer execd is measured against.

    python hand.py --mode classic|connect --workload NAME --tmp DIR [--remote sc://...]

One warm process per workload and mode. It opens its SparkSession once,
then reads commands from stdin, one JSON object per line, and answers each
with one JSON line on stdout:

    the first line, once the session is open: {"ready": true, "conf": {...}}
                                the settings the session runs with (over
                                Connect: those of the server it shares)
    {"cmd": "run", "out": DIR}  runs the workload once, writing under DIR;
                                answers {"wall": s, "nodes": {name: [start, end]}}
                                (seconds since the epoch)
    {"cmd": "digest", "paths": [[format, path], ...]}
                                answers {"digests": [[rows, checksum], ...]}

The job is what a careful user writes without an orchestrator: the node
functions called with their inputs' DataFrames in dependency order by a
thread pool of the project's width, each result written with
DataFrameWriter. Each source is read once per run. A result that would
otherwise be computed more than once, by its writes and the nodes that read
it together, is cached (lazily: its first write or reader computes it) and
released after its last reader, as execd does. It is not a tauro
interpreter: workloads.py spells each node's reads and writes out.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import pathlib
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import workloads  # noqa: E402
from workloads import Node, Workload  # noqa: E402

# The classic session runs on this machine's loopback, with the settings
# the Connect server runs with (shared_conf), which the Connect job reads
# from the server and peer.py hands to the classic one.
CONF = {
    "spark.driver.host": "127.0.0.1",
    "spark.driver.bindAddress": "127.0.0.1",
}


def shared_conf(spark: Any) -> dict[str, str]:
    """The Connect server's settings that decide how a job runs (SQL,
    Delta, the driver's memory, the master), without those of its own
    process: its folders, ports, ids, jars and artifact isolation."""
    keep = ("spark.sql.", "spark.databricks.")
    own = ("spark.sql.warehouse.dir", "spark.sql.artifact.")
    conf: dict[str, str] = spark.conf.getAll
    return {
        k: v for k, v in conf.items()
        if (k.startswith(keep) and not k.startswith(own)) or k in ("spark.master", "spark.driver.memory", "spark.ui.enabled")
    }


def session(mode: str, remote: str, conf: dict[str, str]) -> Any:
    from pyspark.sql import SparkSession

    if mode == "connect":
        return SparkSession.builder.remote(remote).getOrCreate()
    jars = sorted(str(p) for p in (workloads.ROOT / ".venv" / "spark-jars").glob("*.jar"))
    b = SparkSession.builder.appName("peer-classic")
    for k, v in {**conf, **CONF}.items():
        b = b.config(k, v)
    if jars:
        b = b.config("spark.jars", ",".join(jars))
    return b.getOrCreate()


def run_node(
    spark: Any, w: Workload, n: Node, results: dict[str, Any], sources: dict[str, Any], readers: int,
    out: pathlib.Path, metrics: list[tuple[str, float]],
) -> Any:
    """Run one node; ``readers`` is how many nodes read its result."""
    start, end = workloads.dates()
    if n.function:
        fn = workloads.load(w.project, n.function)
        args = []
        for r in n.reads:
            kind, name = r.split(":", 1)
            args.append(results[name] if kind == "node" else sources[name])
        kw: dict[str, Any] = {"start_date": workloads.START, "end_date": workloads.END}
        if "ml_context" in inspect.signature(fn).parameters:
            kw["ml_context"] = {
                "hyperparams": {**w.hyperparams, **n.hyperparams},
                "model_version": w.model_version,
                "spark": spark,
                "log_metric": lambda name, value: metrics.append((name, value)),
            }
        df = fn(*args, **kw)
    else:
        # A view cannot hold a query's parameters, so the hand-written job
        # writes the run's dates into its SQL as date literals.
        sql = n.sql.replace(":start_date", f"DATE'{start}'").replace(":end_date", f"DATE'{end}'")
        df = spark.sql(sql)
    if shared(n, readers):
        df = df.cache()
    df.createOrReplaceTempView(n.name)  # SQL nodes downstream read it by name (the cache too)
    for o in n.outputs:
        wr = df.write.format(o.format).mode(o.mode)
        if o.partition_by:
            wr = wr.partitionBy(*o.partition_by)
        for k, v in o.options.items():
            wr = wr.option(k, v)
        wr.save(str(out / o.path))
    return df


def shared(n: Node, readers: int) -> bool:
    """Whether n's result would be computed more than once (by its writes and its
    readers together) if it were not cached; execd's rule too."""
    return readers > 0 and len(n.outputs) + readers > 1


def read_source(spark: Any, w: Workload, key: str) -> Any:
    s = w.sources[key]
    return spark.read.format(s.format).options(**s.options).load(s.path)


def run_once(spark: Any, w: Workload, out: pathlib.Path) -> dict[str, Any]:
    t0 = time.time()
    sources = {}
    for key in w.sources:  # read once; SQL nodes read them by key
        sources[key] = read_source(spark, w, key)
        sources[key].createOrReplaceTempView(key)
    results: dict[str, Any] = {}
    times: dict[str, list[float]] = {}
    metrics: list[tuple[str, float]] = []
    ups = {n.name: {r.split(":", 1)[1] for r in n.reads if r.startswith("node:")} for n in w.nodes}
    readers = {n.name: sum(n.name in u for u in ups.values()) for n in w.nodes}
    left = dict(readers)  # readers that have not finished yet
    by_name = {n.name: n for n in w.nodes}
    todo = list(w.nodes)
    done: set[str] = set()
    running: dict[Future[Any], str] = {}

    def task(n: Node) -> Any:
        s = time.time()
        df = run_node(spark, w, n, results, sources, readers[n.name], out, metrics)
        times[n.name] = [s, time.time()]
        return df

    with ThreadPoolExecutor(w.width) as pool:
        while todo or running:
            for n in [n for n in todo if ups[n.name] <= done]:
                todo.remove(n)
                running[pool.submit(task, n)] = n.name
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for f in finished:
                name = running.pop(f)
                results[name] = f.result()
                done.add(name)
                for up in ups[name]:  # a cached result is released after its last reader
                    left[up] -= 1
                    if left[up] == 0 and shared(by_name[up], readers[up]):
                        results[up].unpersist()
    return {"wall": time.time() - t0, "nodes": times}


def digest(spark: Any, fmt: str, path: str) -> list[Any]:
    from pyspark.sql import functions as F

    df = spark.read.format(fmt).load(path)
    # Sums of doubles depend on the order Spark adds them in: compare them
    # to six decimals.
    floats = {f.name for f in df.schema.fields if f.dataType.typeName() in ("double", "float")}
    cols = [F.expr(f"format_number({c}, 6)") if c in floats else F.col(c) for c in sorted(df.columns)]
    row = df.select(F.count("*").alias("n"), F.sum(F.pmod(F.xxhash64(*cols), F.lit(2**31))).alias("h")).first()
    return [int(row["n"]), int(row["h"] or 0)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=["classic", "connect"], required=True)
    ap.add_argument("--workload", choices=sorted(workloads.MAKERS), required=True)
    ap.add_argument("--tmp", required=True)
    ap.add_argument("--remote", default=os.environ.get("TAURO_SPARK_REMOTE", ""))
    ap.add_argument("--conf", default="{}", help="classic: the settings to run with, as JSON (the Connect job's ready line gives them)")
    a = ap.parse_args()
    w = workloads.MAKERS[a.workload](pathlib.Path(a.tmp))
    spark = session(a.mode, a.remote, json.loads(a.conf))
    ready: dict[str, Any] = {"ready": True}
    if a.mode == "connect":
        ready["conf"] = shared_conf(spark)
    else:
        ready["conf"] = {k: spark.conf.get(k) for k in json.loads(a.conf)}
    print(json.dumps(ready), flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["cmd"] == "run":
            reply = run_once(spark, w, pathlib.Path(cmd["out"]))
        elif cmd["cmd"] == "digest":
            reply = {"digests": [digest(spark, f, p) for f, p in cmd["paths"]]}
        else:
            reply = {"error": f"unknown command {cmd['cmd']!r}"}
        print(json.dumps(reply), flush=True)
    spark.stop()


if __name__ == "__main__":
    main()
