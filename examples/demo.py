"""The tauro-exec demo: what `make demo` runs.

It writes the sales example's input, starts one execd on the embedded local
Spark serving the two example projects (examples/projects.yaml: sales and
hybrid, one web view for both), then drives it with the Python client the way a notebook would: validate each
pipeline, execute it, follow every node's state live, and show the result.
daily_sales is all SQL; customer_insights is all Python (pipelines/customers.py)
with an ML-style scoring node that reads its hyperparameters from ml_context.

Then a hyperparameter search: experiment tune_order_model (examples/sales/
config/experiments.yaml) tunes a Spark MLlib decision tree by Bayesian
optimisation, a few trials two at a time, each trial an ordinary run; the
demo prints every trial as it starts and ends, and the best one.

The sales project's ML pipelines are tracked in MLflow: the demo starts a
tracking server from the venv (SQLite and artifacts under
.build/demo-state/mlflow) and turns the project's mlops block on, so every
run of customer_insights and every trial of the experiment is an MLflow run
with a child per ML node attempt, and each trial's fitted tree is logged as
a model; the demo prints where to look in the MLflow UI.

Then the hybrid example (examples/hybrid), the other project of the same
execd: store_orders builds a store dimension in a batch node and starts
a streaming node that joins every order file arriving in a folder with it.
The demo drops order files while the query runs, prints each micro-batch's
progress as it comes, stops the run with run.stop() and totals the joined
table per region.
"""

from __future__ import annotations

import argparse
import pathlib
import shutil
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from typing import Any

from tauro_exec import (
    Client,
    ExperimentFailed,
    FailedPrecondition,
    NodeProgress,
    NodeState,
    NodeStateChanged,
    Run,
    RunFailed,
    TrialState,
    ValidationError,
)
from tauro_exec.events import describe_event

ROOT = pathlib.Path(__file__).resolve().parent.parent
HYBRID = ROOT / "examples" / "hybrid"


# MLflow's own default port, which the sales project's mlops block names.
MLFLOW_PORT = 5000


def start_mlflow(state: pathlib.Path) -> tuple[subprocess.Popen[bytes], str] | None:
    """Start an MLflow tracking server from the venv on a free loopback port,
    its runs in SQLite and its artifacts in a folder of state; return it and
    its address, or None (tracking stays off) when it cannot start."""
    folder = state / "mlflow"
    folder.mkdir(parents=True, exist_ok=True)
    port = MLFLOW_PORT
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", MLFLOW_PORT))
        except OSError:  # taken: any free port, passed to execd in SALES_MLFLOW_URI
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
    uri = f"http://127.0.0.1:{port}"
    print(f"starting an MLflow tracking server at {uri} (log: {folder / 'mlflow.log'}) ...", flush=True)
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
           "--artifacts-destination", str(folder / "artifacts"), "--serve-artifacts",
           "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]  # fmt: skip
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    log = (folder / "mlflow.log").open("wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(uri + "/health", timeout=2) as r:
                if r.status == 200:
                    return proc, uri
        except OSError:
            time.sleep(0.5)
    proc.kill()
    print(f"the MLflow tracking server did not start (see {folder / 'mlflow.log'}); the demo goes on without tracking", flush=True)
    return None


def start_execd(execd: pathlib.Path, projects: pathlib.Path, state: pathlib.Path, *, spark_remote: str | None = None,
                mlflow_uri: str | None = None) -> tuple[subprocess.Popen[str], str, str]:  # fmt: skip
    """Start `execd serve` for the projects file on a free port; return it, its address and its Spark's.
    With mlflow_uri, the sales project's mlops block is on and sends there."""
    cmd = [str(execd), "serve", "--projects", str(projects), "--state", str(state), "--listen", "127.0.0.1:0"]
    if spark_remote:
        cmd += ["--spark-remote", spark_remote]
        shown = spark_remote.split("/;")[0]  # its parameters may carry the server's token
        print(f"starting execd for {projects.relative_to(ROOT)} on the Spark Connect server at {shown} ...", flush=True)
    else:
        print(f"starting execd for {projects.relative_to(ROOT)} and its embedded Spark Connect server (the first start takes a little while) ...", flush=True)
    state.mkdir(parents=True, exist_ok=True)
    ready = state / "spark-remote"  # the embedded Spark's address with its token (0600)
    if not spark_remote:
        cmd += ["--spark-ready-file", str(ready)]
    log = (state / "execd.log").open("w")
    env = dict(os.environ)
    if mlflow_uri:  # global settings read these (examples/sales/config/global_settings.yaml)
        env["SALES_MLOPS"] = "true"
        if mlflow_uri != f"http://127.0.0.1:{MLFLOW_PORT}":
            # execd hides every value it reads from its environment from its
            # clients, so the links it returns then say ${SALES_MLFLOW_URI}.
            env["SALES_MLFLOW_URI"] = mlflow_uri
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True, env=env)
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("execd listening on "):
            remote = spark_remote or ready.read_text().strip()
            return proc, line.split()[-1], remote
    proc.wait()
    log.close()
    sys.exit(f"execd did not start; see {state / 'execd.log'}:\n" + (state / "execd.log").read_text()[-3000:])


def stop_execd(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)


# What the demo runs: the SQL pipeline, then the Python one with a request
# hyperparameter that overrides the project's (node settings still win).
PIPELINES: dict[str, dict[str, Any]] = {
    "daily_sales": {},
    "customer_insights": {"hyperparams": {"monetary_weight": 0.6}},
}


def web_view(addr: str) -> str:
    """The URL of execd's web view, served on the API's own address."""
    return f"http://{addr}"


def run_pipeline(client: Client, name: str, project: pathlib.Path, web: str, mlflow_uri: str | None, **extra: Any) -> None:
    print(f"\n=== {name} ===")
    try:
        plan = client.validate(name)
    except ValidationError as e:
        sys.exit(str(e))
    print("valid. Stages (nodes of a stage may run side by side):")
    for i, stage in enumerate(plan.stages):
        print(f"  {i}: {', '.join(stage)}")
    print(f"critical path: {' -> '.join(plan.critical_path)}\n")

    started = time.monotonic()
    run = client.execute(name, start_date="2025-01-01", end_date="2025-01-31", **extra)
    print(f"run {run.id} started; following it live (its page: {web}/runs/{run.id}):\n")
    try:
        run.wait(progress=True)
    except RunFailed as e:
        print(e)
        sys.exit(1)
    print(f"\nrun {run.id} {run.state.name} in {time.monotonic() - started:.1f}s")
    if "hyperparams" in extra:  # an ML pipeline: what the run used (nodes may override)
        print(f"model {run.model_version}, run hyperparameters {run.hyperparams}")
        tracked = tracked_run(client, run.id, mlflow_uri)
        if tracked:
            print(f"in MLflow: {tracked}")
    print()
    for n in run.nodes:
        took = f"{n.duration.total_seconds():.2f}s" if n.duration else ""
        metrics = {k: round(v, 3) for k, v in n.attempts[-1].metrics.items() if not k.startswith("rows_written")} if n.attempts else {}
        print(f"  {n.name:18} {n.state.name:10} attempt {n.attempt}  {took:>6}  {metrics or ''}")


def tracked_run(client: Client, run_id: str, mlflow_uri: str | None) -> str | None:
    """The page of the run's MLflow run on the demo's tracking server; execd
    makes the run beside the execd run, so it may take a moment after the
    run ends. None when tracking is off."""
    for _ in range(20 if mlflow_uri else 0):
        run = client.run(run_id)
        if run.mlflow:
            return mlflow_page(mlflow_uri, run.mlflow.experiment_id, run.mlflow.run_id)
        time.sleep(0.25)
    return None


def mlflow_page(uri: str | None, experiment_id: str, run_id: str) -> str:
    return f"{uri}/#/experiments/{experiment_id}/runs/{run_id}"


def show_report(project: pathlib.Path) -> None:
    report = project / "output" / "dev" / "gold" / "customers" / "segment_report"
    if not report.is_dir():
        return
    import pyarrow.parquet as pq  # pyspark's dependency; imported late to keep startup quick

    print("\ncustomer segments, January 2025:")
    for row in sorted(pq.read_table(report).to_pylist(), key=lambda r: -r["revenue"]):
        print(f"  {row['segment']:11} {row['customers']:3} customers  revenue {row['revenue']:>10,.2f}"
              f"  mean score {row['mean_score']:.3f}  top product {row['top_product']}")


# The experiment's budget in the demo: a few trials, two at a time (the
# declared experiment has more).
DEMO_TRIALS = 6
EXPERIMENT = "tune_order_model"


def run_experiment(client: Client, mlflow_uri: str | None) -> None:
    print(f"\n=== {EXPERIMENT} (examples/sales/config/experiments.yaml): Bayesian search over a decision tree ===")
    exp = client.experiment(declared=EXPERIMENT, n_trials=DEMO_TRIALS)
    metric, node, direction = exp.objective
    print(f"experiment {exp.id}: {exp.n_trials} trials of {exp.pipeline}, {exp.max_parallel_trials} at once, to {direction} {metric}"
          f" (logged by {node});\n{', '.join(exp.shared_nodes)} run once and every trial reads what they wrote;"
          f" each trial runs {', '.join(exp.trial_nodes)}\n")  # fmt: skip
    for ev in exp.watch():
        if ev.trial is not None and ev.trial.state is TrialState.RUNNING and not ev.trial.run_id:
            continue  # recorded before its run starts; the next event has the run
        at = f"{ev.time:%H:%M:%S}" if ev.time else ""
        print(f"  {at}  {ev.describe()}", flush=True)
    try:
        exp.wait()
    except ExperimentFailed as e:
        print(e)
        sys.exit(1)
    best = exp.best
    assert best is not None and best.value is not None
    print(f"\nbest: trial {best.number}, {metric} {best.value:.3f} with {best.params}")
    exp = client.experiment_by_id(exp.id)
    if mlflow_uri and exp.mlflow:
        page = mlflow_page(mlflow_uri, exp.mlflow.experiment_id, exp.mlflow.run_id)
        print(f"in MLflow: {page} (a child run per trial, the best tagged execd.best; each holds its tree under Artifacts)")


# The hybrid example: order files dropped per round (each round once the
# stream has processed the one before), lines per file, and how long the
# demo lets the stream run at most, whatever happens.
ORDER_DROPS = [2, 3, 2]
ORDER_LINES = 20
STREAM_LIMIT = 90.0


def run_hybrid(addr: str, spark_remote: str) -> None:
    print("\n=== hybrid/store_orders (examples/hybrid): a batch node, then a stream that runs until stopped ===")
    # The sink and the stream's checkpoint go, so the demo starts over: the
    # stream remembers the files it has read by name.
    shutil.rmtree(HYBRID / "output", ignore_errors=True)
    subprocess.run([sys.executable, str(HYBRID / "generate_data.py")], check=True)
    with Client(addr, project="hybrid") as client:
        try:
            plan = client.validate("store_orders")
        except ValidationError as e:
            sys.exit(str(e))
        print(f"valid. batch nodes: {', '.join(plan.batch_nodes)}; streaming nodes: {', '.join(plan.streaming_nodes)}\n")
        started = time.monotonic()
        run = client.execute("store_orders")
        print(f"run {run.id} started (its page: {web_view(addr)}/runs/{run.id}); order files are dropped into {HYBRID.relative_to(ROOT)}/data/incoming_orders as it runs:\n")
        follow_stream(client, run)
        print(f"\nrun {run.id} {run.state.name} in {time.monotonic() - started:.1f}s: "
              + ", ".join(f"{n.name} {n.state.name}" for n in run.nodes))  # fmt: skip
    show_joined(spark_remote)


def follow_stream(client: Client, run: Run) -> None:
    """Print the run's events; drop order files each time the stream has caught up; then stop the run."""
    timed_out = threading.Event()

    def give_up() -> None:
        timed_out.set()
        try:
            client.run(run.id).stop(f"the demo lets a stream run {STREAM_LIMIT:.0f}s at most")
        except FailedPrecondition:
            pass  # it had ended

    guard = threading.Timer(STREAM_LIMIT, give_up)
    guard.start()
    drops = iter(ORDER_DROPS)
    dropped = counted = last = 0
    try:
        for ev in run.watch():
            print(describe_event(ev), flush=True)
            last = ev.sequence
            if isinstance(ev, NodeProgress):
                counted += ev.input_rows
            elif not (isinstance(ev, NodeStateChanged) and ev.state is NodeState.STREAMING):
                continue
            if counted < dropped:
                continue
            files = next(drops, None)
            if files is None:
                break
            subprocess.run([sys.executable, str(HYBRID / "generate_data.py"), "--drop", str(files), "--lines", str(ORDER_LINES)],
                           check=True, stdout=subprocess.DEVNULL)  # fmt: skip
            dropped += files * ORDER_LINES
            print(f"{'':21}-- {files} order files ({files * ORDER_LINES} lines) dropped; {dropped} so far", flush=True)
        if not timed_out.is_set():
            print(f"{'':21}-- every file is processed: run.stop() ends the query after its micro-batch", flush=True)
            try:
                run.stop("the demo has seen every order file processed")
            except FailedPrecondition:
                pass  # it ended meanwhile
    finally:
        guard.cancel()
    for ev in run.watch(after_sequence=last):
        print(describe_event(ev), flush=True)


def show_joined(spark_remote: str) -> None:
    from pyspark.sql import SparkSession, functions as F  # the Spark Connect client; imported late to keep startup quick

    spark = SparkSession.builder.remote(spark_remote).getOrCreate()
    try:
        joined = spark.read.format("delta").load(str(HYBRID / "output" / "gold" / "orders" / "enriched"))
        totals = (joined.groupBy("region")
                  .agg(F.count("*").alias("orders"), F.sum("quantity").alias("units"), F.sum("amount").alias("revenue"))
                  .orderBy(F.desc("revenue")).collect())  # fmt: skip
    finally:
        spark.stop()
    files = list((HYBRID / "data" / "incoming_orders").glob("orders-*.csv"))
    lines = sum(len(f.read_text().splitlines()) - 1 for f in files)  # less each file's header
    print(f"\norders joined with their store, per region ({sum(r['orders'] for r in totals)} of the {lines} order lines"
          f" in {len(files)} files; the closed store's orders join nothing):")  # fmt: skip
    for r in totals:
        print(f"  {r['region']:8} {r['orders']:4} orders  {r['units']:4} units  revenue {r['revenue']:>10,.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pipeline", action="append", choices=sorted([*PIPELINES, EXPERIMENT, "store_orders"]),
                        help="run only this pipeline or experiment (repeatable)")
    parser.add_argument("--addr", help="use a running execd serving examples/projects.yaml instead of starting one")
    parser.add_argument("--spark-remote", help="run on this Spark Connect server instead of execd's embedded one (needed with --addr for the hybrid example)")
    parser.add_argument("--serve", action="store_true", help="keep execd and its web view up after the demo, until Ctrl-C")
    parser.add_argument("--no-mlflow", action="store_true", help="do not start an MLflow tracking server: the sales project's runs are not tracked")
    args = parser.parse_args()
    chosen = args.pipeline or [*PIPELINES, EXPERIMENT, "store_orders"]

    project = ROOT / "examples" / "sales"
    subprocess.run([sys.executable, str(project / "generate_data.py")], check=True)

    execd = ROOT / "bin" / "execd"
    state = ROOT / ".build" / "demo-state"
    proc = None
    mlflow = None if args.no_mlflow or args.addr else start_mlflow(state)
    addr, spark_remote = args.addr, args.spark_remote or ""
    if addr is None:
        proc, addr, spark_remote = start_execd(execd, ROOT / "examples" / "projects.yaml", state, spark_remote=args.spark_remote,
                                               mlflow_uri=mlflow[1] if mlflow else None)  # fmt: skip
    try:
        with Client(addr, project="sales") as client:
            print(f"\nexecd at {addr}; its web view, every project's runs with their graphs, logs and errors live: {web_view(addr)}/")
            print("projects: " + ", ".join(f"{p.name} ({p.state.name.lower()})" for p in client.projects()))
            print("pipelines of sales:")
            for p in client.pipelines():
                print(f"  {p.name:18} {p.type.name.lower():9} {p.node_count} nodes")
            for name in chosen:
                if name in PIPELINES:
                    run_pipeline(client, name, project, web_view(addr), mlflow[1] if mlflow else None, **PIPELINES[name])
            if any(name in PIPELINES for name in chosen):
                out = project / "output"
                print(f"\noutputs under {out}:")
                for table in sorted(p for p in out.glob("*/*/*/*") if p.is_dir()):
                    files = [f for f in table.rglob("*") if f.is_file() and not f.name.startswith((".", "_"))]
                    print(f"  {table.relative_to(out)}  ({len(files)} files)")
                show_report(project)
            if EXPERIMENT in chosen:
                run_experiment(client, mlflow[1] if mlflow else None)
            if mlflow:
                print(f"\nMLflow UI: {mlflow[1]} — open Experiments, then 'tauro-exec sales': a run per pipeline run"
                      " (params: its hyperparameters and window) with its ML node attempts nested under it, and the"
                      " experiment's trials under its own parent; tick two runs and Compare to set their metrics side by side")  # fmt: skip
        if "store_orders" in chosen:
            if spark_remote:
                run_hybrid(addr, spark_remote)
            else:
                print("\nthe hybrid example needs the Spark server's address: pass --spark-remote with --addr")
        if proc is not None and args.serve:
            print(f"\nexecd keeps serving its web view at {web_view(addr)}/ ; Ctrl-C stops it", flush=True)
            try:
                proc.wait()
            except KeyboardInterrupt:
                pass
        elif proc is not None:
            print("\n(make demo DEMO_ARGS=--serve keeps execd and its web view up after the demo)")
    finally:
        if proc is not None:
            stop_execd(proc)
        if mlflow is not None:
            mlflow[0].terminate()
            mlflow[0].wait(timeout=30)


if __name__ == "__main__":
    main()
