"""Exceptions of the client: gRPC status codes become a small hierarchy.

The daemon puts its structured details (google.rpc.BadRequest, ErrorInfo) in the
``grpc-status-details-bin`` trailer; ``from_rpc_error`` decodes them so that a
``ValidationError`` lists every violation, not only the status message.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import grpc
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2

from tauro_exec.models import NodeError

if TYPE_CHECKING:
    from tauro_exec.experiment import Experiment
    from tauro_exec.run import Run

_STATUS_DETAILS_KEY = "grpc-status-details-bin"


class TauroExecError(Exception):
    """Base of every error the client raises.

    ``code`` is the gRPC status code (None when the error did not come from a
    call) and ``details`` the daemon's status message.
    """

    def __init__(self, message: str, *, code: grpc.StatusCode | None = None, details: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.details = details


class NotFound(TauroExecError):
    """The run or pipeline does not exist."""


class FailedPrecondition(TauroExecError):
    """The call does not fit the current state, e.g. repairing a running run."""


class Unavailable(TauroExecError):
    """execd (or the Spark server behind it) cannot be reached."""


class Unauthenticated(TauroExecError):
    """execd requires a token and got none, or one it does not accept."""


class PermissionDenied(TauroExecError):
    """The token's role may not make this call (a viewer starting a run, say)."""


@dataclass(frozen=True)
class Violation:
    """One problem found by validation: where, a stable code, and the fix."""

    field: str
    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.field} [{self.code}]: {self.message}"


class ValidationError(TauroExecError):
    """The request or the pipeline is invalid; ``violations`` lists every problem."""

    def __init__(
        self,
        message: str,
        *,
        violations: list[Violation],
        code: grpc.StatusCode | None = grpc.StatusCode.INVALID_ARGUMENT,
        details: str = "",
    ) -> None:
        self.violations = violations
        if violations:  # the list replaces the status message, which joins them on one line
            message = "\n".join([f"{len(violations)} problem(s):"] + [f"  {v}" for v in violations])
        super().__init__(message, code=code, details=details)


@dataclass(frozen=True)
class NodeFailure:
    """A node that did not succeed and the error of its last attempt."""

    node: str
    error: NodeError

    def __str__(self) -> str:
        text = str(self.error).replace("\n", "\n    ")
        return f"node {self.node}: {text}"


class RunFailed(TauroExecError):
    """A run ended in a state other than SUCCEEDED.

    ``run`` is the run as it ended; ``failures`` holds each failed node's error,
    type, message and traceback.
    """

    def __init__(self, run: Run, failures: list[NodeFailure]) -> None:
        self.run = run
        self.failures = failures
        head = f"run {run.id} of pipeline {run.pipeline} ended {run.state.name}"
        if run.message:
            head += f": {run.message}"
        lines = [head] + [f"  {f}" for f in failures]
        super().__init__("\n".join(lines))


class ExperimentFailed(TauroExecError):
    """An experiment ended FAILED or CANCELLED; ``experiment`` is it as it ended."""

    def __init__(self, experiment: Experiment) -> None:
        self.experiment = experiment
        super().__init__(f"experiment {experiment.id} ended {experiment.state.name}: {experiment.message}")


_BY_CODE: dict[grpc.StatusCode, type[TauroExecError]] = {
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
}


def from_rpc_error(err: grpc.RpcError) -> TauroExecError:
    """The client's exception for a failed gRPC call."""
    code = err.code() if callable(getattr(err, "code", None)) else grpc.StatusCode.UNKNOWN
    details = (err.details() if callable(getattr(err, "details", None)) else None) or ""
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return ValidationError(details or "invalid argument", violations=_violations(err), details=details)
    message = f"{code.name}: {details}" if details else code.name
    if code == grpc.StatusCode.UNAVAILABLE and "connect" in details.lower():
        # gRPC's own message when nothing answers; execd's (Spark is down) differ.
        message += " (is execd running? start it with 'execd serve --project DIR')"
    return _BY_CODE.get(code, TauroExecError)(message, code=code, details=details)


def _violations(err: grpc.RpcError) -> list[Violation]:
    out: list[Violation] = []
    for d in _status_details(err).details:
        br = error_details_pb2.BadRequest()
        if d.Unpack(br):  # False for the other detail types (ErrorInfo, ...)
            out += [Violation(v.field, v.reason, v.description) for v in br.field_violations]
    return out


def _status_details(err: grpc.RpcError) -> status_pb2.Status:
    # grpc returns (key, value) pairs; its type stubs describe objects instead.
    trailers = cast(
        "Sequence[tuple[str, str | bytes]] | None",
        err.trailing_metadata() if callable(getattr(err, "trailing_metadata", None)) else None,
    )
    for key, value in trailers or ():
        if key == _STATUS_DETAILS_KEY and isinstance(value, bytes):
            try:
                return status_pb2.Status.FromString(value)
            except DecodeError:  # a malformed trailer must not hide the status itself
                break
    return status_pb2.Status()
