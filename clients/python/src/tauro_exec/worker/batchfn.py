"""A streaming node's foreachBatch function (its output's batch_function): the
call it must accept, and the pickle Spark Connect's foreachBatch sends.

execd starts the query in the run's own Spark session; the Spark Connect
server then calls the function in a Python worker of its own for every
micro-batch, fn(batch_df, batch_id). That worker does not have the project on
its path, so the function's top-level package is pickled by value: the
function, and the project code it calls, travel inside the pickle.
"""

from __future__ import annotations

import inspect
import sys
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

from pyspark import cloudpickle
from pyspark.serializers import CloudPickleSerializer

from tauro_exec.worker import cdc
from tauro_exec.worker.cdc import ChangeSpec, change_capture

# pyspark's cloudpickle is untyped; these are the calls made of it, typed.
_registered: Callable[[], list[str]] = cloudpickle.list_registry_pickle_by_value
_by_value: Callable[[ModuleType], None] = cloudpickle.register_pickle_by_value
_by_reference: Callable[[ModuleType], None] = cloudpickle.unregister_pickle_by_value
_registry_lock = threading.Lock()


def batch_call_problem(fn: Callable[..., Any]) -> str | None:
    """Why fn cannot be called fn(batch_df, batch_id), as foreachBatch calls it, or None."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None  # no introspectable signature: the call itself will tell
    try:
        sig.bind(None, 0)
    except TypeError as e:
        name = f"{getattr(fn, '__qualname__', fn)}{sig}"
        return (
            f"{name} cannot be a foreachBatch function: {e}; "
            "write it as def fn(batch_df, batch_id), which Spark calls once per micro-batch"
        )
    return None


def python_ver() -> str:
    """This Python's major.minor, which the server's workers must match."""
    return f"{sys.version_info[0]}.{sys.version_info[1]}"


def pickle_batch_function(fn: Callable[..., Any]) -> bytes:
    """fn as Spark Connect's foreachBatch takes it, its top-level package pickled by value."""
    return pickle_by_value(fn, sys.modules.get(fn.__module__.split(".")[0]))


def pickle_change_capture(spec: ChangeSpec) -> bytes:
    """The change data capture function for spec, as foreachBatch takes it.
    Only the cdc module travels by value: the server's workers need not have
    tauro_exec installed."""
    return pickle_by_value(change_capture(spec), cdc)


def pickle_by_value(fn: Callable[..., Any], module: ModuleType | None) -> bytes:
    """fn pickled with module (and what is below it) by value."""
    # Registering is process-wide: undo it unless the module was registered
    # before, so nothing else this worker pickles changes. The lock keeps a
    # concurrent call (the nodes of one run ask at once) from undoing it
    # under this one, which would pickle fn by reference.
    with _registry_lock:
        registered = module is not None and module.__name__ in _registered()
        if module is not None and not registered:
            _by_value(module)
        try:
            dumps: Callable[[object], bytes] = CloudPickleSerializer().dumps
            return dumps(fn)
        finally:
            if module is not None and not registered:
                _by_reference(module)
