"""The control pipe to execd (``--control-fd``), one line per fact.

execd's worker pool (internal/pyworker) reads these lines; they must stay as
they are:

    ready              the worker serves on its socket
    session {json}     it opened a Spark Connect session: remote, session_id, user_id
    done CALL_ID       a node call's code has really ended, which after a
                       cancel may be later than the call
"""

from __future__ import annotations

import json
import threading
from typing import IO


class Control:
    """The line protocol to execd on the control pipe (or nowhere)."""

    def __init__(self, out: IO[str] | None) -> None:
        self._out = out
        self._lock = threading.Lock()

    def ready(self) -> None:
        self._send("ready")

    def session(self, remote: str, session_id: str, user_id: str) -> None:
        # execd ends this session on the server if the worker dies mid-node,
        # so that its Spark work does not run on unowned.
        self._send("session " + json.dumps({"remote": remote, "session_id": session_id, "user_id": user_id}))

    def done(self, call_id: str) -> None:
        self._send(f"done {call_id}")

    def _send(self, line: str) -> None:
        if self._out is None:
            return
        with self._lock:
            try:
                self._out.write(line + "\n")
                self._out.flush()
            except OSError:
                pass  # execd is gone; stdin's end stops us
