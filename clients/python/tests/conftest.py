"""A real execd for the client tests, on a copy of cmd/execd/testdata/sqlproj.

The daemon talks to the Spark Connect server named by $TAURO_SPARK_REMOTE
(`make test` starts one per test run). Nothing here is mocked.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import CuttableProxy, Daemon, execd_binary, make_project

from tauro_exec import Client


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
def binary() -> Path:
    return execd_binary()


@pytest.fixture(scope="session")
def daemon(tmp_path_factory: pytest.TempPathFactory, binary: Path, spark_remote: str) -> Iterator[Daemon]:
    root = tmp_path_factory.mktemp("execd")
    d = Daemon(binary, make_project(root), root / "state", spark_remote, root / "execd.log")
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

