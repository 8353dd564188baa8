"""The worker's Spark Connect session, kept warm from one node to the next."""

from __future__ import annotations

import ipaddress
import logging
import os
import threading

import grpc
import pyspark
from pyspark.sql.connect.client import DefaultChannelBuilder
from pyspark.sql.connect.session import SparkSession

from tauro_exec.worker.control import Control
from tauro_exec.worker.functions import FunctionError
from tauro_exec.worker.profile import Calls

log = logging.getLogger("tauro_exec.worker")  # the worker's one logger, whichever module logs


def with_user(remote: str) -> tuple[str, str]:
    """The remote with an explicit user_id, and that user.

    PySpark would take $SPARK_USER or $USER; naming it in the URL lets the
    worker tell execd which user owns its session.
    """
    _, _, params = remote.partition("/;")
    for kv in params.split(";"):
        key, _, value = kv.partition("=")
        if key == "user_id" and value:
            return remote, value
    user = os.getenv("SPARK_USER") or os.getenv("USER") or "tauro-worker"
    if params:
        return remote + ";user_id=" + user, user
    return remote.rstrip("/") + "/;user_id=" + user, user


class _LoopbackChannelBuilder(DefaultChannelBuilder):
    """Sends a token without TLS to any loopback host, as execd does.

    PySpark does so only for the host name "localhost" and asks for TLS on
    127.0.0.1; a token to any other host still goes over TLS only.
    """

    def toChannel(self) -> grpc.Channel:
        token = self.token
        if token is None or self.use_ssl or not _loopback(self.host):
            return super().toChannel()
        creds = grpc.composite_channel_credentials(
            grpc.local_channel_credentials(), grpc.access_token_call_credentials(token)
        )
        return self._secure_channel(self.endpoint, creds)


def _loopback(host: str) -> bool:
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def channel_builder(url: str, calls: Calls | None = None) -> DefaultChannelBuilder:
    """The channel to the Spark Connect server at url; calls, if given,
    counts the requests sent on it."""
    b = _LoopbackChannelBuilder(url)
    if calls is not None:
        b.add_interceptor(calls)
    return b


def connection_lost(e: BaseException) -> bool:
    """A failure of the connection to Spark (or of its session), which a retry may not meet."""
    codes = {grpc.StatusCode.UNAVAILABLE}
    if isinstance(e, grpc.RpcError) and callable(getattr(e, "code", None)):
        return e.code() in codes
    get_code = getattr(e, "getGrpcStatusCode", None)
    if callable(get_code) and get_code() in codes:
        return True
    condition = getattr(e, "getCondition", None)
    return callable(condition) and str(condition() or "").startswith("INVALID_HANDLE")


class WarmSession:
    """One Spark Connect session, opened on first use and kept until the remote
    changes or the connection is lost. Each new session is announced to execd."""

    def __init__(self, default_remote: str, control: Control, calls: Calls | None = None) -> None:
        self._default_remote = default_remote
        self._control = control
        self._calls = calls
        self._lock = threading.Lock()
        self._spark: SparkSession | None = None
        self._remote = ""

    def get(self, remote: str) -> SparkSession:
        """The session on remote (else the worker's default), connecting if there is none yet."""
        remote = remote or self._default_remote
        if not remote:
            raise FunctionError("no Spark Connect URL: execd passes one with each node, or start the worker with --spark-remote")
        with self._lock:
            if self._spark is None or self._remote != remote:
                self._stop()
                url, user = with_user(remote)
                self._spark = SparkSession.builder.channelBuilder(channel_builder(url, self._calls)).create()
                self._remote = remote
                self._control.session(url, self._spark.session_id, user)
                _check_versions(self._spark)
            return self._spark

    def interrupt(self, tag: str) -> None:
        """Interrupts the session's operations that carry tag."""
        spark = self._spark
        if spark is not None:
            try:
                spark.interruptTag(tag)
            except Exception:
                log.debug("interrupting %s failed", tag, exc_info=True)

    def drop(self, spark: SparkSession | None) -> None:
        """Lets spark go if it is still the session, so that the next node connects anew."""
        with self._lock:
            if self._spark is spark:
                self._stop()

    def close(self) -> None:
        with self._lock:
            self._stop()

    def _stop(self) -> None:
        spark, self._spark = self._spark, None
        if spark is not None:
            try:
                spark.stop()
            except Exception:  # a dead connection cannot be released politely
                log.debug("stopping the Spark session failed", exc_info=True)


def _check_versions(spark: SparkSession) -> None:
    """Warns when the worker's PySpark and the server's Spark differ in major.minor."""
    try:
        server = spark.version
    except Exception:
        log.debug("reading the Spark server's version failed", exc_info=True)
        return
    client = pyspark.__version__
    if server.split(".")[:2] != client.split(".")[:2]:
        log.warning(
            "this worker's PySpark is %s but the Spark Connect server runs Spark %s; "
            "install pyspark[connect]==%s in the workers' Python (--python) to match",
            client,
            server,
            server,
        )


def make_active(spark: SparkSession) -> None:
    """Lets node code reach the worker's session the usual ways.

    SparkSession.getActiveSession() is per thread and each node runs in a
    thread of its own; builder.getOrCreate() falls back to the default
    session, which must be the current one after a reconnect.
    """
    cls = type(spark)
    with cls._lock:
        cls._default_session = spark
    cls._active_session.session = spark
