"""The node worker execd starts: ``python -m tauro_exec.worker --socket PATH --project DIR``.

It serves WorkerService on the socket until SIGTERM or SIGINT, or, with
``--watch-stdin``, until its stdin closes.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from concurrent import futures
from pathlib import Path

import grpc

from tauro_exec._proto.tauro.exec.v1 import worker_pb2_grpc as pb_grpc
from tauro_exec.worker.control import Control
from tauro_exec.worker.functions import project_roots
from tauro_exec.worker.output import NodeOutput
from tauro_exec.worker.service import NodeWorker

REMOTE_ENV = "TAURO_WORKER_SPARK_REMOTE"


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tauro_exec.worker", description=__doc__.split("\n")[0] if __doc__ else None)
    p.add_argument("--socket", required=True, help="Unix socket path to serve on")
    p.add_argument("--project", default=".", help="tauro project folder; it and its src/ and lib/ go on sys.path")
    p.add_argument("--allowed-prefixes", nargs="*", default=[], help="modules node functions may come from (default: the project's packages)")
    p.add_argument(
        "--spark-remote",
        default=os.environ.pop(REMOTE_ENV, ""),  # execd's way: a token on the command line would show in ps
        help=f"Spark Connect URL used when a node names none (default: ${REMOTE_ENV})",
    )
    p.add_argument("--control-fd", type=int, default=-1, help="file descriptor for execd's control lines")
    p.add_argument("--profile", action="store_true", help="report each node call's phases and Spark Connect requests as metrics")
    p.add_argument("--watch-stdin", action="store_true", help="exit when stdin closes (execd holds its other end)")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    # pyspark.sql.SparkSession's class methods then answer with Connect sessions.
    os.environ["SPARK_CONNECT_MODE_ENABLED"] = "1"
    # A node's stderr becomes its warnings: MLflow's upload and download
    # progress bars there would be noise on the run, not progress.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger().handlers[0].setLevel(logging.WARNING)  # node logs go to execd, not twice to stderr
    sys.stdout = NodeOutput(sys.stdout, "info")
    sys.stderr = NodeOutput(sys.stderr, "warning")
    project = Path(args.project).resolve()
    roots = project_roots(project)
    sys.path[:0] = [str(r) for r in roots if str(r) not in sys.path]
    control = Control(os.fdopen(args.control_fd, "w") if args.control_fd >= 0 else None)

    worker = NodeWorker(roots, args.allowed_prefixes, args.spark_remote, control, profile=args.profile)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="worker-rpc"))
    pb_grpc.add_WorkerServiceServicer_to_server(worker, server)
    if server.add_insecure_port("unix:" + args.socket) == 0:
        print(f"cannot listen on unix:{args.socket}", file=sys.stderr)
        return 1
    server.start()

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    if args.watch_stdin:

        def watch() -> None:
            sys.stdin.buffer.read()
            stop.set()

        threading.Thread(target=watch, daemon=True).start()
    control.ready()
    stop.wait()
    server.stop(grace=5).wait()
    worker.close()
    sys.stdout.flush()
    sys.stderr.flush()
    # PySpark's client threads can hold a normal interpreter exit for minutes.
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
