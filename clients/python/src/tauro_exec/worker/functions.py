"""The node functions a worker may call: where they may come from, how they are
imported (again, when the project's code changed) and the call they must accept."""

from __future__ import annotations

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

    def problem(self, module: str, function: str, inputs: int, prefixes: Sequence[str]) -> str | None:
        """Why module.function cannot be a node with that many inputs, or None; its import runs."""
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
        return signature_problem(fn, inputs)
