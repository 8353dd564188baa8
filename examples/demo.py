"""The tauro-exec demo: what `make demo` runs.

It writes the sales example's input, starts execd on the embedded local Spark,
then drives it with the Python client the way a notebook would: validate each
pipeline, execute it, follow every node's state live, and show the result.
daily_sales is all SQL; customer_insights is all Python (pipelines/customers.py)
with an ML-style scoring node that reads its hyperparameters from ml_context.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import signal
import subprocess
import sys
import time
from typing import Any

from tauro_exec import Client, RunFailed, ValidationError

ROOT = pathlib.Path(__file__).resolve().parent.parent


def start_execd(execd: pathlib.Path, project: pathlib.Path, state: pathlib.Path) -> tuple[subprocess.Popen[str], str]:
    log = (state / "execd.log").open("w")
    proc = subprocess.Popen(
        [str(execd), "serve", "--project", str(project), "--state", str(state), "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    assert proc.stdout is not None
    print("starting execd and its embedded Spark Connect server (the first start takes a little while) ...", flush=True)
    for line in proc.stdout:
        if line.startswith("execd listening on "):
            return proc, line.split()[-1]
    proc.wait()
    log.close()
    sys.exit(f"execd did not start; see {state / 'execd.log'}:\n" + (state / "execd.log").read_text()[-3000:])


# What the demo runs: the SQL pipeline, then the Python one with a request
# hyperparameter that overrides the project's (node settings still win).
PIPELINES: dict[str, dict[str, Any]] = {
    "daily_sales": {},
    "customer_insights": {"hyperparams": {"monetary_weight": 0.6}},
}


def run_pipeline(client: Client, name: str, project: pathlib.Path, **extra: Any) -> None:
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
    print(f"run {run.id} started; following it live:\n")
    try:
        run.wait(progress=True)
    except RunFailed as e:
        print(e)
        sys.exit(1)
    print(f"\nrun {run.id} {run.state.name} in {time.monotonic() - started:.1f}s")
    if "hyperparams" in extra:  # an ML pipeline: what the run used (nodes may override)
        print(f"model {run.model_version}, run hyperparameters {run.hyperparams}")
    print()
    for n in run.nodes:
        took = f"{n.duration.total_seconds():.2f}s" if n.duration else ""
        metrics = {k: round(v, 3) for k, v in n.attempts[-1].metrics.items() if not k.startswith("rows_written")} if n.attempts else {}
        print(f"  {n.name:18} {n.state.name:10} attempt {n.attempt}  {took:>6}  {metrics or ''}")


def show_report(project: pathlib.Path) -> None:
    report = project / "output" / "dev" / "gold" / "customers" / "segment_report"
    if not report.is_dir():
        return
    import pyarrow.parquet as pq  # pyspark's dependency; imported late to keep startup quick

    print("\ncustomer segments, January 2025:")
    for row in sorted(pq.read_table(report).to_pylist(), key=lambda r: -r["revenue"]):
        print(f"  {row['segment']:11} {row['customers']:3} customers  revenue {row['revenue']:>10,.2f}"
              f"  mean score {row['mean_score']:.3f}  top product {row['top_product']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pipeline", action="append", choices=sorted(PIPELINES), help="run only this pipeline (repeatable)")
    parser.add_argument("--addr", help="use a running execd instead of starting one")
    args = parser.parse_args()

    project = ROOT / "examples" / "sales"
    subprocess.run([sys.executable, str(project / "generate_data.py")], check=True)

    proc = None
    addr = args.addr
    if addr is None:
        state = ROOT / ".build" / "demo-state"
        state.mkdir(parents=True, exist_ok=True)
        proc, addr = start_execd(ROOT / "bin" / "execd", project, state)
    try:
        with Client(addr) as client:
            print(f"\nexecd at {addr}; pipelines:")
            for p in client.pipelines():
                print(f"  {p.name:18} {p.type.name.lower():9} {p.node_count} nodes")
            for name in args.pipeline or list(PIPELINES):
                run_pipeline(client, name, project, **PIPELINES[name])
            out = project / "output"
            print(f"\noutputs under {out}:")
            for table in sorted(p for p in out.glob("*/*/*/*") if p.is_dir()):
                files = [f for f in table.rglob("*") if f.is_file() and not f.name.startswith((".", "_"))]
                print(f"  {table.relative_to(out)}  ({len(files)} files)")
            show_report(project)
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)


if __name__ == "__main__":
    main()
