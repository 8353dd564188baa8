"""The worker's loading and signature rules, without Spark."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tauro_exec.worker import (
    CallForm,
    FunctionError,
    ProjectCode,
    accepts_ml_context,
    call_arguments,
    call_form,
    load_function,
    project_packages,
    project_roots,
)


def _forget_mypkg() -> None:
    for name in [n for n in sys.modules if n == "mypkg" or n.startswith("mypkg.")]:
        del sys.modules[name]


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Path]:
    (tmp_path / "src" / "mypkg").mkdir(parents=True)
    (tmp_path / "src" / "mypkg" / "__init__.py").write_text("")
    (tmp_path / "src" / "mypkg" / "nodes.py").write_text("def fn(df, *, start_date, end_date):\n    return df\nVALUE = 3\n")
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "helpers.py").write_text("")
    (tmp_path / "data").mkdir()  # no Python in it: not a package
    (tmp_path / "os.py").write_text("")  # shadows the stdlib: never a project module
    _forget_mypkg()  # each test's mypkg is its own
    yield tmp_path
    _forget_mypkg()


def test_project_packages_are_the_top_level_python_of_the_project_src_and_lib(project: Path) -> None:
    assert project_roots(project) == [project, project / "src", project / "lib"]
    assert project_packages(project_roots(project)) == ["helpers", "mypkg"]


def test_load_function_refuses_the_standard_library_and_modules_outside_the_prefixes() -> None:
    with pytest.raises(FunctionError, match="not a project module"):
        load_function("subprocess", "run", ["subprocess"])
    with pytest.raises(FunctionError, match="not a project module"):
        load_function("importlib.util", "find_spec", ["importlib"])
    with pytest.raises(FunctionError, match="outside the allowed modules"):
        load_function("yaml", "safe_load", ["mypkg"])


def test_load_function_imports_project_functions_and_names_what_is_missing(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(project / "src"))
    assert load_function("mypkg.nodes", "fn", ["mypkg"]).__name__ == "fn"
    with pytest.raises(FunctionError, match="has no attribute 'nope'"):
        load_function("mypkg.nodes", "nope", ["mypkg"])
    with pytest.raises(FunctionError, match="is a int, not a function"):
        load_function("mypkg.nodes", "VALUE", ["mypkg"])


def _two(a: object, b: object, *, start_date: str, end_date: str) -> None: ...
def _ml(*, start_date: str, end_date: str, ml_context: object) -> None: ...
def _kwargs(*dfs: object, **kwargs: object) -> None: ...
def _no_dates(a: object) -> None: ...


def _tauro(input_df: object, node_config: dict[str, Any]) -> None: ...
def _tauro_ml(input_df: object, node_config: dict[str, Any], *, ml_context: object) -> None: ...
def _tauro_one_date(input_df: object, node_config: dict[str, Any], start_date: str = "") -> None: ...
def _either(input_df: object, node_config: object = None, *, start_date: str, end_date: str) -> None: ...


@pytest.mark.parametrize(
    ("fn", "inputs", "problem"),
    [
        (_two, 2, None),
        (_two, 1, "missing a required argument"),
        (_two, 3, "too many positional arguments"),
        (_ml, 0, None),
        (_kwargs, 5, None),
        (_no_dates, 1, "unexpected keyword argument 'start_date'"),
        # tauro's streaming form is for streaming nodes only, and says so.
        (_tauro, 1, "fn(input_df, node_config) is tauro's form for streaming nodes, and this node is a batch node"),
    ],
)
def test_a_batch_nodes_function_takes_its_inputs_and_the_dates(fn: Any, inputs: int, problem: str | None) -> None:
    if problem is None:
        assert call_form(fn, inputs, streaming=False) is CallForm.EXECD
    else:
        with pytest.raises(FunctionError, match="start_date/end_date as keywords") as caught:
            call_form(fn, inputs, streaming=False)
        assert problem in str(caught.value)


@pytest.mark.parametrize(
    ("fn", "form"),
    [
        (_tauro, CallForm.TAURO_STREAMING),
        (_tauro_ml, CallForm.TAURO_STREAMING),
        # A function that can take the dates gets execd's call, as before.
        (_two, CallForm.EXECD),
        (_kwargs, CallForm.EXECD),
        (_either, CallForm.EXECD),
    ],
)
def test_a_streaming_nodes_function_may_be_in_tauros_form(fn: Any, form: CallForm) -> None:
    inputs = 2 if fn is _two else 1
    assert call_form(fn, inputs, streaming=True) is form


@pytest.mark.parametrize(
    ("fn", "inputs", "problem", "fix"),
    [
        (_no_dates, 1, "(got an unexpected keyword argument 'start_date'), or tauro's fn(input_df, node_config) (too many", "def fn(input_df, node_config) (tauro's streaming form)"),
        (_tauro_one_date, 1, "it names start_date, which that call does not pass", "def fn(input_df, *, start_date, end_date)"),
        (_tauro, 2, "for a streaming node with one input, and this one has 2", "def fn(df1, ..., *, start_date, end_date)"),
    ],
)
def test_a_streaming_function_in_neither_form_is_told_both(fn: Any, inputs: int, problem: str, fix: str) -> None:
    with pytest.raises(FunctionError, match="cannot take either call of a streaming node") as caught:
        call_form(fn, inputs, streaming=True)
    assert problem in str(caught.value) and fix in str(caught.value)


def test_tauros_streaming_call_gets_the_input_and_the_nodes_configuration_with_its_name() -> None:
    config = {"function": {"module": "m", "function": "f"}, "input": {"format": "rate"}, "label": "x"}
    args, kwargs = call_arguments(CallForm.TAURO_STREAMING, ["df"], "ticks", "2025-01-01", None, config)
    assert args == ["df", {**config, "name": "ticks"}] and kwargs == {}
    assert "name" not in config  # the worker's copy is not changed
    args, kwargs = call_arguments(CallForm.EXECD, ["a", "b"], "ticks", "2025-01-01", None, config)
    assert args == ["a", "b"] and kwargs == {"start_date": "2025-01-01", "end_date": None}


def test_ml_context_is_passed_only_to_functions_that_take_it() -> None:
    assert accepts_ml_context(_ml) and accepts_ml_context(_kwargs)
    assert not accepts_ml_context(_two)


def test_changed_project_code_is_imported_again_and_other_modules_are_kept(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(project / "src"))
    code = ProjectCode(project_roots(project))
    nodes = project / "src" / "mypkg" / "nodes.py"
    import mypkg.nodes  # type: ignore[import-not-found]

    assert mypkg.nodes.VALUE == 3
    code.record()
    assert code.refresh() == []  # nothing changed: the warm import stays
    assert sys.modules["mypkg.nodes"] is mypkg.nodes

    nodes.write_text("def fn(df, *, start_date, end_date):\n    return df\nVALUE = 4  # edited\n")
    assert code.refresh() == [str(nodes.resolve())]
    assert "mypkg.nodes" not in sys.modules and "mypkg" not in sys.modules
    assert "pytest" in sys.modules  # not a project module
    import mypkg.nodes as again  # type: ignore[import-not-found]

    assert again.VALUE == 4


def test_with_user_names_the_session_user_in_the_remote(monkeypatch: pytest.MonkeyPatch) -> None:
    from tauro_exec.worker import with_user

    monkeypatch.setenv("USER", "ana")
    monkeypatch.delenv("SPARK_USER", raising=False)
    assert with_user("sc://h:15002") == ("sc://h:15002/;user_id=ana", "ana")
    assert with_user("sc://h:15002/") == ("sc://h:15002/;user_id=ana", "ana")
    assert with_user("sc://h:15002/;token=a=b") == ("sc://h:15002/;token=a=b;user_id=ana", "ana")
    assert with_user("sc://h/;user_id=bo;x=1") == ("sc://h/;user_id=bo;x=1", "bo")
    monkeypatch.setenv("SPARK_USER", "cy")
    assert with_user("sc://h") == ("sc://h/;user_id=cy", "cy")


def test_a_server_of_another_spark_version_is_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    import types

    import pyspark

    from tauro_exec.worker.session import _check_versions

    major, minor = pyspark.__version__.split(".")[:2]
    same = types.SimpleNamespace(version=f"{major}.{minor}.9")
    other = types.SimpleNamespace(version=f"{int(major) + 1}.0.0")
    with caplog.at_level("WARNING", logger="tauro_exec.worker"):
        _check_versions(same)  # type: ignore[arg-type]
        assert not caplog.records
        _check_versions(other)  # type: ignore[arg-type]
    assert f"runs Spark {int(major) + 1}.0.0" in caplog.text and f"pyspark[connect]=={int(major) + 1}.0.0" in caplog.text


def test_what_a_nodes_thread_prints_becomes_its_log_events_and_other_threads_print_as_usual() -> None:
    import io
    import queue
    import threading

    from tauro_exec.worker.output import NodeOutput

    real = io.StringIO()
    out = NodeOutput(real, "info")
    events: queue.Queue[Any] = queue.Queue()

    def node() -> None:
        out.attach_node(events)
        out.write("first line\nsecond ")
        out.write("line\n")
        out.write("x" * (NodeOutput.MAX_LINE + 5) + "\n")
        for i in range(NodeOutput.MAX_LINES):
            out.write(f"loop {i}\n")
        out.write("unterminated")
        out.detach_node()

    t = threading.Thread(target=node)
    t.start()
    t.join()
    out.write("not a node\n")
    got = []
    while not events.empty():
        got.append(events.get().log)
    assert [g.text for g in got[:2]] == ["first line", "second line"]
    assert got[2].text.endswith(" [line cut]") and len(got[2].text) == NodeOutput.MAX_LINE + len(" [line cut]")
    assert len(got) == NodeOutput.MAX_LINES + 1  # capped, plus one warning saying so
    assert got[-1].level == "warning" and "dropped" in got[-1].text
    assert {g.level for g in got[:-1]} == {"info"}
    assert real.getvalue() == "not a node\n"


@pytest.mark.parametrize(
    ("remote", "kind"),
    [
        ("sc://127.0.0.1:15002/;token=t", "local"),
        ("sc://[::1]:15002/;token=t", "local"),
        ("sc://localhost:15002/;token=t", "local"),
        ("sc://spark.example.com:15002/;token=t", "ssl"),
        ("sc://127.0.0.1:15002/;token=t;use_ssl=true", "ssl"),
        ("sc://127.0.0.1:15002", "insecure"),
    ],
)
def test_a_token_goes_without_tls_only_to_a_loopback_host(monkeypatch: pytest.MonkeyPatch, remote: str, kind: str) -> None:
    import grpc

    from tauro_exec.worker.session import channel_builder

    used: list[str] = []
    real_local, real_ssl = grpc.local_channel_credentials, grpc.ssl_channel_credentials

    def local(*a: Any, **k: Any) -> Any:
        used.append("local")
        return real_local(*a, **k)

    def ssl(*a: Any, **k: Any) -> Any:
        used.append("ssl")
        return real_ssl(*a, **k)

    monkeypatch.setattr(grpc, "local_channel_credentials", local)
    monkeypatch.setattr(grpc, "ssl_channel_credentials", ssl)
    channel_builder(remote).toChannel().close()
    assert used == ([] if kind == "insecure" else [kind])


def test_a_requests_kind_names_what_it_analyses_runs_or_configures() -> None:
    import pyspark.sql.connect.proto as sc

    from tauro_exec.worker.profile import request_kind

    service = "/spark.connect.SparkConnectService/"
    view = sc.Plan(command=sc.Command(create_dataframe_view=sc.CreateDataFrameViewCommand(name="v")))
    cases = [
        ("AnalyzePlan", sc.AnalyzePlanRequest(schema=sc.AnalyzePlanRequest.Schema()), "AnalyzePlan.schema"),
        ("ExecutePlan", sc.ExecutePlanRequest(plan=view), "ExecutePlan.create_dataframe_view"),
        ("ExecutePlan", sc.ExecutePlanRequest(plan=sc.Plan(root=sc.Relation())), "ExecutePlan.root"),
        ("Config", sc.ConfigRequest(operation=sc.ConfigRequest.Operation(get=sc.ConfigRequest.Get(keys=["k"]))), "Config.get"),
        ("ReleaseExecute", sc.ReleaseExecuteRequest(), "ReleaseExecute"),
    ]
    for method, request, kind in cases:
        assert request_kind(service + method, request) == kind
