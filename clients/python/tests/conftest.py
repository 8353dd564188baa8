"""A real execd for the client tests, on a copy of cmd/execd/testdata/sqlproj
(and one serving it and tinyproj as two projects).

The daemon talks to the Spark Connect server named by $TAURO_SPARK_REMOTE
(`make test` starts one per test run). Nothing here is mocked.

Under `make test` (TAURO_REQUIRE_SPARK=1) every Python test is required: a
skipped test, or a skipped test module, fails the run (-rs says why each skipped).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness import CuttableProxy, Daemon, execd_binary, make_project, make_projects

from tauro_exec import Client


REQUIRE_ENV = "TAURO_REQUIRE_SPARK"


class RequireEveryTest:
    """Fails a run in which any test or test module skipped; -rs lists them and why."""

    def __init__(self) -> None:
        self.skipped: list[str] = []

    def _note(self, report: pytest.TestReport | pytest.CollectReport) -> None:
        if report.skipped and not hasattr(report, "wasxfail"):
            self.skipped.append(report.nodeid)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self._note(report)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        self._note(report)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.skipped and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.skipped:
            terminalreporter.write_line(
                f"FAIL: {len(self.skipped)} skipped, and {REQUIRE_ENV}=1 requires every Python test to run: "
                + ", ".join(self.skipped),
                red=True,
            )


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get(REQUIRE_ENV) == "1":
        config.pluginmanager.register(RequireEveryTest(), "tauro-require-every-test")


@pytest.fixture(scope="session")
def spark_remote() -> str:
    remote = os.environ.get("TAURO_SPARK_REMOTE", "")
    if not remote:
        pytest.fail(
            "TAURO_SPARK_REMOTE is not set. Run the Python tests with `make test`, which starts one "
            "Spark Connect server for the test run, or start one yourself: "
            "`bin/execd spark-server --state .build/spark-test --ready-file .build/spark-test/remote &` "
            "then `export TAURO_SPARK_REMOTE=$(cat .build/spark-test/remote)`.",
            pytrace=False,
        )
    return remote


@pytest.fixture(scope="session")
def mlflow_uri() -> str:
    """The MLflow tracking server of the test run ($TAURO_MLFLOW_URI). Tests
    that need it skip without it, and fail instead under `make test`, which
    starts one (TAURO_REQUIRE_MLFLOW=1)."""
    uri = os.environ.get("TAURO_MLFLOW_URI", "")
    if not uri:
        if os.environ.get("TAURO_REQUIRE_MLFLOW"):
            pytest.fail("TAURO_REQUIRE_MLFLOW is set but TAURO_MLFLOW_URI is not: no MLflow tracking server to test against", pytrace=False)
        pytest.skip("TAURO_MLFLOW_URI is not set: no MLflow tracking server (make test starts one)")
    return uri


@pytest.fixture(scope="session")
def binary() -> Path:
    return execd_binary()


@pytest.fixture(scope="session")
def daemon(tmp_path_factory: pytest.TempPathFactory, binary: Path, spark_remote: str) -> Iterator[Daemon]:
    root = tmp_path_factory.mktemp("execd")
    d = Daemon(binary, make_project(root), root / "state", spark_remote, root / "execd.log")
    d.start()
    yield d
    d.stop()


@pytest.fixture(scope="session")
def two_projects(tmp_path_factory: pytest.TempPathFactory, binary: Path, spark_remote: str) -> Iterator[Daemon]:
    """One execd serving two projects (harness.make_projects): alpha, with no workers, and beta."""
    root = tmp_path_factory.mktemp("execd-projects")
    d = Daemon(binary, make_projects(root), root / "state", spark_remote, root / "execd.log", args=("--workers", "0"))
    d.start()
    yield d
    d.stop()


@pytest.fixture
def client(daemon: Daemon) -> Iterator[Client]:
    with Client(daemon.address, timeout=60) as c:
        yield c


@pytest.fixture
def fresh_daemon(tmp_path: Path, binary: Path, spark_remote: str) -> Iterator[Daemon]:
    """A daemon of its own, for tests that stop and restart it."""
    d = Daemon(binary, make_project(tmp_path), tmp_path / "state", spark_remote, tmp_path / "execd.log")
    yield d
    d.stop()


@pytest.fixture
def proxy(daemon: Daemon) -> Iterator[CuttableProxy]:
    p = CuttableProxy(daemon.address)
    yield p
    p.close()

