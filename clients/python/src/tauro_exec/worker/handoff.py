"""Handing a node's result to execd as a plan rather than as a view.

A worker that makes its node's result view spends a round trip to Spark on
it, and execd one more on caching the view. execd can make the view, the
cache and the aliases its SQL nodes read in one round trip of its own when
it has the result's plan. That is only the same result when the plan means
in execd's session what it means in the worker's: it may read only the
node's input views (global views both sessions see) and files, and the
function must have left the worker's session as it found it. Everything
else is published by the worker itself, as before.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection
from typing import Any

import grpc
from google.protobuf import json_format
from pyspark.sql import DataFrame

log = logging.getLogger("tauro_exec.worker")

# Relations whose meaning is in the session that built them: SQL text
# (parsed where it runs, and run there already if it was a command), data
# uploaded to the session, checkpoints, the session's catalog, and what the
# protocol leaves open.
_SESSION_RELATIONS = frozenset(
    {
        "sql",
        "with_relations",
        "cached_local_relation",
        "chunked_cached_local_relation",
        "cached_remote_relation",
        "catalog",
        "unresolved_table_valued_function",
        "relation_changes",
        "ml_relation",
        "extension",
        "unknown",
    }
)

# Inline rows travel in the plan; beyond this they are left to the worker.
MAX_LOCAL_BYTES = 1 << 20


# Commands that leave the session as it was for a plan handed to execd: a
# write, and a view (a plan that reads a view of the worker's session is
# kept by the worker: portable_plan).
_KEEPING_COMMANDS = frozenset({"write_operation", "write_operation_v2", "create_dataframe_view"})


class SessionChanges(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """Counts the requests that may change how the session on the server
    reads a plan: a conf set or unset, uploaded artifacts, and a command
    other than a write, a view or a query (a SQL statement that is not a
    query, a registered function, a streaming query)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._n = 0

    def count(self) -> int:
        with self._lock:
            return self._n

    def _see(self, details: grpc.ClientCallDetails, request: Any) -> None:
        name = details.method.rsplit("/", 1)[-1]
        if name == "Config":
            changes = request.operation.WhichOneof("op_type") in ("set", "unset")
        elif name == "ExecutePlan" and request.plan.WhichOneof("op_type") == "command":
            command = request.plan.command
            kind = command.WhichOneof("command_type")
            if kind == "sql_command":
                changes = not _reads_only(_sql_text(command.sql_command))
            else:
                changes = kind not in _KEEPING_COMMANDS
        else:
            changes = name == "AddArtifacts"
        if changes:
            with self._lock:
                self._n += 1

    def intercept_unary_unary(self, continuation: Callable[..., Any], details: grpc.ClientCallDetails, request: Any) -> Any:
        self._see(details, request)
        return continuation(details, request)

    def intercept_unary_stream(self, continuation: Callable[..., Any], details: grpc.ClientCallDetails, request: Any) -> Any:
        self._see(details, request)
        return continuation(details, request)

    def intercept_stream_unary(self, continuation: Callable[..., Any], details: grpc.ClientCallDetails, requests: Any) -> Any:
        self._see(details, None)
        return continuation(details, requests)

    def intercept_stream_stream(self, continuation: Callable[..., Any], details: grpc.ClientCallDetails, requests: Any) -> Any:
        self._see(details, None)
        return continuation(details, requests)


def _sql_text(cmd: Any) -> str:
    """The statement of a SqlCommand, as PySpark sends it (its input) or as
    older clients did."""
    rel = cmd.input
    if rel.WhichOneof("rel_type") == "with_relations":
        rel = rel.with_relations.root
    if rel.WhichOneof("rel_type") == "sql":
        return str(rel.sql.query)
    return str(cmd.sql)


_READING = ("select", "with", "from", "values", "table", "(", "show", "describe", "desc", "explain")


def _reads_only(sql: str) -> bool:
    """Whether the statement only reads: spark.sql("SELECT ...") leaves the
    session as it was; SET, CREATE TEMPORARY VIEW or FUNCTION, USE do not."""
    text = sql.lstrip()
    while text.startswith(("--", "/*")):
        end = text.find("\n") + 1 if text.startswith("--") else text.find("*/") + 2
        if end <= 1:
            return False
        text = text[end:].lstrip()
    return text.lower().startswith(_READING)


def portable_plan(df: DataFrame, inputs: Collection[str]) -> str | None:
    """df's plan as a spark.connect.Relation in protojson, or None when it
    may mean something else outside the worker's session (see the module)."""
    try:
        connect: Any = df  # pyspark.sql.connect.dataframe.DataFrame
        root = connect._plan.to_proto(connect.sparkSession.client).root
        if not _portable(root, frozenset(inputs)):
            return None
        return json_format.MessageToJson(root, indent=None)
    except Exception:  # a plan it cannot read is the worker's to publish
        log.debug("the result's plan is not handed to execd", exc_info=True)
        return None


def _portable(msg: Any, inputs: frozenset[str]) -> bool:
    name = msg.DESCRIPTOR.full_name
    if name == "spark.connect.Relation" and msg.WhichOneof("rel_type") in _SESSION_RELATIONS:
        return False
    if name == "spark.connect.Read.NamedTable" and msg.unparsed_identifier not in inputs:
        return False
    if name == "spark.connect.LocalRelation" and len(msg.data) + len(msg.schema) > MAX_LOCAL_BYTES:
        return False
    if name == "spark.connect.Expression":
        kind = msg.WhichOneof("expr_type")
        # A function called by name may be one the session registered.
        if kind in ("call_function", "typed_aggregate_expression", "extension"):
            return False
        if kind == "unresolved_function" and msg.unresolved_function.is_user_defined_function:
            return False
    for field, value in msg.ListFields():
        if field.message_type is None:
            continue
        if field.is_repeated:
            if field.message_type.GetOptions().map_entry:
                if field.message_type.fields_by_name["value"].message_type is None:
                    continue
                value = value.values()
            if not all(_portable(v, inputs) for v in value):
                return False
        elif not _portable(value, inputs):
            return False
    return True


__all__ = ["MAX_LOCAL_BYTES", "SessionChanges", "portable_plan"]
