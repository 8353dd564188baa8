"""The tauro-exec demo: what `make demo` runs.

It writes the sales example's input, starts execd on the embedded local Spark,
then drives it with the Python client the way a notebook would: validate the
pipeline, execute it, follow every node's state live, and show the result.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import signal
import subprocess
import sys
import time

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pipeline", default="daily_sales")
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
                print(f"  {p.name:16} {p.type.name.lower():9} {p.node_count} nodes")
            try:
                plan = client.validate(args.pipeline)
            except ValidationError as e:
                sys.exit(str(e))
            print(f"\n{args.pipeline} is valid. Stages (nodes of a stage may run side by side):")
            for i, stage in enumerate(plan.stages):
                print(f"  {i}: {', '.join(stage)}")
            print(f"critical path: {' -> '.join(plan.critical_path)}\n")

            started = time.monotonic()
            run = client.execute(args.pipeline, start_date="2025-01-01", end_date="2025-01-31")
            print(f"run {run.id} started; following it live:\n")
            try:
                run.wait(progress=True)
            except RunFailed as e:
                print(e)
                sys.exit(1)
            print(f"\nrun {run.id} {run.state.name} in {time.monotonic() - started:.1f}s\n")
            for n in run.nodes:
                took = f"{n.duration.total_seconds():.2f}s" if n.duration else ""
                print(f"  {n.name:16} {n.state.name:10} attempt {n.attempt}  {took}")
            out = project / "output"
            print(f"\noutputs under {out}:")
            for table in sorted(p for p in out.glob("*/*/*/*") if p.is_dir()):
                files = [f for f in table.rglob("*") if f.is_file() and not f.name.startswith((".", "_"))]
                print(f"  {table.relative_to(out)}  ({len(files)} files)")
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)


if __name__ == "__main__":
    main()
