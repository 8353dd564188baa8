"""The channel to execd: its security, deadlines, one retry on UNAVAILABLE, and error mapping."""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TypeVar

import grpc

from tauro_exec._proto.tauro.exec.v1 import exec_pb2_grpc
from tauro_exec.errors import from_rpc_error

_Req = TypeVar("_Req")
_Resp = TypeVar("_Resp")

# gRPC's own reconnect backoff grows to two minutes; a client following a run
# through a daemon restart wants to notice the daemon is back within seconds.
_CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2000),
]

# How long the one retry of a call waits for the channel to come back.
_RETRY_WAIT = 3.0


@dataclass(frozen=True)
class Backoff:
    """Exponential delays between reconnect attempts."""

    initial: float = 0.2
    factor: float = 2.0
    maximum: float = 2.0

    def delays(self) -> Iterator[float]:
        d = self.initial
        while True:
            yield d
            d = min(d * self.factor, self.maximum)


TOKEN_ENV = "TAURO_EXEC_TOKEN"


@dataclass(frozen=True)
class Security:
    """How the channel authenticates: a bearer token, and TLS.

    A token goes over TLS unless the daemon is on this machine (a loopback
    address), as execd itself decides for Spark. ``root_certificates`` (PEM)
    replaces the system's trust roots; ``certificate_chain`` and
    ``private_key`` (PEM) are the client's certificate for mutual TLS.
    """

    token: str | None = field(default=None, repr=False)
    tls: bool = False
    root_certificates: bytes | None = None
    certificate_chain: bytes | None = None
    private_key: bytes | None = field(default=None, repr=False)

    def channel(self, target: str) -> grpc.Channel:
        use_tls = self.tls or self.root_certificates is not None or self.certificate_chain is not None
        if self.token and not use_tls and not _loopback(target):
            use_tls = True  # a token never crosses the network in the clear
        if use_tls:
            creds = grpc.ssl_channel_credentials(self.root_certificates, self.private_key, self.certificate_chain)
        elif self.token:
            # gRPC sends call credentials only on a secure channel; to a
            # loopback address, "local" credentials count as one.
            creds = grpc.local_channel_credentials()
        else:
            return grpc.insecure_channel(target, options=_CHANNEL_OPTIONS)
        if self.token:
            creds = grpc.composite_channel_credentials(creds, grpc.access_token_call_credentials(self.token))
        return grpc.secure_channel(target, creds, options=_CHANNEL_OPTIONS)


def _loopback(target: str) -> bool:
    """Whether a gRPC target (host:port, [v6]:port, dns:///host:port) is this machine."""
    host = target.removeprefix("dns:///")
    if host.startswith("["):
        host = host[1:].partition("]")[0]
    elif host.count(":") == 1:
        host = host.partition(":")[0]
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Transport:
    """One channel and its stub, shared by a Client and the Runs it returns."""

    def __init__(self, target: str, timeout: float | None, security: Security | None = None) -> None:
        self.target = target
        self.timeout = timeout
        self._channel = (security or Security()).channel(target)
        self.stub = exec_pb2_grpc.ExecServiceStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def call(
        self,
        method: grpc.UnaryUnaryMultiCallable[_Req, _Resp],
        request: _Req,
        *,
        retry: bool = True,
        timeout: float | None = None,
    ) -> _Resp:
        """Call a unary method; raise the client's exception for a failed call.

        With ``retry``, a call that fails with UNAVAILABLE is made once more,
        waiting for the channel to be ready. Only idempotent calls retry: reads,
        and writes that carry a request_id.
        """
        deadline = self.timeout if timeout is None else timeout
        try:
            return method(request, timeout=deadline)
        except grpc.RpcError as err:
            if not (retry and err.code() == grpc.StatusCode.UNAVAILABLE):
                raise from_rpc_error(err) from None
            first = err
        try:
            grpc.channel_ready_future(self._channel).result(timeout=_RETRY_WAIT)
        except grpc.FutureTimeoutError:
            raise from_rpc_error(first) from None
        try:
            return method(request, timeout=deadline)
        except grpc.RpcError as err:
            raise from_rpc_error(err) from None


def remaining(deadline: float | None) -> float | None:
    """Seconds left until a time.monotonic() deadline (never negative), or None."""
    if deadline is None:
        return None
    return max(0.0, deadline - time.monotonic())
