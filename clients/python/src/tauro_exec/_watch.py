"""The one resumable watch loop: follow a run or an experiment through dropped streams.

``Run`` and ``Experiment`` differ only in their calls and event types; each
gives ``follow`` a ``Followed``, and the loop decides everything else: which
events to yield, when to reconnect and when to give up, and how a deadline
bounds every call it makes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any, Protocol, TypeVar

import grpc

from tauro_exec._rpc import Backoff, Transport, remaining
from tauro_exec.errors import TauroExecError, Unavailable, from_rpc_error

# How long following keeps reconnecting while execd cannot be reached.
DEFAULT_RECONNECT_TIMEOUT = 60.0


class Sequenced(Protocol):
    @property
    def sequence(self) -> int: ...


E = TypeVar("E", bound=Sequenced)


class Stream(Protocol):
    """A server-streaming call as gRPC returns it: its responses, and a way to stop it."""

    def __iter__(self) -> Iterator[Any]: ...

    def cancel(self) -> bool: ...


class Followed(Protocol[E]):
    """What the loop needs of the thing it follows."""

    def _open_watch(self, after_sequence: int, timeout: float | None) -> Stream:
        """Start the watch call, replaying what comes after ``after_sequence``."""
        ...

    def _event(self, response: Any) -> E:
        """One streamed response as the event the caller sees."""
        ...

    def _apply(self, event: E) -> None:
        """Bring the snapshot up to date with one event, without a round trip."""
        ...

    def _reread(self, timeout: float | None) -> tuple[bool, int]:
        """Read the snapshot again; return whether it is terminal and its last sequence."""
        ...

    def _timeout_error(self) -> TimeoutError: ...


def follow(
    target: Followed[E], rpc: Transport, after: int, deadline: float | None, reconnect_timeout: float
) -> Iterator[E]:
    """Yield the events of ``target`` after sequence ``after``, each exactly once, in order.

    Replays what is stored, then follows live. A dropped stream, or an
    execd that cannot be reached for up to ``reconnect_timeout`` seconds
    without progress, is resumed after the last event seen. Ends once the
    target is terminal and every event up to its last one has been yielded.

    ``deadline`` (a ``time.monotonic()`` time, or None) bounds the whole
    follow: the stream, each re-read and each pause between attempts; when
    it passes, ``target._timeout_error()`` is raised.
    """
    last = after
    down_since: float | None = None
    delays = Backoff().delays()
    while True:
        try:
            stream = target._open_watch(last, remaining(deadline))
            try:
                for resp in stream:
                    ev = target._event(resp)
                    if ev.sequence <= last:
                        continue  # already yielded before a reconnect
                    last = ev.sequence
                    down_since, delays = None, Backoff().delays()
                    target._apply(ev)
                    yield ev
            except grpc.RpcError as err:
                raise from_rpc_error(err) from None
            finally:
                stream.cancel()
            terminal, newest = target._reread(call_timeout(rpc, deadline))
        except Unavailable:
            now = time.monotonic()
            down_since = now if down_since is None else down_since
            if now - down_since > reconnect_timeout:
                raise
            _pause(next(delays), deadline, target)
            continue
        except TauroExecError as err:
            if deadline is not None and err.code == grpc.StatusCode.DEADLINE_EXCEEDED:
                raise target._timeout_error() from None
            raise
        if terminal and last >= newest:
            return
        # The stream ended before the target did, or before its last event
        # reached us (the daemon restarted): resume after the last one seen.
        _pause(next(delays), deadline, target)


def call_timeout(rpc: Transport, deadline: float | None) -> float | None:
    """The timeout of one unary call: the client's, cut to what is left of the deadline."""
    left = remaining(deadline)
    if left is None:
        return rpc.timeout
    return left if rpc.timeout is None else min(left, rpc.timeout)


def _pause(seconds: float, deadline: float | None, target: Followed[Any]) -> None:
    left = remaining(deadline)
    if left is not None and left <= seconds:
        raise target._timeout_error()
    time.sleep(seconds)
