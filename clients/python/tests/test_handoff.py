"""Which results the worker hands execd as plans, and which session changes stop it, without Spark."""

from __future__ import annotations

from typing import Any, NamedTuple

import pyspark.sql.connect.proto as proto
import pytest

from tauro_exec.worker.handoff import MAX_LOCAL_BYTES, SessionChanges, _portable, _reads_only

INPUT = "global_temp.`tauro_r1__in__orders`"


def named(identifier: str) -> proto.Relation:
    return proto.Relation(read=proto.Read(named_table=proto.Read.NamedTable(unparsed_identifier=identifier)))


def filtered(rel: proto.Relation, expr: proto.Expression) -> proto.Relation:
    return proto.Relation(filter=proto.Filter(input=rel, condition=expr))


def function(name: str, udf: bool = False) -> proto.Expression:
    return proto.Expression(unresolved_function=proto.Expression.UnresolvedFunction(function_name=name, is_user_defined_function=udf))


def test_a_plan_of_the_inputs_files_and_builtin_functions_is_portable() -> None:
    files = proto.Relation(read=proto.Read(data_source=proto.Read.DataSource(format="csv", paths=["/in/x.csv"])))
    joined = proto.Relation(join=proto.Join(left=named(INPUT), right=files, join_type=proto.Join.JOIN_TYPE_INNER))
    assert _portable(filtered(joined, function("isnotnull")), frozenset({INPUT}))
    small = proto.Relation(local_relation=proto.LocalRelation(data=b"x" * 100, schema="a INT"))
    assert _portable(small, frozenset())


@pytest.mark.parametrize(
    "rel",
    [
        pytest.param(named("mine"), id="a view of the worker's session"),
        pytest.param(filtered(named(INPUT), function("plus_one", udf=True)), id="a registered function"),
        pytest.param(
            filtered(named(INPUT), proto.Expression(call_function=proto.CallFunction(function_name="plus_one"))),
            id="a function called by name",
        ),
        pytest.param(proto.Relation(sql=proto.SQL(query="SELECT * FROM mine")), id="SQL text"),
        pytest.param(proto.Relation(cached_remote_relation=proto.CachedRemoteRelation(relation_id="c1")), id="a checkpoint"),
        pytest.param(proto.Relation(cached_local_relation=proto.CachedLocalRelation(hash="h")), id="uploaded rows"),
        pytest.param(proto.Relation(local_relation=proto.LocalRelation(data=b"x" * (MAX_LOCAL_BYTES + 1))), id="many inline rows"),
    ],
)
def test_a_plan_that_needs_the_workers_session_is_kept_by_the_worker(rel: proto.Relation) -> None:
    # Nested under a projection, as a function's result usually is.
    assert not _portable(proto.Relation(project=proto.Project(input=rel)), frozenset({INPUT}))


@pytest.mark.parametrize(
    ("sql", "reads"),
    [
        ("SELECT 1", True),
        ("  with t AS (SELECT 1) SELECT * FROM t", True),
        ("-- the totals\nSELECT 1", True),
        ("/* x */ VALUES (1)", True),
        ("SHOW VIEWS IN global_temp", True),
        ("SET spark.sql.ansi.enabled=false", False),
        ("CREATE TEMPORARY VIEW v AS SELECT 1", False),
        ("CREATE TEMPORARY FUNCTION f AS 'x'", False),
        ("USE other", False),
        ("-- only a comment", False),
        ("/* unclosed", False),
    ],
)
def test_only_a_query_leaves_the_session_as_it_was(sql: str, reads: bool) -> None:
    assert _reads_only(sql) is reads


class _Details(NamedTuple):
    method: str


def _see(changes: SessionChanges, method: str, request: Any) -> None:
    changes.intercept_unary_unary(lambda d, r: None, _Details("/spark.connect.SparkConnectService/" + method), request)


def test_session_changes_count_settings_commands_and_artifacts_but_not_reads_writes_or_views() -> None:
    changes = SessionChanges()
    cfg = proto.ConfigRequest
    _see(changes, "Config", cfg(operation=cfg.Operation(get=cfg.Get(keys=["k"]))))
    _see(changes, "AnalyzePlan", proto.AnalyzePlanRequest())
    _see(changes, "ExecutePlan", proto.ExecutePlanRequest(plan=proto.Plan(root=named(INPUT))))
    for command in (
        proto.Command(write_operation=proto.WriteOperation(input=named(INPUT), path="/out")),
        proto.Command(create_dataframe_view=proto.CreateDataFrameViewCommand(input=named(INPUT), name="v")),
        proto.Command(sql_command=proto.SqlCommand(input=proto.Relation(sql=proto.SQL(query="SELECT 1")))),
    ):
        _see(changes, "ExecutePlan", proto.ExecutePlanRequest(plan=proto.Plan(command=command)))
    assert changes.count() == 0
    _see(changes, "Config", cfg(operation=cfg.Operation(set=cfg.Set(pairs=[proto.KeyValue(key="k", value="v")]))))
    _see(changes, "Config", cfg(operation=cfg.Operation(unset=cfg.Unset(keys=["k"]))))
    set_sql = proto.Command(sql_command=proto.SqlCommand(input=proto.Relation(sql=proto.SQL(query="SET a=b"))))
    _see(changes, "ExecutePlan", proto.ExecutePlanRequest(plan=proto.Plan(command=set_sql)))
    udf = proto.Command(register_function=proto.CommonInlineUserDefinedFunction(function_name="plus_one"))
    _see(changes, "ExecutePlan", proto.ExecutePlanRequest(plan=proto.Plan(command=udf)))
    changes.intercept_stream_unary(lambda d, r: None, _Details("/spark.connect.SparkConnectService/AddArtifacts"), iter(()))
    assert changes.count() == 5
