"""WorkerService: CheckFunctions, PickleBatchFunction, and RunNode, which calls one node function at a
time in the worker's warm Spark session and streams what it does back."""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import traceback
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import pyspark.sql.connect.proto as proto
from pyspark.sql import DataFrame
from pyspark.sql.connect.session import SparkSession

from tauro_exec._proto.tauro.exec.v1 import worker_pb2 as pb
from tauro_exec._proto.tauro.exec.v1 import worker_pb2_grpc as pb_grpc
from tauro_exec.ml import ExecutionMetadata, MLContext, Retryable
from tauro_exec.worker.batchfn import pickle_batch_function, pickle_change_capture, python_ver
from tauro_exec.worker.cdc import ChangeSpec
from tauro_exec.worker.control import Control
from tauro_exec.worker.functions import FunctionError, Loader, accepts_ml_context, call_arguments, call_form
from tauro_exec.worker.output import LogForward, NodeEvents, NodeOutput
from tauro_exec.worker.profile import Calls, Profile
from tauro_exec.worker.quarantine import BatchWrite, split_batches
from tauro_exec.worker.session import WarmSession, connection_lost, make_active
from tauro_exec.worker.tauro_mlops import MLOpsIntegration
from tauro_exec.worker.tracking import MlflowTarget, Registry, Tracker, metric_sink

log = logging.getLogger("tauro_exec.worker")  # the worker's one logger, whichever module logs

# How often a cancelled node's Spark operations are interrupted again while
# its code keeps starting new ones.
_INTERRUPT_EVERY = 1.0


class ResultError(Exception):
    """A node function returned something that is not a usable DataFrame."""


class NodeWorker(pb_grpc.WorkerServiceServicer):
    """Calls node functions, one at a time, in one warm Spark Connect session."""

    def __init__(
        self, roots: Sequence[Path], prefixes: Sequence[str], spark_remote: str, control: Control, profile: bool = False
    ) -> None:
        self._functions = Loader(roots, prefixes)
        # Profiling counts the session's requests; without it nothing is counted.
        self._calls = Calls() if profile else None
        self._session = WarmSession(spark_remote, control, self._calls)
        self._control = control
        self._node_lock = threading.Lock()
        # The conf earlier nodes set (spark_config and hyperparameters) by
        # key, and on which session: the next node sets what differs and
        # unsets what it does not set itself, each in one request.
        self._conf_session: SparkSession | None = None
        self._conf_left: dict[str, str] = {}

    def close(self) -> None:
        self._session.close()

    # -- CheckFunctions --

    def CheckFunctions(self, request: pb.CheckFunctionsRequest, context: grpc.ServicerContext) -> pb.CheckFunctionsResponse:
        prefixes = self._functions.prefixes(request.allowed_module_prefixes)
        problems = []
        for ref in request.functions:
            msg = self._functions.problem(ref.module, ref.function, ref.inputs, ref.streaming, prefixes, ref.batch_function)
            if msg:
                problems.append(pb.FunctionProblem(node=ref.node, message=msg, batch_function=ref.batch_function))
        return pb.CheckFunctionsResponse(problems=problems)

    # -- PickleBatchFunction --

    def PickleBatchFunction(
        self, request: pb.PickleBatchFunctionRequest, context: grpc.ServicerContext
    ) -> pb.PickleBatchFunctionResponse:
        if request.HasField("quarantine_split"):
            fn = _quarantine_split(request.quarantine_split)
            return pb.PickleBatchFunctionResponse(command=pickle_batch_function(fn), python_ver=python_ver())
        if request.HasField("cdc"):  # execd's own function, not the project's
            command = pickle_change_capture(_change_spec(request.cdc))
            return pb.PickleBatchFunctionResponse(command=command, python_ver=python_ver())
        prefixes = self._functions.prefixes(request.allowed_module_prefixes)
        msg = self._functions.problem(request.module, request.function, 0, True, prefixes, batch=True)
        if msg:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, msg)  # execd names the node and the field
        fn = self._functions.load(request.module, request.function, prefixes)
        return pb.PickleBatchFunctionResponse(command=pickle_batch_function(fn), python_ver=python_ver())

    # -- Suggest --

    def Suggest(self, request: pb.SuggestRequest, context: grpc.ServicerContext) -> pb.SuggestResponse:
        try:
            from tauro_exec.worker.proposal import suggest_for
        except ImportError as e:  # the optimiser is an optional extra
            context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"experiments need the optimiser: pip install 'tauro-exec[experiments]' in the workers' Python ({e})",
            )
        try:
            return suggest_for(request)
        except ValueError as e:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))

    # -- RunNode --

    def RunNode(self, request: pb.RunNodeRequest, context: grpc.ServicerContext) -> Iterator[pb.RunNodeResponse]:
        with self._node_lock:
            try:
                yield from self._run(request, context)
            finally:
                self._control.done(request.call_id)

    def _run(self, request: pb.RunNodeRequest, context: grpc.ServicerContext) -> Iterator[pb.RunNodeResponse]:
        events: NodeEvents = NodeEvents()
        ended = threading.Event()
        tag = "tauro-" + (request.call_id or "node")
        thread = threading.Thread(
            target=self._call, args=(request, tag, events, ended), name=f"node-{request.node}", daemon=True
        )

        def on_rpc_end() -> None:
            if not ended.is_set():  # cancelled or timed out: stop the node's Spark work
                threading.Thread(target=self._interrupt, args=(tag, ended), daemon=True).start()

        context.add_callback(on_rpc_end)
        thread.start()
        try:
            while (event := events.get()) is not None:
                yield event
        finally:
            # A node that ignores the interrupt keeps the worker busy; execd
            # kills the worker if that lasts.
            thread.join()

    def _interrupt(self, tag: str, ended: threading.Event) -> None:
        while not ended.is_set():
            self._session.interrupt(tag)
            ended.wait(_INTERRUPT_EVERY)

    def _call(self, request: pb.RunNodeRequest, tag: str, events: NodeEvents, ended: threading.Event) -> None:
        forward = LogForward(events, threading.get_ident())
        logging.getLogger().addHandler(forward)
        outputs = [o for o in (sys.stdout, sys.stderr) if isinstance(o, NodeOutput)]
        for o in outputs:
            o.attach_node(events)
        spark: SparkSession | None = None
        profile = Profile(self._calls)
        try:
            prefixes = self._functions.prefixes(request.allowed_module_prefixes)
            fn = self._functions.load(request.module, request.function, prefixes)
            form = call_form(fn, len(request.input_views), request.streaming)
            profile.phase("load")
            spark = self._session.get(request.spark_remote)
            make_active(spark)
            spark.addTag(tag)
            self._set_conf(spark, dict(request.spark_conf))
            profile.phase("session")
            dfs = [spark.table(v) for v in request.input_views]
            args, kwargs = call_arguments(
                form,
                dfs,
                request.node,
                request.start_date or None,
                request.end_date or None,
                _json_object(request.context.node_config_json),
            )
            if accepts_ml_context(fn):
                kwargs["ml_context"] = _ml_context(request, spark, events)
            result = fn(*args, **kwargs)
            profile.phase("call")
            df = _as_dataframe(spark, result, request.node)
            fields = _publish(spark, df, request.result_view, request.node, tag)
            profile.phase("result")
            end = pb.RunNodeResponse(result=pb.WorkerResult(view="global_temp." + _quote(request.result_view), schema=fields))
        except BaseException as e:  # SystemExit from a node must not stop the worker
            if connection_lost(e):
                self._session.drop(spark)
            end = error_response(e)
        try:
            for m in profile.metrics():  # none unless profiling; before the end, which execd reads last
                events.put(pb.RunNodeResponse(metric=m))
            events.put(end)
        finally:
            for o in outputs:
                o.detach_node()
            logging.getLogger().removeHandler(forward)
            ended.set()
            if spark is not None:
                spark.removeTag(tag)  # local to the client: no request
            events.put(None)

    def _set_conf(self, spark: SparkSession, conf: dict[str, str]) -> None:
        """Gives the node exactly its conf, its run's spark_config and its
        hyperparameters: what an earlier node set and this one does not is
        unset, what this one sets to another value is set, each in one
        request (none when nothing changes: the nodes of a run share their
        spark_config). A value a function sets itself stays for the next
        node, of this run or another, unless that node's conf sets it."""
        had = self._conf_left if self._conf_session is spark else {}
        stale = sorted(had.keys() - conf.keys())
        changed = {k: v for k, v in conf.items() if had.get(k) != v}
        self._conf_session, self._conf_left = spark, dict(had)
        if stale:
            spark.client.config(proto.ConfigRequest.Operation(unset=proto.ConfigRequest.Unset(keys=stale)))
            for k in stale:
                del self._conf_left[k]
        if changed:
            pairs = [proto.KeyValue(key=k, value=changed[k]) for k in sorted(changed)]
            spark.client.config(proto.ConfigRequest.Operation(set=proto.ConfigRequest.Set(pairs=pairs)))
            self._conf_left.update(changed)


def error_response(e: BaseException) -> pb.RunNodeResponse:
    if isinstance(e, (FunctionError, ResultError)):
        err = pb.WorkerError(type=type(e).__name__, message=str(e))
    else:
        err = pb.WorkerError(
            type=type(e).__name__,
            message=str(e),
            traceback=_user_traceback(e),
            retryable=isinstance(e, Retryable) or connection_lost(e),
        )
    return pb.RunNodeResponse(error=err)


def _user_traceback(e: BaseException) -> str:
    """e's traceback without the worker's own frames and importlib's machinery."""
    te = traceback.TracebackException.from_exception(e)
    worker = os.path.dirname(os.path.abspath(__file__))
    frames = [
        f
        for f in te.stack
        if os.path.dirname(os.path.abspath(f.filename)) != worker and not f.filename.startswith("<frozen importlib")
    ]
    te.stack = traceback.StackSummary.from_list(frames)
    return "".join(te.format())


def _change_spec(c: pb.ChangeCapture) -> ChangeSpec:
    return ChangeSpec(
        target=c.target,
        keys=tuple(c.keys),
        sequence_by=c.sequence_by,
        apply_as_deletes=c.apply_as_deletes,
        except_columns=tuple(c.except_columns),
        scd_type=c.scd_type,
    )


def _quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _json_object(text: str) -> dict[str, Any]:
    if not text:
        return {}
    value = json.loads(text)
    return value if isinstance(value, dict) else {}


def _ml_context(request: pb.RunNodeRequest, spark: SparkSession, events: NodeEvents) -> MLContext:
    c = request.context

    def put_metric(name: str, value: float, step: int) -> None:
        events.put(pb.RunNodeResponse(metric=pb.WorkerMetric(name=name, value=value, step=step)))

    log_metric = metric_sink(put_metric)
    target = MlflowTarget.from_proto(c.mlflow) if c.HasField("mlflow") else MlflowTarget()
    tracker = Tracker(target, log_metric)
    registry = Registry(tracker)
    meta = ExecutionMetadata(
        node=request.node, pipeline=c.pipeline, run_id=c.run_id, attempt=c.attempt, start_time=c.start_time
    )
    return MLContext(
        model_version=c.model_version,
        hyperparams=_json_object(c.hyperparams_json),
        node_config=_json_object(c.node_config_json),
        pipeline_config=_json_object(c.pipeline_config_json),
        execution_metadata=meta,
        spark=spark,
        log_metric=log_metric,
        tracker=tracker,
        registry=registry,
        mlflow=target.info(),
        mlops_run_id=tracker.run_id,
        mlops_integration=MLOpsIntegration(tracker, registry),
    )


def _publish(spark: SparkSession, df: DataFrame, view: str, node: str, tag: str) -> list[pb.WorkerField]:
    """Leaves df in the global view execd takes it from, and returns its
    schema, which must have columns.

    The view and the schema are two requests that do not wait on each
    other, so they are sent together: a node's result costs one round trip
    to Spark, not two. The view carries the node's tag (tags are per
    thread), so a cancel interrupts it. A failure reads as it did when the
    schema came first: the schema's error wins, with the traceback it had,
    and a result without columns leaves no view behind.
    """

    def make_view() -> None:
        spark.addTag(tag)
        try:
            df.createOrReplaceGlobalTempView(view)
        finally:
            spark.removeTag(tag)

    with ThreadPoolExecutor(1, thread_name_prefix="result-view") as pool:  # its end waits for the view
        made = pool.submit(make_view)
        schema = df.schema
    if not schema.fields:
        if made.exception() is None:
            spark.catalog.dropGlobalTempView(view)
        raise ResultError(f"node {node} returned a DataFrame without columns")
    made.result()
    return [pb.WorkerField(name=f.name, type=f.dataType.simpleString(), nullable=f.nullable) for f in schema.fields]


def _as_dataframe(spark: SparkSession, result: object, node: str) -> DataFrame:
    """The node's result as a Spark DataFrame; a pandas DataFrame is converted."""
    kind = type(result)
    if isinstance(result, DataFrame):
        df = result
    elif kind.__name__ == "DataFrame" and kind.__module__.startswith("pandas"):
        df = spark.createDataFrame(result)
    elif result is None:
        raise ResultError(f"node {node} returned None; a node function must return a Spark or pandas DataFrame")
    else:
        raise ResultError(f"node {node} returned a {kind.__module__}.{kind.__qualname__}; return a Spark or pandas DataFrame")
    return df


def _quarantine_split(q: pb.QuarantineSplit) -> Any:
    """The foreachBatch function a QuarantineSplit asks for."""

    def write(w: pb.BatchWrite) -> BatchWrite:
        return BatchWrite(w.format, w.path, dict(w.options), tuple(w.partition_by), w.txn_app_id)

    return split_batches(q.keep, write(q.sink), write(q.quarantine))
