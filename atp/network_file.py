"""Reading the network file (YAML) into a validated `Network`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml

from atp.core.errors import NetworkConfigError
from atp.core.geo import zip_coordinates
from atp.core.network import Network

T = TypeVar("T")


def load_network(path: Path) -> Network:
    """Errors name the file and the entry, e.g. `config/network.yaml: locations[3].type: ...`."""
    return read_config(path, "network file", NetworkConfigError, _network)


def _network(data: Any) -> Network:
    return Network.from_dict(data, geocode=zip_coordinates)


def read_config(
    path: Path, what: str, error: type[NetworkConfigError], parse: Callable[[Any], T]
) -> T:
    """Read a YAML configuration file and `parse` it; every `error` names the file (and the
    entry, when `parse` names one)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise error(str(path), f"cannot read the {what}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise error(str(path), f"not valid YAML: {exc}") from None
    try:
        return parse(data)
    except NetworkConfigError as exc:
        raise error(f"{path}: {exc.path}", exc.message.split(": ", 1)[-1]) from None
