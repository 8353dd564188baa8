"""Rewrite the imports of generated protobuf modules to live under tauro_exec._proto.

protoc writes imports from the proto paths (``from tauro.exec.v1 import ...``,
``from buf.validate import ...``); the package ships them under ``tauro_exec._proto``
so it never claims top-level ``tauro`` or ``buf`` packages of its own.
"""

from __future__ import annotations

import pathlib
import re
import sys

PREFIX = "tauro_exec._proto"
PATTERN = re.compile(r"^(\s*)(from|import) (tauro\.exec\.v1|buf\.validate)\b", re.MULTILINE)


def main(root: str) -> None:
    base = pathlib.Path(root)
    for path in sorted(base.rglob("*")):
        if path.suffix not in {".py", ".pyi"}:
            continue
        text = path.read_text()
        new = PATTERN.sub(lambda m: f"{m.group(1)}{m.group(2)} {PREFIX}.{m.group(3)}", text)
        if new != text:
            path.write_text(new)
    for directory in [base, *[p for p in base.rglob("*") if p.is_dir()]]:
        init = directory / "__init__.py"
        if not init.exists():
            init.write_text("")


if __name__ == "__main__":
    main(sys.argv[1])
