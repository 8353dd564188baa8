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

    functions   which functions a node may name, importing them, the call they must accept
    output      what a node prints or logs, as events of its call
    control     the lines on the control pipe
    session     the warm Spark Connect session
    service     WorkerService: CheckFunctions and RunNode
    tracking    ml_context's tracker and registry, on the attempt's own MLflow run
    flavours    models in MLflow's format: scikit-learn, and Spark ML over Spark Connect
    tauro_mlops tauro's mlops objects (mlops_integration) on that tracker and registry
    __main__    the command line and serving
"""

from tauro_exec.worker.functions import (
    CallForm,
    FunctionError,
    ProjectCode,
    accepts_ml_context,
    call_arguments,
    call_form,
    load_function,
    project_packages,
    project_roots,
)
from tauro_exec.worker.service import NodeWorker, ResultError, error_response
from tauro_exec.worker.session import with_user

__all__ = [
    "CallForm",
    "FunctionError",
    "NodeWorker",
    "ProjectCode",
    "ResultError",
    "accepts_ml_context",
    "call_arguments",
    "call_form",
    "error_response",
    "load_function",
    "project_packages",
    "project_roots",
    "with_user",
]
