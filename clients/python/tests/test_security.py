"""Tokens and TLS through the client, against a real execd that requires them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import Daemon, make_certificates, make_project, new_token

from tauro_exec import Client, PermissionDenied, RunState, Unauthenticated, Unavailable

# The daemon, the tokens by role, and the certificate files by name.
Secured = tuple[Daemon, dict[str, str], dict[str, Path]]


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory, binary: Path, spark_remote: str) -> Iterator[Secured]:
    """A daemon that requires mutual TLS and tokens, and a viewer's and an operator's token."""
    root = tmp_path_factory.mktemp("secured")
    certs = make_certificates(root / "certs")
    tokens_file = root / "tokens.jsonl"
    tokens = {role: new_token(binary, tokens_file, role) for role in ("viewer", "operator")}
    args = (
        "--tokens", str(tokens_file),
        "--tls-cert", str(certs["server"]), "--tls-key", str(certs["server-key"]),
        "--client-ca", str(certs["ca"]),
    )  # fmt: skip
    d = Daemon(binary, make_project(root), root / "state", spark_remote, root / "execd.log", args)
    d.start()
    yield d, tokens, certs
    d.stop()


def _client(daemon: Daemon, certs: dict[str, Path], *, cert: str = "client", **kw: object) -> Client:
    return Client(
        daemon.address,
        timeout=60,
        root_certificates=certs["ca"],
        certificate_chain=certs[cert],
        private_key=certs[f"{cert}-key"],
        **kw,  # type: ignore[arg-type]
    )


def test_without_a_token_a_call_is_unauthenticated(secured: Secured, monkeypatch: pytest.MonkeyPatch) -> None:
    daemon, _, certs = secured
    monkeypatch.delenv("TAURO_EXEC_TOKEN", raising=False)
    with _client(daemon, certs) as client, pytest.raises(Unauthenticated, match="bearer token"):
        client.pipelines()
    with _client(daemon, certs, token="tauro_not-one-of-ours") as client, pytest.raises(Unauthenticated):
        client.pipelines()


def test_a_viewer_reads_but_cannot_execute(secured: Secured) -> None:
    daemon, tokens, certs = secured
    with _client(daemon, certs, token=tokens["viewer"]) as client:
        assert "quick" in [p.name for p in client.pipelines()]
        with pytest.raises(PermissionDenied, match="operator role"):
            client.execute("quick")


def test_an_operator_from_the_environment_runs_a_pipeline(secured: Secured, monkeypatch: pytest.MonkeyPatch) -> None:
    daemon, tokens, certs = secured
    monkeypatch.setenv("TAURO_EXEC_TOKEN", tokens["operator"])
    with _client(daemon, certs) as client:
        run = client.execute("quick").wait(timeout=300)
        assert run.state is RunState.SUCCEEDED


@pytest.mark.parametrize("cert", ["stranger", None])
def test_mutual_tls_refuses_a_client_certificate_the_ca_did_not_sign(secured: Secured, cert: str | None) -> None:
    daemon, tokens, certs = secured
    if cert is None:
        client = Client(daemon.address, timeout=10, token=tokens["operator"], root_certificates=certs["ca"])
    else:
        client = _client(daemon, certs, cert=cert, token=tokens["operator"])
    with client, pytest.raises(Unavailable):
        client.pipelines()


def test_a_token_to_a_loopback_daemon_goes_without_tls(tmp_path: Path, binary: Path, spark_remote: str) -> None:
    tokens_file = tmp_path / "tokens.jsonl"
    token = new_token(binary, tokens_file, "viewer")
    args = ("--tokens", str(tokens_file))
    d = Daemon(binary, make_project(tmp_path), tmp_path / "state", spark_remote, tmp_path / "execd.log", args)
    d.start()
    try:
        with Client(d.address, timeout=60, token=token) as client:
            assert "quick" in [p.name for p in client.pipelines()]
        with Client(d.address, timeout=60, token="") as client, pytest.raises(Unauthenticated):
            client.pipelines()
    finally:
        d.stop()


@pytest.mark.parametrize(
    ("target", "local"),
    [
        ("127.0.0.1:50051", True),
        ("localhost:50051", True),
        ("[::1]:50051", True),
        ("dns:///localhost:50051", True),
        ("execd.example.com:443", False),
        ("10.0.0.5:50051", False),
    ],
)
def test_only_a_loopback_target_counts_as_this_machine(target: str, local: bool) -> None:
    from tauro_exec._rpc import _loopback

    assert _loopback(target) is local
