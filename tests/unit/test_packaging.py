"""A regular (non-editable) install, as the Dockerfile makes, carries every file the code reads:
each non-Python file inside a package is matched by a `package-data` pattern of pyproject.toml
(setuptools expands them with glob, relative to the package's directory, as here)."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_data_file_in_a_package_is_installed():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    installed: set[Path] = set()
    for package, patterns in config["package-data"].items():
        base = ROOT.joinpath(*package.split("."))
        assert (base / "__init__.py").is_file(), f"package-data names {package}, not a package"
        for pattern in patterns:
            installed.update(base.glob(pattern))
    data = {
        path
        for top in config["packages"]["find"]["include"]
        for path in ROOT.glob(top.rstrip("*") + "/**/*")
        if path.is_file() and path.suffix not in (".py", ".pyc") and "__pycache__" not in path.parts
    }
    assert data, "no data files found: the test looks in the wrong place"
    missing = sorted(str(p.relative_to(ROOT)) for p in data - installed)
    assert not missing, f"not in any package-data pattern of pyproject.toml: {missing}"
