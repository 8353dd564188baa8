"""client.runs() and client.experiments(): list-like, lazily paged, a table in Jupyter.

No daemon: a stub answers ListRuns/ListExperiments from a fixed list and
counts the calls, so what each read fetches can be checked exactly.
"""

from __future__ import annotations

from typing import Any

import pytest

from tauro_exec import Client, Experiment, Experiments, Run, Runs
from tauro_exec._proto.tauro.exec.v1 import exec_pb2 as pb


class ListStub:
    """Serves ``total`` runs and experiments, newest first, in pages of the requested size."""

    def __init__(self, total: int) -> None:
        self.runs = [pb.Run(run_id=f"r{i}", pipeline="p", state=pb.RUN_STATE_SUCCEEDED) for i in range(total, 0, -1)]
        self.experiments = [
            pb.Experiment(experiment_id=f"x{i}", pipeline="p", state=pb.EXPERIMENT_STATE_RUNNING, n_trials=4)
            for i in range(total, 0, -1)
        ]
        self.requests: list[Any] = []

    def _page(self, items: list[Any], req: Any) -> tuple[list[Any], str]:
        self.requests.append(req)
        start = int(req.page_token or 0)
        end = start + req.page_size
        return items[start:end], (str(end) if end < len(items) else "")

    def ListRuns(self, req: pb.ListRunsRequest, timeout: float | None = None) -> pb.ListRunsResponse:
        runs, token = self._page(self.runs, req)
        return pb.ListRunsResponse(runs=runs, next_page_token=token)

    def ListExperiments(self, req: pb.ListExperimentsRequest, timeout: float | None = None) -> pb.ListExperimentsResponse:
        xs, token = self._page(self.experiments, req)
        return pb.ListExperimentsResponse(experiments=xs, next_page_token=token)


@pytest.fixture
def stub() -> ListStub:
    return ListStub(5)


@pytest.fixture
def client(stub: ListStub) -> Client:
    c = Client("127.0.0.1:9")  # never dialled: every call goes to the stub
    c._rpc.stub = stub  # type: ignore[assignment]
    return c


def ids(items: Any) -> list[str]:
    return [x.id for x in items]


def test_runs_fetches_nothing_until_read_then_one_page_at_a_time(client: Client, stub: ListStub) -> None:
    runs = client.runs(page_size=2)
    assert isinstance(runs, Runs) and stub.requests == []

    it = iter(runs)
    assert [next(it).id, next(it).id] == ["r5", "r4"]
    assert len(stub.requests) == 1  # the second page waits until the third run is read
    assert next(it).id == "r3" and len(stub.requests) == 2

    assert ids(it) == ["r2", "r1"] and len(stub.requests) == 3
    assert ids(runs) == ["r5", "r4", "r3", "r2", "r1"] and len(stub.requests) == 3  # kept, not fetched again


def test_runs_indexes_and_slices_fetching_only_what_they_need(client: Client, stub: ListStub) -> None:
    runs = client.runs(page_size=2)

    assert runs[0].id == "r5" and len(stub.requests) == 1
    assert runs[2].id == "r3" and len(stub.requests) == 2
    assert ids(runs[:4]) == ["r5", "r4", "r3", "r2"] and len(stub.requests) == 2
    assert runs[-1].id == "r1" and len(stub.requests) == 3
    with pytest.raises(IndexError):
        runs[5]


def test_len_fetches_every_page_and_limit_stops_early(client: Client, stub: ListStub) -> None:
    assert len(client.runs(page_size=2)) == 5 and len(stub.requests) == 3

    stub.requests.clear()
    limited = client.runs(limit=3, page_size=2)
    assert ids(limited) == ["r5", "r4", "r3"] and len(limited) == 3
    assert [r.page_size for r in stub.requests] == [2, 2]
    assert list(client.runs(limit=0)) == [] and not client.runs(limit=0)


def test_runs_passes_its_filters_on_every_page(client: Client, stub: ListStub) -> None:
    list(client.runs("p", states=["succeeded"], page_size=2))

    assert [(r.pipeline, list(r.states), r.page_token) for r in stub.requests] == [
        ("p", [pb.RUN_STATE_SUCCEEDED], ""),
        ("p", [pb.RUN_STATE_SUCCEEDED], "2"),
        ("p", [pb.RUN_STATE_SUCCEEDED], "4"),
    ]


def test_runs_show_as_a_table_of_the_first_page_saying_there_are_more(client: Client, stub: ListStub) -> None:
    stub.runs[0].message = "<b>bold</b> & more"
    runs = client.runs(page_size=2)

    table = runs._repr_html_()

    assert table.startswith("<table") and table.count("<tr>") == 3  # a header and two runs
    assert "<code>r5</code>" in table and "r3" not in table and len(stub.requests) == 1
    assert "more not fetched yet" in table
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; more" in table and "<b>bold</b>" not in table
    assert "more not fetched" in repr(runs) and "<Run r5 " in repr(runs)

    len(runs)
    table = runs._repr_html_()
    assert table.count("<tr>") == 6 and "more not fetched" not in table and "5 runs" in table


def test_experiments_page_lazily_and_show_as_a_table(client: Client, stub: ListStub) -> None:
    xs = client.experiments(page_size=2)
    assert isinstance(xs, Experiments) and stub.requests == []

    first = xs[0]
    assert isinstance(first, Experiment) and first.id == "x5" and len(stub.requests) == 1
    table = xs._repr_html_()
    assert "<code>x5</code>" in table and "RUNNING" in table and "more not fetched yet" in table
    assert ids(client.experiments(limit=3, page_size=2)) == ["x5", "x4", "x3"]
    assert len(xs) == 5


def test_existing_callers_still_iterate(client: Client) -> None:
    # As a generator was used: in a for loop, list() and a comprehension.
    for r in client.runs(page_size=2):
        assert isinstance(r, Run)
    assert ids(list(client.runs(page_size=3))) == ["r5", "r4", "r3", "r2", "r1"]
    assert any(x.id == "x1" for x in client.experiments())
