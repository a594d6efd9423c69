"""Docs and docstrings name only files and modules that exist.

Scanned: README.md, docs/, and every comment and docstring of atp/, api/, stream/, benchmarks/
and the server-side scripts. Not scanned: benchmarks/README.md and benchmarks/api.md, the record
of past runs, which name files as they were at the commit each run names.
"""

from __future__ import annotations

import ast
import importlib
import io
import re
import tokenize
from collections.abc import Iterator

from tests.conftest import ROOT

ROOMS = ("atp", "api", "stream", "tests", "benchmarks", "config", "docs")
# A path in the repository: atp/core/ledger.py, atp/store/lua/hold/take.lua, docs/, ...
PATH = re.compile(
    r"(?<![\w./-])((?:%s)/[\w./-]*[\w/])" % "|".join(ROOMS)  # noqa: UP031
)
# A dotted name of our packages: atp.core.reservations.use_holds, stream.apply.Applier (not a
# file name such as api.md)
DOTTED = re.compile(r"(?<![\w./])((?:atp|api|stream)(?:\.[A-Za-z_]\w*)+)(?!\.?\w)")
FILE_SUFFIXES = ("md", "json", "yaml", "yml", "py", "lua", "log", "txt", "toml")
EXEMPT = {"benchmarks/README.md", "benchmarks/api.md"}


def texts() -> Iterator[tuple[str, str]]:
    """(file, text that talks about the code) for every file scanned."""
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        yield doc.relative_to(ROOT).as_posix(), doc.read_text(encoding="utf-8")
    for room in ("atp", "api", "stream", "benchmarks"):
        for path in sorted((ROOT / room).rglob("*")):
            rel = path.relative_to(ROOT).as_posix()
            if rel in EXEMPT or path.suffix not in (".py", ".lua"):
                continue
            text = path.read_text(encoding="utf-8")
            if path.suffix == ".lua":
                yield rel, "\n".join(ln for ln in text.split("\n") if ln.lstrip().startswith("--"))
            else:
                yield rel, "\n".join(_prose(text))


def _prose(source: str) -> Iterator[str]:
    """The comments and docstrings of a Python file (not its other strings: code)."""
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            yield tok.string
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            doc = ast.get_docstring(node, clean=False)
            if doc:
                yield doc


def resolves(name: str) -> bool:
    """An importable module, or an attribute chain on one."""
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


def test_every_path_named_exists():
    missing = []
    for where, text in texts():
        for match in PATH.finditer(text):
            path = match.group(1).rstrip(".")
            placeholder = "<" in path or "*" in path  # atp/store/lua/<group>/, tests/*.py
            if not placeholder and not (ROOT / path).exists():
                missing.append(f"{where}: {path}")
    assert missing == []


def test_every_module_named_exists():
    missing = []
    for where, text in texts():
        for match in DOTTED.finditer(text):
            name = match.group(1).rstrip(".")
            if name.rsplit(".", 1)[-1] in FILE_SUFFIXES:
                continue
            if not resolves(name):
                missing.append(f"{where}: {name}")
    assert missing == []
