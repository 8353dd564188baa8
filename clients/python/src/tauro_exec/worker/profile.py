"""Where a node call's time goes in the worker, for ``execd serve --profile-nodes``.

The worker reports each call's phases and the Spark Connect requests it sent
as metrics of the node (worker.phase.<phase>_ms, worker.calls.<kind> and
worker.calls), beside execd's own execd.phase.* and execd.calls.*.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import grpc

from tauro_exec._proto.tauro.exec.v1 import worker_pb2 as pb


def request_kind(method: str, request: Any) -> str:
    """A Spark Connect request's kind: its method, with what it analyses,
    runs or configures (AnalyzePlan.schema, ExecutePlan.root,
    ExecutePlan.create_dataframe_view, Config.set)."""
    name = method.rsplit("/", 1)[-1]
    which: str | None = None
    if name == "AnalyzePlan":
        which = request.WhichOneof("analyze")
    elif name == "ExecutePlan":
        which = request.plan.WhichOneof("op_type")
        if which == "command":
            which = request.plan.command.WhichOneof("command_type")
    elif name == "Config":
        which = request.operation.WhichOneof("op_type")
    return f"{name}.{which}" if which else name


class Calls(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    """Counts the requests sent on a Spark Connect channel, by kind."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def counts(self) -> Counter[str]:
        with self._lock:
            return Counter(self._counts)

    def _count(self, details: grpc.ClientCallDetails, request: Any) -> None:
        kind = request_kind(details.method, request)
        with self._lock:
            self._counts[kind] += 1

    def intercept_unary_unary(self, continuation: Callable[..., Any], details: grpc.ClientCallDetails, request: Any) -> Any:
        self._count(details, request)
        return continuation(details, request)

    def intercept_unary_stream(self, continuation: Callable[..., Any], details: grpc.ClientCallDetails, request: Any) -> Any:
        self._count(details, request)
        return continuation(details, request)


class Profile:
    """One node call's phases and, when calls counts the worker's requests,
    the requests sent during it. The worker runs one node at a time, so
    every request counted between start and metrics is the call's."""

    def __init__(self, calls: Calls | None) -> None:
        self._calls = calls
        self._before = calls.counts() if calls is not None else Counter()
        self._last = time.perf_counter()
        self._ms: dict[str, float] = {}

    def phase(self, name: str) -> None:
        """Ends the phase under way and names it."""
        now = time.perf_counter()
        self._ms[name] = self._ms.get(name, 0.0) + (now - self._last) * 1000
        self._last = now

    def metrics(self) -> list[pb.WorkerMetric]:
        """The call's phases and requests as node metrics; none unless the
        worker profiles (its requests are counted)."""
        if self._calls is None:
            return []
        out = [pb.WorkerMetric(name=f"worker.phase.{p}_ms", value=ms) for p, ms in self._ms.items()]
        sent = self._calls.counts() - self._before
        out += [pb.WorkerMetric(name=f"worker.calls.{k}", value=n) for k, n in sorted(sent.items())]
        out.append(pb.WorkerMetric(name="worker.calls", value=sum(sent.values())))
        return out
