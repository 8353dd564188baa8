"""execd's own memory at scale: one run of 2,000 no-op nodes, 200 watchers.

    python bench/peer/scale.py [--nodes 2000] [--watchers 200] [--runs 3]

It generates a project of N SQL nodes (50 wide, each depending on the node
above it; `SELECT 1 AS x`, no outputs, so Spark only analyses them), starts
execd on a Spark Connect server (TAURO_SPARK_REMOTE, else one it starts),
then for each run: starts it, opens W WatchRun streams from the first event,
and samples execd's resident memory (VmRSS) four times a second until every
watcher has seen the run's last event. It prints the run's wall time, the
events each watcher saw (all must see all), and execd's RSS: idle before
the first run, the peak during each run and after each run; and, from
execd's metrics endpoint five seconds after each run, the heap the last
garbage collection found live and the goroutines. "Steady" means they do
not grow from run to run: nothing of a finished run stays in memory. (The
RSS after a run stays above its idle value: Go keeps freed memory a few
minutes before giving it back to the system.)
"""

from __future__ import annotations

import argparse
import os
import socket
import urllib.request
import pathlib
import shutil
import sys
import tempfile
import threading
import time

import yaml

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from peer import start_execd, start_spark  # noqa: E402
from workloads import ROOT, Workload  # noqa: E402

import grpc  # noqa: E402

from tauro_exec import Client, RunState  # noqa: E402
from tauro_exec._proto.tauro.exec.v1 import exec_pb2 as pb  # noqa: E402
from tauro_exec._proto.tauro.exec.v1 import exec_pb2_grpc as pb_grpc  # noqa: E402

WIDE = 50


def rss_kib(pid: int) -> int:
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def go_stats(metrics: str) -> tuple[float, int]:
    """The heap the last collection found live (MiB) and the goroutines,
    from execd's metrics."""
    heap, goroutines = 0.0, 0
    for line in urllib.request.urlopen(metrics, timeout=10).read().decode().splitlines():
        if line.startswith("go_gc_heap_live_bytes "):
            heap = float(line.split()[1]) / 2**20
        elif line.startswith("go_goroutines "):
            goroutines = int(float(line.split()[1]))
    return heap, goroutines


def project(tmp: pathlib.Path, n: int) -> pathlib.Path:
    p = tmp / "scale"
    (p / "config").mkdir(parents=True)
    (p / "settings_yml.json").write_text(
        '{"base_path": ".", "env_config": {"base": {'
        '"global_settings_path": "config/global_settings.yaml", "pipelines_config_path": "config/pipelines.yaml",'
        '"nodes_config_path": "config/nodes.yaml", "input_config_path": "config/input.yaml",'
        '"output_config_path": "config/output.yaml"}, "dev": {}}}'
    )
    nodes = {}
    for i in range(n):
        node: dict[str, object] = {"sql": "SELECT 1 AS x"}
        if i >= WIDE:
            node["dependencies"] = [f"n{i - WIDE}"]
        nodes[f"n{i}"] = node
    files = {
        "global_settings": {"project_name": "scale", "output_path": "output", "mode": "local", "requires_dates": False,
                            "max_parallel_nodes": 8, "max_retries": 0},
        "input": {}, "output": {}, "nodes": nodes,
        "pipelines": {"wide": {"type": "batch", "nodes": list(nodes)}},
    }
    for name, body in files.items():
        (p / "config" / f"{name}.yaml").write_text(yaml.safe_dump(body, sort_keys=False))
    return p


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=2000)
    ap.add_argument("--watchers", type=int, default=200)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--execd", default=str(ROOT / "bin" / "execd"))
    a = ap.parse_args()
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="scale-"))
    spark = None
    remote = os.environ.get("TAURO_SPARK_REMOTE", "")
    try:
        if not remote:
            spark, remote = start_spark(pathlib.Path(a.execd), tmp)
        w = Workload(name="scale", project=project(tmp, a.nodes), pipeline="wide", width=8, sources={}, nodes=[])
        port = free_port()
        metrics = f"http://127.0.0.1:{port}/metrics"
        proc, addr = start_execd(pathlib.Path(a.execd), w, remote, tmp / "state", profile=False,
                                 extra=("--metrics-listen", f"127.0.0.1:{port}"))
        time.sleep(2)
        idle = rss_kib(proc.pid)
        heap, goroutines = go_stats(metrics)
        print(f"execd idle: {idle / 1024:.0f} MiB RSS, live heap {heap:.0f} MiB, {goroutines} goroutines; "
              f"{a.nodes} nodes, {a.watchers} watchers per run")
        channels = [grpc.insecure_channel(addr) for _ in range(4)]
        stubs = [pb_grpc.ExecServiceStub(c) for c in channels]
        with Client(addr) as client:
            for i in range(a.runs):
                t0 = time.time()
                run = client.execute("wide")
                counts = [0] * a.watchers
                states: list[RunState] = [RunState.UNSPECIFIED] * a.watchers

                def watch(k: int, run_id: str = run.id) -> None:
                    # The raw stream: the client's own watch() builds an
                    # event object per message, which at 200 x 4,000 events
                    # measures Python, not execd.
                    stub = stubs[k % len(stubs)]
                    for resp in stub.WatchRun(pb.WatchRunRequest(run_id=run_id)):
                        counts[k] += 1
                        if resp.event.HasField("run_state_changed"):
                            states[k] = RunState(resp.event.run_state_changed.state)

                threads = [threading.Thread(target=watch, args=(k,), daemon=True) for k in range(a.watchers)]
                for t in threads:
                    t.start()
                peak = 0
                while any(t.is_alive() for t in threads):
                    peak = max(peak, rss_kib(proc.pid))
                    time.sleep(0.25)
                wall = time.time() - t0
                after = rss_kib(proc.pid)
                final = run.refresh()
                time.sleep(5)
                heap, goroutines = go_stats(metrics)
                ok = len(set(counts)) == 1 and all(s is RunState.SUCCEEDED for s in states)
                print(f"run {i + 1}: {final.state.name} in {wall:.1f}s; each watcher saw {min(counts)}..{max(counts)} events"
                      f"{'' if ok else ' (WATCHERS DISAGREE)'}; execd RSS peak {peak / 1024:.0f} MiB, after {after / 1024:.0f} MiB; "
                      f"5 s later live heap {heap:.0f} MiB, {goroutines} goroutines")
                if not ok or final.state is not RunState.SUCCEEDED:
                    sys.exit(1)
        proc.terminate()
        proc.wait(timeout=60)
    finally:
        if spark is not None:
            spark.terminate()
            spark.wait(timeout=120)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
