"""The node worker execd starts: ``python -m tauro_exec.worker --socket PATH --project DIR``.

A worker is a gRPC server (``WorkerService``) on a Unix socket. It calls one
node function at a time in the Spark Connect session it keeps between nodes,
so imports and the connection stay warm. Inputs arrive as the names of global
temporary views that execd registered; the result goes back as a global
temporary view. No rows cross the process boundary.

execd talks to the worker through the socket and a control pipe (``--control-fd``):
the worker writes ``ready`` once it serves and ``done CALL_ID`` when a node's
code has really ended, which after a cancel may be later than the call. With
``--watch-stdin`` it exits when its stdin closes, so it never outlives execd.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import io
import json
import logging
import math
import os
import queue
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator, Sequence
from concurrent import futures
from pathlib import Path
from typing import IO, Any

import grpc
import pyspark
from pyspark.sql import DataFrame
from pyspark.sql.connect.session import SparkSession

from tauro_exec._proto.tauro.exec.v1 import worker_pb2 as pb
from tauro_exec._proto.tauro.exec.v1 import worker_pb2_grpc as pb_grpc
from tauro_exec.ml import ExecutionMetadata, MLContext, Retryable

log = logging.getLogger("tauro_exec.worker")

# Top-level modules a node function may never come from, whatever the allowed
# prefixes say. Every standard-library module is refused as well.
_DENIED = frozenset({"tauro_exec", "grpc", "google", "pyspark", "py4j", "setuptools", "pip"})

# How often a cancelled node's Spark operations are interrupted again while
# its code keeps starting new ones.
_INTERRUPT_EVERY = 1.0


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


class FunctionError(Exception):
    """A node function that cannot be loaded or called as configured."""


class ResultError(Exception):
    """A node function returned something that is not a usable DataFrame."""


# ---- loading functions -------------------------------------------------------


def project_roots(project: Path) -> list[Path]:
    """The folders put on sys.path for a project, as tauro does: itself, src/ and lib/."""
    return [p for p in (project, project / "src", project / "lib") if p.is_dir()]


def project_packages(roots: Sequence[Path]) -> list[str]:
    """The top-level modules and packages a project defines in its roots."""
    names: set[str] = set()
    for root in roots:
        for entry in root.iterdir():
            name = entry.stem if entry.suffix == ".py" else entry.name
            if not name.isidentifier() or name.startswith("__") or entry in roots:
                continue
            if entry.is_file() and entry.suffix == ".py":
                names.add(name)
            elif entry.is_dir() and any(entry.glob("*.py")):
                names.add(name)
    return sorted(n for n in names if not _denied(n))


def _denied(top: str) -> bool:
    return top in _DENIED or top in sys.stdlib_module_names


def _allowed(module: str, prefixes: Sequence[str]) -> bool:
    for p in prefixes:
        p = p.strip().rstrip(".")
        if p and (module == p or module.startswith(p + ".")):
            return True
    return False


def load_function(module: str, function: str, prefixes: Sequence[str]) -> Callable[..., Any]:
    """Imports module.function, refusing modules outside prefixes and the standard library.

    Errors raised while importing the module (ImportError, SyntaxError, any
    exception of its top-level code) propagate unchanged.
    """
    parts = module.split(".")
    if not all(p.isidentifier() for p in parts) or not function.isidentifier():
        raise FunctionError(f"{module}.{function} is not a valid dotted function path")
    if _denied(parts[0]):
        raise FunctionError(
            f"module {module!r} is not a project module ({parts[0]} is refused); "
            "node functions must live in the project's own packages"
        )
    if not _allowed(module, prefixes):
        allowed = ", ".join(prefixes) or "none found in the project, src/ or lib/"
        raise FunctionError(
            f"module {module!r} is outside the allowed modules ({allowed}); move the function under one "
            "of them or set global_settings.allowed_module_prefixes"
        )
    mod = importlib.import_module(module)
    fn: object = getattr(mod, function, None)
    if fn is None:
        raise FunctionError(f"module {module!r} has no attribute {function!r}")
    if not callable(fn):
        raise FunctionError(f"{module}.{function} is a {type(fn).__name__}, not a function")
    return fn


class ProjectCode:
    """Keeps the project's imported modules in step with their source files.

    A warm worker imports a node's module once. Before each load, the files of
    the project modules imported so far are checked; if one changed or went
    away, every project module is dropped from ``sys.modules`` so the next
    import reads the new code, as a fresh worker would. Modules outside the
    project's own top-level packages (pyspark, a venv inside the project) are
    never dropped.
    """

    def __init__(self, roots: Sequence[Path]) -> None:
        self._roots = [r.resolve() for r in roots]
        self._stamps: dict[str, tuple[int, int] | None] = {}

    def _modules(self) -> dict[str, str]:
        """The loaded project modules and their files."""
        tops = set(project_packages(self._roots))
        found: dict[str, str] = {}
        for name, mod in list(sys.modules.items()):
            file = getattr(mod, "__file__", None)
            if name.split(".")[0] not in tops or not file:
                continue
            path = Path(file).resolve()
            if any(path.is_relative_to(r) for r in self._roots):
                found[name] = str(path)
        return found

    @staticmethod
    def _stamp(file: str) -> tuple[int, int] | None:
        try:
            st = os.stat(file)
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size

    def record(self) -> None:
        """Notes the files of project modules imported since the last call."""
        for file in self._modules().values():
            if file not in self._stamps:
                self._stamps[file] = self._stamp(file)

    def refresh(self) -> list[str]:
        """Drops the project's modules if any of their files changed; returns those files."""
        changed = [f for f, stamp in self._stamps.items() if self._stamp(f) != stamp]
        if changed:
            for name in self._modules():
                sys.modules.pop(name, None)
            self._stamps.clear()
            importlib.invalidate_caches()
        return changed


def accepts_ml_context(fn: Callable[..., Any]) -> bool:
    """Whether fn has an ml_context parameter (or **kwargs) to pass the context by keyword."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    for p in params:
        if p.kind is inspect.Parameter.VAR_KEYWORD:
            return True
        if p.name == "ml_context" and p.kind is not inspect.Parameter.POSITIONAL_ONLY:
            return True
    return False


def signature_problem(fn: Callable[..., Any], inputs: int) -> str | None:
    """Why fn(*inputs, start_date=..., end_date=...[, ml_context=...]) cannot be called, or None."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None  # no introspectable signature: the call itself will tell
    kwargs: dict[str, object] = {"start_date": "", "end_date": ""}
    if accepts_ml_context(fn):
        kwargs["ml_context"] = None
    try:
        sig.bind(*range(inputs), **kwargs)
    except TypeError as e:
        dfs = "no input DataFrames" if inputs == 0 else f"{inputs} input DataFrame(s) positionally"
        return (
            f"{getattr(fn, '__qualname__', fn)}{sig} cannot take {dfs} and start_date/end_date as keywords: {e}; "
            "write it as def fn(df1, ..., *, start_date, end_date) (or add **kwargs)"
        )
    return None


# ---- errors ------------------------------------------------------------------


def _user_traceback(e: BaseException) -> str:
    """e's traceback without the worker's own frames and importlib's machinery."""
    te = traceback.TracebackException.from_exception(e)
    here = os.path.abspath(__file__)
    frames = [f for f in te.stack if os.path.abspath(f.filename) != here and not f.filename.startswith("<frozen importlib")]
    te.stack = traceback.StackSummary.from_list(frames)
    return "".join(te.format())


def _spark_connection_lost(e: BaseException) -> bool:
    """A failure of the connection to Spark (or of its session), which a retry may not meet."""
    codes = {grpc.StatusCode.UNAVAILABLE}
    if isinstance(e, grpc.RpcError) and callable(getattr(e, "code", None)):
        return e.code() in codes
    get_code = getattr(e, "getGrpcStatusCode", None)
    if callable(get_code) and get_code() in codes:
        return True
    condition = getattr(e, "getCondition", None)
    return callable(condition) and str(condition() or "").startswith("INVALID_HANDLE")


def error_response(e: BaseException) -> pb.RunNodeResponse:
    if isinstance(e, (FunctionError, ResultError)):
        err = pb.WorkerError(type=type(e).__name__, message=str(e))
    else:
        err = pb.WorkerError(
            type=type(e).__name__,
            message=str(e),
            traceback=_user_traceback(e),
            retryable=isinstance(e, Retryable) or _spark_connection_lost(e),
        )
    return pb.RunNodeResponse(error=err)


# ---- the service -------------------------------------------------------------


class _Control:
    """The line protocol to execd on the control pipe (or nowhere)."""

    def __init__(self, out: IO[str] | None) -> None:
        self._out = out
        self._lock = threading.Lock()

    def send(self, line: str) -> None:
        if self._out is None:
            return
        with self._lock:
            try:
                self._out.write(line + "\n")
                self._out.flush()
            except OSError:
                pass  # execd is gone; stdin's end stops us


class _Forward(logging.Handler):
    """Sends the log records one node's thread emits back as WorkerLog events."""

    def __init__(self, events: queue.Queue[pb.RunNodeResponse | None], thread: int) -> None:
        super().__init__(logging.INFO)
        self._events, self._thread = events, thread

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread != self._thread:
            return
        level = "warning" if record.levelno >= logging.WARNING else "info"
        self._events.put(pb.RunNodeResponse(log=pb.WorkerLog(level=level, text=self.format(record))))


class _NodeOutput(io.TextIOBase):
    """sys.stdout or sys.stderr of a worker: what a node's thread prints becomes its events.

    print() in node code shows on the node's run as log lines, as a task's
    output does in other schedulers; other threads write to the real stream.
    A node's lines are capped so that a print in a hot loop cannot flood the
    run's event log.
    """

    MAX_LINES = 1000
    MAX_LINE = 8192

    def __init__(self, real: IO[str], level: str) -> None:
        super().__init__()
        self._real, self._level = real, level
        self._lock = threading.Lock()
        self._nodes: dict[int, tuple[queue.Queue[pb.RunNodeResponse | None], list[str], list[int]]] = {}

    def attach_node(self, events: queue.Queue[pb.RunNodeResponse | None]) -> None:
        with self._lock:
            self._nodes[threading.get_ident()] = (events, [], [0])

    def detach_node(self) -> None:
        with self._lock:
            node = self._nodes.pop(threading.get_ident(), None)
        if node is not None and node[1]:
            self._emit(node, "".join(node[1]))

    def _emit(self, node: tuple[queue.Queue[pb.RunNodeResponse | None], list[str], list[int]], line: str) -> None:
        events, _, count = node
        count[0] += 1
        if count[0] > self.MAX_LINES:
            if count[0] == self.MAX_LINES + 1:
                text = f"more printed output was dropped (a node keeps at most {self.MAX_LINES} lines)"
                events.put(pb.RunNodeResponse(log=pb.WorkerLog(level="warning", text=text)))
            return
        if len(line) > self.MAX_LINE:
            line = line[: self.MAX_LINE] + " [line cut]"
        events.put(pb.RunNodeResponse(log=pb.WorkerLog(level=self._level, text=line)))

    def write(self, text: str) -> int:
        node = self._nodes.get(threading.get_ident())
        if node is None:
            return self._real.write(text)
        pending = node[1]
        pending.append(text)
        if "\n" in text:
            *lines, rest = "".join(pending).split("\n")
            pending[:] = [rest] if rest else []
            for line in lines:
                self._emit(node, line)
        return len(text)

    def flush(self) -> None:
        self._real.flush()

    def fileno(self) -> int:
        return self._real.fileno()

    def isatty(self) -> bool:
        return False

    def writable(self) -> bool:
        return True

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._real, "encoding", "utf-8")


class NodeWorker(pb_grpc.WorkerServiceServicer):
    """Calls node functions, one at a time, in one warm Spark Connect session."""

    def __init__(self, roots: Sequence[Path], prefixes: Sequence[str], spark_remote: str, control: _Control) -> None:
        self._roots = list(roots)
        self._prefixes = list(prefixes)
        self._remote = spark_remote
        self._control = control
        self._node_lock = threading.Lock()
        self._spark_lock = threading.Lock()
        self._spark: SparkSession | None = None
        self._spark_remote = ""
        self._code = ProjectCode(roots)
        self._import_lock = threading.Lock()

    def prefixes(self, requested: Sequence[str]) -> list[str]:
        return list(requested) or self._prefixes or project_packages(self._roots)

    def load(self, module: str, function: str, prefixes: Sequence[str]) -> Callable[..., Any]:
        """load_function, re-importing the project's code first if it changed on disk."""
        with self._import_lock:
            if changed := self._code.refresh():
                log.info("project code changed (%s); importing it again", ", ".join(sorted(changed)))
            try:
                return load_function(module, function, prefixes)
            finally:
                self._code.record()

    def session(self, remote: str) -> SparkSession:
        remote = remote or self._remote
        if not remote:
            raise FunctionError("no Spark Connect URL: execd passes one with each node, or start the worker with --spark-remote")
        with self._spark_lock:
            if self._spark is None or self._spark_remote != remote:
                self._drop_session()
                url, user = with_user(remote)
                self._spark = SparkSession.builder.remote(url).create()
                self._spark_remote = remote
                # execd ends the session on the server if this process dies
                # mid-node, so that its Spark work does not run on unowned.
                self._control.send("session " + json.dumps({"remote": url, "session_id": self._spark.session_id, "user_id": user}))
                _check_versions(self._spark)
            return self._spark

    def _drop_session(self) -> None:
        spark, self._spark = self._spark, None
        if spark is not None:
            try:
                spark.stop()
            except Exception:  # a dead connection cannot be released politely
                log.debug("stopping the Spark session failed", exc_info=True)

    def close(self) -> None:
        with self._spark_lock:
            self._drop_session()

    # -- CheckFunctions --

    def CheckFunctions(self, request: pb.CheckFunctionsRequest, context: grpc.ServicerContext) -> pb.CheckFunctionsResponse:
        prefixes = self.prefixes(request.allowed_module_prefixes)
        problems = []
        for ref in request.functions:
            msg = self._check(ref, prefixes)
            if msg:
                problems.append(pb.FunctionProblem(node=ref.node, message=msg))
        return pb.CheckFunctionsResponse(problems=problems)

    def _check(self, ref: pb.FunctionRef, prefixes: Sequence[str]) -> str | None:
        try:
            fn = self.load(ref.module, ref.function, prefixes)
        except FunctionError as e:
            return str(e)
        except BaseException as e:  # the module's own import-time failure
            where = ""
            tb = traceback.extract_tb(e.__traceback__)
            if tb:
                where = f" (at {tb[-1].filename}:{tb[-1].lineno})"
            if isinstance(e, SyntaxError) and e.filename:
                where = f" (at {e.filename}:{e.lineno})"
            return f"importing {ref.module} fails: {type(e).__name__}: {e}{where}"
        return signature_problem(fn, ref.inputs)

    # -- RunNode --

    def RunNode(self, request: pb.RunNodeRequest, context: grpc.ServicerContext) -> Iterator[pb.RunNodeResponse]:
        with self._node_lock:
            try:
                yield from self._run(request, context)
            finally:
                self._control.send(f"done {request.call_id}")

    def _run(self, request: pb.RunNodeRequest, context: grpc.ServicerContext) -> Iterator[pb.RunNodeResponse]:
        events: queue.Queue[pb.RunNodeResponse | None] = queue.Queue()
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
            spark = self._spark
            if spark is not None:
                try:
                    spark.interruptTag(tag)
                except Exception:
                    log.debug("interrupting %s failed", tag, exc_info=True)
            ended.wait(_INTERRUPT_EVERY)

    def _call(
        self,
        request: pb.RunNodeRequest,
        tag: str,
        events: queue.Queue[pb.RunNodeResponse | None],
        ended: threading.Event,
    ) -> None:
        forward = _Forward(events, threading.get_ident())
        logging.getLogger().addHandler(forward)
        outputs = [o for o in (sys.stdout, sys.stderr) if isinstance(o, _NodeOutput)]
        for o in outputs:
            o.attach_node(events)
        spark: SparkSession | None = None
        conf: list[str] = []
        try:
            fn = self.load(request.module, request.function, self.prefixes(request.allowed_module_prefixes))
            if problem := signature_problem(fn, len(request.input_views)):
                raise FunctionError(problem)
            spark = self.session(request.spark_remote)
            _make_active(spark)
            spark.addTag(tag)
            for key in sorted(request.spark_conf):
                spark.conf.set(key, request.spark_conf[key])
                conf.append(key)
            dfs = [spark.table(v) for v in request.input_views]
            kwargs: dict[str, Any] = {
                "start_date": request.start_date or None,
                "end_date": request.end_date or None,
            }
            if accepts_ml_context(fn):
                kwargs["ml_context"] = _ml_context(request, spark, events)
            result = fn(*dfs, **kwargs)
            df = _as_dataframe(spark, result, request.node)
            df.createOrReplaceGlobalTempView(request.result_view)
            fields = [pb.WorkerField(name=f.name, type=f.dataType.simpleString(), nullable=f.nullable) for f in df.schema.fields]
            events.put(pb.RunNodeResponse(result=pb.WorkerResult(view="global_temp." + _quote(request.result_view), schema=fields)))
        except BaseException as e:  # SystemExit from a node must not stop the worker
            if _spark_connection_lost(e):
                with self._spark_lock:
                    if self._spark is spark:
                        self._drop_session()
            events.put(error_response(e))
        finally:
            for o in outputs:
                o.detach_node()
            logging.getLogger().removeHandler(forward)
            ended.set()
            if spark is not None:
                self._cleanup(spark, tag, conf)
            events.put(None)

    @staticmethod
    def _cleanup(spark: SparkSession, tag: str, conf: Sequence[str]) -> None:
        """Leaves the session as the next node expects it: no tag, no hyperparameter conf."""
        try:
            spark.removeTag(tag)
            for key in conf:
                spark.conf.unset(key)
        except Exception:
            log.debug("resetting the session after a node failed", exc_info=True)


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


def _make_active(spark: SparkSession) -> None:
    """Lets node code reach the worker's session the usual ways.

    SparkSession.getActiveSession() is per thread and each node runs in a
    thread of its own; builder.getOrCreate() falls back to the default
    session, which must be the current one after a reconnect.
    """
    cls = type(spark)
    with cls._lock:
        cls._default_session = spark
    cls._active_session.session = spark


def _quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _json_object(text: str) -> dict[str, Any]:
    if not text:
        return {}
    value = json.loads(text)
    return value if isinstance(value, dict) else {}


def _ml_context(request: pb.RunNodeRequest, spark: SparkSession, events: queue.Queue[pb.RunNodeResponse | None]) -> MLContext:
    c = request.context

    def log_metric(name: str, value: float) -> None:
        number = float(value)
        if not name or not math.isfinite(number):
            raise ValueError(f"log_metric needs a name and a finite number, got {name!r}={value!r}")
        events.put(pb.RunNodeResponse(metric=pb.WorkerMetric(name=str(name), value=number)))

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
    )


def _as_dataframe(spark: SparkSession, result: object, node: str) -> DataFrame:
    """The node's result as a Spark DataFrame with columns; a pandas DataFrame is converted."""
    kind = type(result)
    if isinstance(result, DataFrame):
        df = result
    elif kind.__name__ == "DataFrame" and kind.__module__.startswith("pandas"):
        df = spark.createDataFrame(result)
    elif result is None:
        raise ResultError(f"node {node} returned None; a node function must return a Spark or pandas DataFrame")
    else:
        raise ResultError(f"node {node} returned a {kind.__module__}.{kind.__qualname__}; return a Spark or pandas DataFrame")
    if not df.schema.fields:
        raise ResultError(f"node {node} returned a DataFrame without columns")
    return df


# ---- process -----------------------------------------------------------------


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tauro_exec.worker", description=__doc__.split("\n")[0] if __doc__ else None)
    p.add_argument("--socket", required=True, help="Unix socket path to serve on")
    p.add_argument("--project", default=".", help="tauro project folder; it and its src/ and lib/ go on sys.path")
    p.add_argument("--allowed-prefixes", nargs="*", default=[], help="modules node functions may come from (default: the project's packages)")
    p.add_argument("--spark-remote", default="", help="Spark Connect URL used when a node names none")
    p.add_argument("--control-fd", type=int, default=-1, help="file descriptor for execd's control lines")
    p.add_argument("--watch-stdin", action="store_true", help="exit when stdin closes (execd holds its other end)")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    # pyspark.sql.SparkSession's class methods then answer with Connect sessions.
    os.environ["SPARK_CONNECT_MODE_ENABLED"] = "1"
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger().handlers[0].setLevel(logging.WARNING)  # node logs go to execd, not twice to stderr
    sys.stdout = _NodeOutput(sys.stdout, "info")
    sys.stderr = _NodeOutput(sys.stderr, "warning")
    project = Path(args.project).resolve()
    roots = project_roots(project)
    sys.path[:0] = [str(r) for r in roots if str(r) not in sys.path]
    control = _Control(os.fdopen(args.control_fd, "w") if args.control_fd >= 0 else None)

    worker = NodeWorker(roots, args.allowed_prefixes, args.spark_remote, control)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="worker-rpc"))
    pb_grpc.add_WorkerServiceServicer_to_server(worker, server)
    if server.add_insecure_port("unix:" + args.socket) == 0:
        print(f"cannot listen on unix:{args.socket}", file=sys.stderr)
        return 1
    server.start()

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    if args.watch_stdin:

        def watch() -> None:
            sys.stdin.buffer.read()
            stop.set()

        threading.Thread(target=watch, daemon=True).start()
    control.send("ready")
    stop.wait()
    server.stop(grace=5).wait()
    worker.close()
    sys.stdout.flush()
    sys.stderr.flush()
    # PySpark's client threads can hold a normal interpreter exit for minutes.
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
