"""watch() survives a dropped stream: it reconnects and resumes by sequence."""

from __future__ import annotations

import signal

import pytest
from harness import CuttableProxy, Daemon

from tauro_exec import (
    Client,
    Event,
    NodeState,
    NodeStateChanged,
    RunFailed,
    RunState,
    RunStateChanged,
)


def test_watch_resumes_after_the_connection_drops_mid_stream(
    client: Client, proxy: CuttableProxy
) -> None:
    run_id = client.execute("slow").id
    seen: list[Event] = []

    with Client(proxy.address) as through_proxy:
        run = through_proxy.run(run_id)
        for ev in run.watch():
            seen.append(ev)
            # nap sleeps for seconds on Spark: cut while the run is surely mid-way.
            if isinstance(ev, NodeStateChanged) and ev.node == "nap" and ev.state is NodeState.RUNNING:
                assert proxy.connections == 1
                proxy.cut()

    assert proxy.connections >= 2, "the watch never reconnected"
    assert [e.sequence for e in seen] == list(range(1, len(seen) + 1))
    assert isinstance(seen[-1], RunStateChanged) and seen[-1].state is RunState.SUCCEEDED
    # What the resumed watch gave is exactly what the store holds.
    assert seen == list(client.run(run_id).watch())


def test_watch_follows_a_run_through_a_graceful_daemon_restart(fresh_daemon: Daemon) -> None:
    # A nap far longer than the test: the restart is what ends the run. A
    # graceful stop records INTERRUPTED before it closes the stream.
    fresh_daemon.start(env={"NAP_MS": "600000"})
    seen: list[Event] = []
    with Client(fresh_daemon.address, timeout=30) as c:
        run = c.execute("slow")
        for ev in run.watch(reconnect_timeout=120):
            seen.append(ev)
            if isinstance(ev, NodeStateChanged) and ev.node == "nap" and ev.state is NodeState.RUNNING:
                fresh_daemon.stop(sig=signal.SIGTERM)
                fresh_daemon.start(env={"NAP_MS": "100"})

        assert [e.sequence for e in seen] == list(range(1, len(seen) + 1))
        last = seen[-1]
        assert isinstance(last, RunStateChanged) and last.state is RunState.INTERRUPTED
        assert run.state is RunState.INTERRUPTED
        assert seen == list(c.run(run.id).watch())


def test_watch_follows_a_run_a_killed_daemon_left_and_the_next_one_took_up(fresh_daemon: Daemon) -> None:
    # A killed daemon drops the stream at once; its Spark work goes on, and
    # the next daemon takes the run up where it was, so only a watch that
    # reconnects and resumes sees it end, with nothing missed or repeated.
    fresh_daemon.start(env={"NAP_MS": "8000"})
    seen: list[Event] = []
    with Client(fresh_daemon.address, timeout=30) as c:
        run = c.execute("slow")
        for ev in run.watch(reconnect_timeout=120):
            seen.append(ev)
            if isinstance(ev, NodeStateChanged) and ev.node == "nap" and ev.state is NodeState.RUNNING:
                fresh_daemon.stop(sig=signal.SIGKILL)
                fresh_daemon.start(env={"NAP_MS": "100"})

        assert [e.sequence for e in seen] == list(range(1, len(seen) + 1))
        last = seen[-1]
        assert isinstance(last, RunStateChanged) and last.state is RunState.SUCCEEDED
        assert run.state is RunState.SUCCEEDED
        assert [(n.name, n.attempt) for n in run.nodes] == [("prepare", 1), ("nap", 1), ("after_nap", 1)]
        assert seen == list(c.run(run.id).watch())


def test_an_interrupted_run_fails_wait_and_repair_finishes_it(fresh_daemon: Daemon) -> None:
    fresh_daemon.start(env={"NAP_MS": "600000"})
    with Client(fresh_daemon.address, timeout=30) as c:
        run = c.execute("slow")
        for ev in run.watch():
            if isinstance(ev, NodeStateChanged) and ev.node == "nap" and ev.state is NodeState.RUNNING:
                break
        fresh_daemon.stop()
        fresh_daemon.start(env={"NAP_MS": "100"})

        with pytest.raises(RunFailed) as caught:
            run.wait(timeout=120)
        assert caught.value.run.state is RunState.INTERRUPTED

        repaired = run.repair().wait(timeout=300)
        assert repaired.state is RunState.SUCCEEDED
        assert repaired.repair_count == 1
        assert [n.state for n in repaired.nodes] == [NodeState.SUCCEEDED] * 3
