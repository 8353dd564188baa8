"""foreachBatch functions: the call they must accept, and a pickle that loads
where the project is not on the path (as in the Spark Connect server's workers)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tauro_exec.worker.batchfn import pickle_batch_function
from tauro_exec.worker.functions import Loader


@pytest.fixture
def loader(tmp_path: Path) -> Iterator[Loader]:
    pkg = tmp_path / "batchpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "helpers.py").write_text("def label(batch_id):\n    return f'batch {batch_id}'\n")
    (pkg / "sinks.py").write_text(
        "from batchpkg.helpers import label\n"
        "def merge(batch_df, batch_id):\n    return label(batch_id)\n"
        "def one_arg(batch_df):\n    return None\n"
    )
    sys.path.insert(0, str(tmp_path))
    yield Loader([tmp_path], [])
    sys.path.remove(str(tmp_path))
    for name in [n for n in sys.modules if n.split(".")[0] == "batchpkg"]:
        del sys.modules[name]


def test_batch_function_signature_is_checked(loader: Loader) -> None:
    prefixes = loader.prefixes([])
    assert loader.problem("batchpkg.sinks", "merge", 0, True, prefixes, batch=True) is None
    msg = loader.problem("batchpkg.sinks", "one_arg", 0, True, prefixes, batch=True)
    assert msg is not None and "def fn(batch_df, batch_id)" in msg and "one_arg(batch_df)" in msg
    missing = loader.problem("batchpkg.sinks", "nope", 0, True, prefixes, batch=True)
    assert missing is not None and "has no attribute 'nope'" in missing


def test_pickle_loads_without_the_project_on_the_path(loader: Loader) -> None:
    fn = loader.load("batchpkg.sinks", "merge", loader.prefixes([]))
    command = pickle_batch_function(fn)
    # A fresh interpreter without the project's folder, as the server's worker.
    code = "import sys, pickle; fn = pickle.loads(sys.stdin.buffer.read()); print(fn(None, 7))"
    out = subprocess.run([sys.executable, "-c", code], input=command, capture_output=True, timeout=60, check=True)
    assert out.stdout.decode().strip() == "batch 7"
    # Registration by value is undone: nothing else this worker pickles changes.
    from pyspark import cloudpickle

    assert "batchpkg" not in cloudpickle.list_registry_pickle_by_value()
