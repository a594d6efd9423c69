"""The house's rules, checked on every test run (docs/architecture.md, "The rooms"):

- atp.core is pure: it imports the standard library, bundled data (holidays, zipcodes), orjson
  (a codec: the adapters' JSON parsing is the normaliser's hot path) and itself; nothing else.
- Nothing in atp imports the shells (api, stream); the tools start them as processes.
- atp.store is Redis only, atp.kafka is Kafka only; the API and the worker do not import each
  other, nor the operator tools. atp.contracts is a document and its loader, for anyone.
- Modules stay under 400 lines and functions under 60, but for the exceptions named below.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT

CORE_MAY_IMPORT = {"holidays", "zipcodes", "orjson"}
# (modules under this prefix, imports they must not make)
FORBIDDEN = [
    ("atp", ("api", "stream")),
    ("atp.store", ("aiokafka", "faust", "fastapi", "starlette", "atp.kafka", "atp.tools")),
    ("atp.kafka", ("redis", "faust", "fastapi", "starlette", "atp.store", "atp.tools")),
    ("atp.contracts", ("redis", "aiokafka", "faust", "fastapi", "atp.store", "atp.kafka")),
    ("stream", ("api", "fastapi", "starlette", "uvicorn", "atp.tools")),
    ("api", ("stream", "faust", "aiokafka", "atp.kafka", "atp.tools")),
]
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
LONG_FUNCTIONS = {
    # One metric after another, each a few lines of declaration: a table, not logic.
    "stream/metrics.py:WorkerMetrics.create",
    "api/metrics.py:ApiMetrics.create",
}


def modules(root: Path) -> Iterator[tuple[str, Path]]:
    for package in ("atp", "api", "stream"):
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            yield name, path


def imports(path: Path) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


def within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def violations(root: Path) -> list[str]:
    found = []
    for name, path in modules(root):
        for imported in imports(path):
            top = imported.split(".")[0]
            if within(name, "atp.core"):
                allowed = (
                    top in sys.stdlib_module_names
                    or top == "__future__"
                    or top in CORE_MAY_IMPORT
                    or within(imported, "atp.core")
                )
                if not allowed:
                    found.append(f"{name} (pure core) imports {imported}")
            for prefix, banned in FORBIDDEN:
                if within(name, prefix) and any(within(imported, b) for b in banned):
                    found.append(f"{name} imports {imported}")
    return found


def test_every_room_imports_only_what_it_may():
    assert violations(ROOT) == []


@pytest.mark.parametrize(
    ("module", "line", "expected"),
    [
        ("atp/core/ledger.py", "import redis", "atp.core.ledger (pure core) imports redis"),
        ("atp/core/geo.py", "from atp.store import keys", "atp.core.geo (pure core) imports"),
        ("atp/tools/cli.py", "from stream.app import run_worker", "atp.tools.cli imports stream"),
        ("atp/store/ledger.py", "import aiokafka", "atp.store.ledger imports aiokafka"),
        ("api/app.py", "from stream import parts", "api.app imports stream"),
    ],
)
def test_a_planted_violation_is_found(tmp_path, module, line, expected):
    for _, path in modules(ROOT):
        target = tmp_path / path.relative_to(ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    planted = tmp_path / module
    planted.write_text(planted.read_text(encoding="utf-8") + f"\n{line}\n", encoding="utf-8")
    assert any(v.startswith(expected) for v in violations(tmp_path)), violations(tmp_path)


def test_modules_and_functions_stay_short():
    long = []
    for _, path in modules(ROOT):
        text = path.read_text(encoding="utf-8")
        rel = path.relative_to(ROOT).as_posix()
        if text.count("\n") > MAX_MODULE_LINES:
            long.append(f"{rel}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                    owner = f"{node.name}." if isinstance(node, ast.ClassDef) else ""
                    size = (child.end_lineno or child.lineno) - child.lineno + 1
                    where = f"{rel}:{owner}{child.name}"
                    if size > MAX_FUNCTION_LINES and where not in LONG_FUNCTIONS:
                        long.append(f"{where}: {size} lines")
    assert long == []
