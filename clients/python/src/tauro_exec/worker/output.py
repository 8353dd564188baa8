"""What a node prints or logs, sent back as WorkerLog events of its call."""

from __future__ import annotations

import io
import logging
import queue
import threading
from typing import IO

from tauro_exec._proto.tauro.exec.v1 import worker_pb2 as pb

# The events of one node call, in the order it sends them; None ends them.
NodeEvents = queue.Queue[pb.RunNodeResponse | None]


class LogForward(logging.Handler):
    """Sends the log records one node's thread emits back as WorkerLog events."""

    def __init__(self, events: NodeEvents, thread: int) -> None:
        super().__init__(logging.INFO)
        self._events, self._thread = events, thread

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread != self._thread:
            return
        level = "warning" if record.levelno >= logging.WARNING else "info"
        self._events.put(pb.RunNodeResponse(log=pb.WorkerLog(level=level, text=self.format(record))))


class NodeOutput(io.TextIOBase):
    """sys.stdout or sys.stderr of a worker: what a node's thread prints becomes its events.

    print() in node code shows on the node's run as log lines, as a task's
    output does in other schedulers; other threads write to the real stream.
    A node's lines are capped so that a print in a hot loop cannot flood the
    run's event log.
    """

    MAX_LINES = 1000
    MAX_LINE = 8192

    def __init__(self, real: IO[str], level: str) -> None:
        super().__init__()
        self._real, self._level = real, level
        self._lock = threading.Lock()
        self._nodes: dict[int, tuple[NodeEvents, list[str], list[int]]] = {}

    def attach_node(self, events: NodeEvents) -> None:
        with self._lock:
            self._nodes[threading.get_ident()] = (events, [], [0])

    def detach_node(self) -> None:
        with self._lock:
            node = self._nodes.pop(threading.get_ident(), None)
        if node is not None and node[1]:
            self._emit(node, "".join(node[1]))

    def _emit(self, node: tuple[NodeEvents, list[str], list[int]], line: str) -> None:
        events, _, count = node
        count[0] += 1
        if count[0] > self.MAX_LINES:
            if count[0] == self.MAX_LINES + 1:
                text = f"more printed output was dropped (a node keeps at most {self.MAX_LINES} lines)"
                events.put(pb.RunNodeResponse(log=pb.WorkerLog(level="warning", text=text)))
            return
        if len(line) > self.MAX_LINE:
            line = line[: self.MAX_LINE] + " [line cut]"
        events.put(pb.RunNodeResponse(log=pb.WorkerLog(level=self._level, text=line)))

    def write(self, text: str) -> int:
        node = self._nodes.get(threading.get_ident())
        if node is None:
            return self._real.write(text)
        pending = node[1]
        pending.append(text)
        if "\n" in text:
            *lines, rest = "".join(pending).split("\n")
            pending[:] = [rest] if rest else []
            for line in lines:
                self._emit(node, line)
        return len(text)

    def flush(self) -> None:
        self._real.flush()

    def fileno(self) -> int:
        return self._real.fileno()

    def isatty(self) -> bool:
        return False

    def writable(self) -> bool:
        return True

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._real, "encoding", "utf-8")
