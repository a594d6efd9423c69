"""Reading the catalogue file (YAML: kits and their components) into a validated `Catalog`."""

from __future__ import annotations

from pathlib import Path

from atp.core.errors import CatalogConfigError
from atp.core.kits import EMPTY_CATALOG, Catalog
from atp.network_file import read_config


def load_catalog(path: Path) -> Catalog:
    """No file: no kits. Errors name the file and the entry, e.g.
    `config/catalog.yaml: kits.KIT-1[0].quantity: ...`."""
    if not path.exists():
        return EMPTY_CATALOG
    return read_config(path, "catalogue file", CatalogConfigError, Catalog.from_dict)
