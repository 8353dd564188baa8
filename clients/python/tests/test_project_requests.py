"""Which project each call names: the client's default, a call's own, or none.

No daemon: a stub answers every method with an empty response and keeps the
requests, so what goes on the wire can be checked exactly. test_projects.py
drives a real execd serving two projects.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tauro_exec import Caller, Client, Project, ProjectState, Projects, Role
from tauro_exec._proto.tauro.exec.v1 import exec_pb2 as pb
from tauro_exec.events import event_from_proto
from tauro_exec.experiment_events import ExperimentEvent


class RecordingStub:
    """Every method answers its empty response (or ``answers[method]``) and records the request."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, Any]] = []
        self.answers: dict[str, Any] = {}

    def __getattr__(self, method: str) -> Callable[..., Any]:
        def call(req: Any, timeout: float | None = None) -> Any:
            self.requests.append((method, req))
            return self.answers[method] if method in self.answers else getattr(pb, f"{method}Response")()

        return call

    def sent(self) -> list[tuple[str, str]]:
        """(method, project) of each request, and forget them."""
        out = [(m, r.project) for m, r in self.requests]
        self.requests.clear()
        return out


def stubbed(stub: RecordingStub, **kwargs: Any) -> Client:
    c = Client("127.0.0.1:9", **kwargs)  # never dialled: every call goes to the stub
    c._rpc.stub = stub  # type: ignore[assignment]
    return c


def naming_calls(c: Client, **kw: Any) -> None:
    """Every call that names a pipeline or lists, with the keyword arguments kw."""
    c.pipelines(**kw)
    c.pipeline("quick", **kw)
    c.validate("quick", **kw)
    c.execute("quick", **kw)
    list(c.runs(**kw))
    c.experiment("quick", **kw)
    list(c.experiments(**kw))


NAMING = ["ListPipelines", "GetPipeline", "ValidatePipeline", "ExecutePipeline", "ListRuns", "RunExperiment", "ListExperiments"]


@pytest.fixture(autouse=True)
def no_project_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TAURO_EXEC_PROJECT", raising=False)


def test_every_call_that_names_a_pipeline_or_lists_sends_the_default_project() -> None:
    stub = RecordingStub()
    naming_calls(stubbed(stub, project="alpha"))
    assert stub.sent() == [(m, "alpha") for m in NAMING]


def test_a_calls_own_project_wins_over_the_default() -> None:
    stub = RecordingStub()
    naming_calls(stubbed(stub, project="alpha"), project="beta")
    assert stub.sent() == [(m, "beta") for m in NAMING]


def test_without_a_default_no_project_is_sent_and_an_empty_one_lists_every_project() -> None:
    stub = RecordingStub()
    c = stubbed(stub)
    assert c.project is None
    naming_calls(c)
    assert stub.sent() == [(m, "") for m in NAMING]

    # project="" lists every project even when the client has a default.
    c = stubbed(stub, project="alpha")
    list(c.runs(project=""))
    list(c.experiments(project=""))
    assert stub.sent() == [("ListRuns", ""), ("ListExperiments", "")]


def test_the_default_comes_from_the_environment_unless_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAURO_EXEC_PROJECT", "beta")
    stub = RecordingStub()
    c = stubbed(stub)
    assert c.project == "beta" and repr(c) == "Client('127.0.0.1:9', project='beta')"
    c.pipelines()
    assert stubbed(stub, project="alpha").project == "alpha"
    assert stub.sent() == [("ListPipelines", "beta")]


def test_calls_by_id_send_only_a_project_they_are_given() -> None:
    stub = RecordingStub()
    c = stubbed(stub, project="alpha")
    stub.answers["GetRun"] = pb.GetRunResponse(run=pb.Run(run_id="r1", project="beta"))
    stub.answers["GetExperiment"] = pb.GetExperimentResponse(experiment=pb.Experiment(experiment_id="x1", project="beta"))

    run = c.run("r1")
    x = c.experiment_by_id("x1")
    assert stub.sent() == [("GetRun", ""), ("GetExperiment", "")]
    assert run.project == "beta" and x.project == "beta"

    c.run("r1", project="beta")
    c.experiment_by_id("x1", project="beta")
    assert stub.sent() == [("GetRun", "beta"), ("GetExperiment", "beta")]


def test_projects_and_caller_are_typed() -> None:
    stub = RecordingStub()
    stub.answers["ListProjects"] = pb.ListProjectsResponse(
        projects=[
            pb.Project(name="alpha", folder="/p/a", default_env="dev", state=pb.PROJECT_STATE_SERVING,
                       role=pb.ROLE_OPERATOR, python="/usr/bin/python3", workers=2),
            pb.Project(name="beta", folder="/p/b", state=pb.PROJECT_STATE_BROKEN, error="no settings_yml.json\nin /p/b",
                       role=pb.ROLE_VIEWER),
        ]
    )  # fmt: skip
    stub.answers["GetCaller"] = pb.GetCallerResponse(
        name="ci", role=pb.ROLE_VIEWER, authentication_required=True,
        projects=[pb.ProjectRole(project="alpha", role=pb.ROLE_OPERATOR)],
    )  # fmt: skip
    c = stubbed(stub)

    projects = c.projects()
    assert isinstance(projects, Projects)
    assert projects[0] == Project("alpha", "/p/a", "dev", ProjectState.SERVING, "", Role.OPERATOR, "/usr/bin/python3", 2)
    assert (projects[1].state, projects[1].role) == (ProjectState.BROKEN, Role.VIEWER)
    table = projects._repr_html_()
    assert "2 projects" in table and "operator" in table and "BROKEN" in table and "no settings_yml.json" in table

    caller = c.caller()
    assert caller == Caller("ci", Role.VIEWER, True, {"alpha": Role.OPERATOR})
    assert caller.role_in("alpha") is Role.OPERATOR and caller.role_in("beta") is Role.VIEWER


def test_events_carry_their_project() -> None:
    ev = event_from_proto(pb.RunEvent(run_id="r", project="alpha", sequence=1, run_state_changed=pb.RunStateChanged()))
    assert ev.project == "alpha"
    xev = ExperimentEvent.from_proto(
        pb.ExperimentEvent(project="beta", sequence=2, experiment_state_changed=pb.ExperimentStateChanged())
    )
    assert xev.project == "beta"
