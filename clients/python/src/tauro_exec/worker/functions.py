"""The node functions a worker may call: where they may come from, how they are
imported (again, when the project's code changed) and the call they must accept."""

from __future__ import annotations

import enum
import importlib
import inspect
import logging
import os
import sys
import threading
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tauro_exec.worker.batchfn import batch_call_problem

log = logging.getLogger("tauro_exec.worker")  # the worker's one logger, whichever module logs

# Top-level modules a node function may never come from, whatever the allowed
# prefixes say. Every standard-library module is refused as well.
_DENIED = frozenset({"tauro_exec", "grpc", "google", "pyspark", "py4j", "setuptools", "pip"})


class FunctionError(Exception):
    """A node function that cannot be loaded or called as configured."""


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


class CallForm(enum.Enum):
    """How a node function is called."""

    # fn(*dfs, start_date=..., end_date=...): every node, as tauro calls a batch node.
    EXECD = "execd"
    # fn(input_df, node_config): a streaming node's function, as tauro's
    # streaming query manager calls it.
    TAURO_STREAMING = "tauro_streaming"


_DATES = ("start_date", "end_date")


def call_form(fn: Callable[..., Any], inputs: int, streaming: bool) -> CallForm:
    """How fn is called for a node passing that many input DataFrames.

    execd's call, fn(*dfs, start_date=..., end_date=...), whenever fn can take
    it. Otherwise, for a streaming node with one input, tauro's streaming call,
    fn(input_df, node_config), when fn can take that and names neither date:
    a function that asks for a date wants execd's call. Either way ml_context
    is added when fn has that parameter (or **kwargs). Raises FunctionError
    saying which call fn should be written for when it fits none.
    """
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return CallForm.EXECD  # no introspectable signature: the call itself will tell
    ml: dict[str, object] = {"ml_context": None} if accepts_ml_context(fn) else {}
    try:
        sig.bind(*range(inputs), start_date="", end_date="", **ml)
        return CallForm.EXECD
    except TypeError as e:
        execd = str(e)
    name = f"{getattr(fn, '__qualname__', fn)}{sig}"
    dfs = "no input DataFrames" if inputs == 0 else f"{inputs} input DataFrame(s) positionally"
    fix = "write it as def fn(df1, ..., *, start_date, end_date) (or add **kwargs)"
    tauro = _tauro_streaming_problem(sig, ml, inputs, streaming)
    if tauro is None:
        return CallForm.TAURO_STREAMING
    if not streaming:
        if _tauro_streaming_problem(sig, ml, inputs, True) is None:
            fix += "; fn(input_df, node_config) is tauro's form for streaming nodes, and this node is a batch node"
        raise FunctionError(f"{name} cannot take {dfs} and start_date/end_date as keywords: {execd}; {fix}")
    if inputs == 1:
        fix = "write it as def fn(input_df, node_config) (tauro's streaming form) or def fn(input_df, *, start_date, end_date)"
    raise FunctionError(
        f"{name} cannot take either call of a streaming node: {dfs} with start_date/end_date as keywords ({execd}), "
        f"or tauro's fn(input_df, node_config) ({tauro}); {fix}"
    )


def _tauro_streaming_problem(sig: inspect.Signature, ml: dict[str, object], inputs: int, streaming: bool) -> str | None:
    """Why a function of signature sig cannot be called as fn(input_df, node_config), or None."""
    if not streaming:
        return "that call is for streaming nodes"
    if inputs != 1:
        return f"that call is for a streaming node with one input, and this one has {inputs}"
    if named := [d for d in _DATES if d in sig.parameters]:
        return f"it names {' and '.join(named)}, which that call does not pass"
    try:
        sig.bind(None, {}, **ml)
    except TypeError as e:
        return str(e)
    return None


def call_arguments(
    form: CallForm, dfs: Sequence[Any], node: str, start_date: str | None, end_date: str | None, node_config: dict[str, Any]
) -> tuple[list[Any], dict[str, Any]]:
    """The positional and keyword arguments of the call of form, ml_context aside.

    tauro's streaming call gets the node's configuration as tauro passes it:
    the node's mapping as configured, with its name under "name".
    """
    if form is CallForm.TAURO_STREAMING:
        return [*dfs, {**node_config, "name": node}], {}
    return list(dfs), {"start_date": start_date, "end_date": end_date}


class Loader:
    """Loads a warm worker's node functions: one import at a time, and the
    project's code imported again when it changed on disk."""

    def __init__(self, roots: Sequence[Path], prefixes: Sequence[str]) -> None:
        self._roots = list(roots)
        self._prefixes = list(prefixes)
        self._code = ProjectCode(roots)
        self._lock = threading.Lock()

    def prefixes(self, requested: Sequence[str]) -> list[str]:
        """The modules a request may load from: its own list, else the worker's, else the project's packages."""
        return list(requested) or self._prefixes or project_packages(self._roots)

    def load(self, module: str, function: str, prefixes: Sequence[str]) -> Callable[..., Any]:
        """load_function, re-importing the project's code first if it changed on disk."""
        with self._lock:
            if changed := self._code.refresh():
                log.info("project code changed (%s); importing it again", ", ".join(sorted(changed)))
            try:
                return load_function(module, function, prefixes)
            finally:
                self._code.record()

    def problem(
        self, module: str, function: str, inputs: int, streaming: bool, prefixes: Sequence[str], batch: bool = False
    ) -> str | None:
        """Why module.function cannot be a node with that many inputs, or None; its import runs.

        With batch, it is a foreachBatch function instead, called fn(batch_df, batch_id).
        """
        try:
            fn = self.load(module, function, prefixes)
        except FunctionError as e:
            return str(e)
        except BaseException as e:  # the module's own import-time failure
            where = ""
            tb = traceback.extract_tb(e.__traceback__)
            if tb:
                where = f" (at {tb[-1].filename}:{tb[-1].lineno})"
            if isinstance(e, SyntaxError) and e.filename:
                where = f" (at {e.filename}:{e.lineno})"
            return f"importing {module} fails: {type(e).__name__}: {e}{where}"
        if batch:
            return batch_call_problem(fn)
        try:
            call_form(fn, inputs, streaming)
        except FunctionError as e:
            return str(e)
        return None
