"""Processes and sockets the client tests drive: a real execd and a TCP relay to cut."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]

REPO = Path(__file__).resolve().parents[3]
SQLPROJ = REPO / "cmd" / "execd" / "testdata" / "sqlproj"
TINYPROJ = REPO / "cmd" / "execd" / "testdata" / "tinyproj"
LISTENING = "execd listening on "

# The nap node sleeps this long on Spark: long enough to act on a running run,
# short enough that a run left to finish does not slow the suite down.
NAP_MS = "6000"

# Changes to the test's copy of sqlproj. execd keeps a SQL node's result as a
# view and computes it only when an output is written, so a node must write
# for its query to run on Spark: nap gets an output so that it really sleeps,
# and the added `failing` pipeline has a node whose write fails on Spark.
OUTPUTS = {
    "test.naps.nap": {"format": "parquet", "write_mode": "overwrite"},
    "test.fails.explode": {"format": "parquet", "write_mode": "overwrite"},
}
EXTRA_NODES = {
    "explode": {
        "dependencies": ["numbers"],
        "sql": "SELECT raise_error('boom from explode') AS never FROM numbers",
        "output": ["test.fails.explode"],
    },
    "after_explode": {"dependencies": ["explode"], "sql": "SELECT 1 AS unreachable"},
}
EXTRA_PIPELINES = {"failing": {"type": "batch", "nodes": ["numbers", "explode", "after_explode"]}}


def execd_binary() -> Path:
    """$EXECD, else bin/execd of the repo, built if missing."""
    if os.environ.get("EXECD"):
        return Path(os.environ["EXECD"])
    path = REPO / "bin" / "execd"
    if not path.exists():
        subprocess.run(["go", "build", "-o", str(path), "./cmd/execd"], cwd=REPO, check=True)
    return path


def make_project(root: Path) -> Path:
    project = root / "sqlproj"
    shutil.copytree(SQLPROJ, project)
    config = project / "config"

    def edit(name: str, change: dict[str, Any]) -> None:
        data = yaml.safe_load((config / name).read_text()) or {}
        data.update(change)
        (config / name).write_text(yaml.safe_dump(data, sort_keys=False))

    nodes = yaml.safe_load((config / "nodes.yaml").read_text())
    edit("nodes.yaml", {"nap": {**nodes["nap"], "output": ["test.naps.nap"]}, **EXTRA_NODES})
    edit("output.yaml", OUTPUTS)
    edit("pipelines.yaml", EXTRA_PIPELINES)
    return project


def make_projects(root: Path) -> Path:
    """A projects file serving alpha (make_project's sqlproj) and beta (tinyproj, one worker)."""
    make_project(root)
    shutil.copytree(TINYPROJ, root / "tinyproj")
    projects = {"alpha": {"folder": str(root / "sqlproj")}, "beta": {"folder": "tinyproj", "workers": 1}}
    path = root / "projects.yaml"
    path.write_text(yaml.safe_dump({"projects": projects}))
    return path


class Daemon:
    """One `execd serve` process; restartable on the same port and state.

    ``project`` is a project's folder, or a projects file naming several.
    """

    def __init__(
        self, binary: Path, project: Path, state: Path, spark_remote: str, log: Path, args: tuple[str, ...] = ()
    ) -> None:
        self.binary, self.project, self.state = binary, project, state
        self.spark_remote, self.log, self.args = spark_remote, log, args
        self.listen = "127.0.0.1:0"
        self.address = ""
        self._proc: subprocess.Popen[str] | None = None

    def start(self, *, env: dict[str, str] | None = None, timeout: float = 120.0) -> str:
        cmd = [
            str(self.binary), "serve",
            "--projects" if self.project.is_file() else "--project", str(self.project),
            "--state", str(self.state),
            "--listen", self.listen,
            "--spark-remote", self.spark_remote,
            *self.args,
        ]  # fmt: skip
        environ = {**os.environ, "NAP_MS": NAP_MS, **(env or {})}
        stderr = open(self.log, "a")
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=stderr, text=True, env=environ)
        stderr.close()
        self.address = self._read_address(self._proc, timeout)
        # Later starts reuse the port, so a client keeps its target across restarts.
        self.listen = self.address
        return self.address

    def _read_address(self, proc: subprocess.Popen[str], timeout: float) -> str:
        found: list[str] = []
        ready = threading.Event()

        def pump() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:  # keep draining so the daemon never blocks on stdout
                if line.startswith(LISTENING) and not found:
                    found.append(line[len(LISTENING) :].strip())
                    ready.set()
            ready.set()

        threading.Thread(target=pump, daemon=True).start()
        if not ready.wait(timeout) or not found:
            self.stop()
            pytest.fail(f"execd did not start; its log:\n{self.log.read_text()[-4000:]}", pytrace=False)
        return found[0]

    def stop(self, timeout: float = 60.0, *, sig: signal.Signals = signal.SIGTERM) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            pytest.fail(f"execd ignored SIGTERM for {timeout}s")


class CuttableProxy:
    """A TCP relay in front of execd whose open connections the test can cut.

    Cutting closes both sides of every open connection, as a network failure
    would; the proxy keeps accepting, so a client that reconnects gets through.
    """

    def __init__(self, upstream: str) -> None:
        host, _, port = upstream.rpartition(":")
        self._upstream = (host, int(port))
        self._server = socket.create_server(("127.0.0.1", 0))
        self.address = "127.0.0.1:%d" % self._server.getsockname()[1]
        self.connections = 0
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                down, _ = self._server.accept()
            except OSError:
                return
            try:
                up = socket.create_connection(self._upstream)
            except OSError:
                down.close()
                continue
            with self._lock:
                self.connections += 1
                self._open += [down, up]
            threading.Thread(target=self._pump, args=(down, up), daemon=True).start()
            threading.Thread(target=self._pump, args=(up, down), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    def cut(self) -> None:
        with self._lock:
            conns, self._open = self._open, []
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self) -> None:
        self._server.close()
        self.cut()


def make_certificates(root: Path) -> dict[str, Path]:
    """The certificates of Go's internal/testcerts, written into root."""
    subprocess.run(["go", "run", "./internal/testcerts/gen", str(root)], cwd=REPO, check=True)
    names = ["ca", "server", "server-key", "client", "client-key", "stranger", "stranger-key"]
    return {n: root / f"{n}.pem" for n in names}


def new_token(binary: Path, tokens: Path, role: str, **project_roles: str) -> str:
    """A token of role (and of another role in each project of project_roles), appended to the tokens file with `execd token`."""
    scoped = [a for p, r in project_roles.items() for a in ("--project-role", f"{p}={r}")]
    out = subprocess.run(
        [str(binary), "token", "--name", f"py-{role}", "--role", role, *scoped, "--append", str(tokens)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return out.stdout.strip()
