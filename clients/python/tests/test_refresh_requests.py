"""execute()'s full_refresh and reset_checkpoint, as they go on the wire.

No daemon: the recording stub of test_project_requests answers. The clears
themselves are tested against a real execd and Spark in Go
(cmd/execd/refresh_test.go, internal/spark/backend/clear_test.go).
"""

from __future__ import annotations

from tauro_exec._proto.tauro.exec.v1 import exec_pb2 as pb

from test_project_requests import RecordingStub, stubbed


def test_execute_sends_the_nodes_to_clear_and_a_lone_name_is_one_node() -> None:
    stub = RecordingStub()
    stub.answers["ExecutePipeline"] = pb.ExecutePipelineResponse(
        run=pb.Run(run_id="r1", full_refresh=["land"], reset_checkpoint=["publish", "ticks"])
    )
    c = stubbed(stub)
    run = c.execute("s", full_refresh="land", reset_checkpoint=["publish", "ticks"])
    [(method, req)] = stub.requests
    assert method == "ExecutePipeline"
    assert list(req.full_refresh) == ["land"]
    assert list(req.reset_checkpoint) == ["publish", "ticks"]
    assert run.full_refresh == ["land"] and run.reset_checkpoint == ["publish", "ticks"]

    stub.requests.clear()
    c.execute("s")
    [(_, req)] = stub.requests
    assert not req.full_refresh and not req.reset_checkpoint
