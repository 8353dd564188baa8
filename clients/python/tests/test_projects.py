"""The client's default project against a real execd serving two (alpha and beta).

test_project_requests.py checks what each call sends without a daemon; this
checks that execd understands it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import Daemon, make_projects, new_token

from tauro_exec import Client, NotFound, PermissionDenied, ProjectState, Role, RunState, ValidationError


@pytest.fixture
def anywhere(two_projects: Daemon, monkeypatch: pytest.MonkeyPatch) -> Iterator[Client]:
    """A client with no default project."""
    monkeypatch.delenv("TAURO_EXEC_PROJECT", raising=False)
    with Client(two_projects.address, timeout=60) as c:
        yield c


@pytest.fixture
def alpha(two_projects: Daemon) -> Iterator[Client]:
    with Client(two_projects.address, timeout=60, project="alpha") as c:
        yield c


def test_without_a_project_a_call_is_refused_with_the_projects_served(anywhere: Client) -> None:
    with pytest.raises(ValidationError) as err:
        anywhere.execute("quick")
    assert [v.field for v in err.value.violations] == ["project"]
    assert "alpha, beta" in str(err.value), str(err.value)


def test_the_default_project_runs_its_pipeline_and_the_run_says_so(alpha: Client) -> None:
    assert {p.name for p in alpha.pipelines()} >= {"quick", "slow"}
    assert [p.name for p in alpha.pipelines(project="beta")] == ["tiny"]

    run = alpha.execute("quick").wait(timeout=180)
    assert (run.project, run.state) == ("alpha", RunState.SUCCEEDED)
    assert {ev.project for ev in run.watch()} == {"alpha"}
    assert alpha.run(run.id).project == "alpha"
    with pytest.raises(NotFound):
        alpha.run(run.id, project="beta")


def test_projects_lists_both_with_their_settings_and_the_callers_role(anywhere: Client) -> None:
    projects = anywhere.projects()
    assert [p.name for p in projects] == ["alpha", "beta"]
    assert all(p.state is ProjectState.SERVING and p.error == "" for p in projects), projects
    assert all(p.role is Role.ADMIN and p.default_env == "dev" for p in projects)  # no authentication: admin
    assert [p.workers for p in projects] == [0, 1]
    assert projects[0].folder.endswith("sqlproj") and projects[1].folder.endswith("tinyproj")

    caller = anywhere.caller()
    assert (caller.role, caller.authentication_required, caller.projects) == (Role.ADMIN, False, {})


def test_runs_are_listed_from_the_default_project_or_the_one_asked(two_projects: Daemon, alpha: Client) -> None:
    a = alpha.execute("quick")
    b = alpha.execute("tiny", project="beta")
    assert b.project == "beta"
    a.wait(timeout=180)
    b.wait(timeout=180)

    with Client(two_projects.address, timeout=60, project="beta") as beta:
        listed = list(beta.runs())
    assert b.id in {r.id for r in listed} and {r.project for r in listed} == {"beta"}
    listed = list(alpha.runs())
    assert a.id in {r.id for r in listed} and {r.project for r in listed} == {"alpha"}
    assert {a.id, b.id} <= {r.id for r in alpha.runs(project="")}


@pytest.fixture
def scoped(tmp_path: Path, binary: Path, spark_remote: str) -> Iterator[tuple[Daemon, str]]:
    """A two-project execd that requires tokens, and a token: viewer, but operator in alpha."""
    tokens = tmp_path / "tokens.jsonl"
    token = new_token(binary, tokens, "viewer", alpha="operator")
    d = Daemon(binary, make_projects(tmp_path), tmp_path / "state", spark_remote, tmp_path / "execd.log",
               ("--workers", "0", "--tokens", str(tokens)))  # fmt: skip
    d.start()
    yield d, token
    d.stop()


def test_a_token_scoped_to_a_project_shows_its_role_there(scoped: tuple[Daemon, str]) -> None:
    daemon, token = scoped
    with Client(daemon.address, timeout=60, token=token, project="alpha") as c:
        caller = c.caller()
        assert (caller.name, caller.role, caller.authentication_required) == ("py-viewer", Role.VIEWER, True)
        assert caller.projects == {"alpha": Role.OPERATOR} and caller.role_in("beta") is Role.VIEWER
        assert [(p.name, p.role) for p in c.projects()] == [("alpha", Role.OPERATOR), ("beta", Role.VIEWER)]

        assert c.execute("quick").wait(timeout=180).state is RunState.SUCCEEDED
        with pytest.raises(PermissionDenied):
            c.execute("tiny", project="beta")
