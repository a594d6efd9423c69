"""Reading the network file (YAML) into a validated `Network`."""

from __future__ import annotations

from pathlib import Path

import yaml

from atp.core.errors import NetworkConfigError
from atp.core.geo import zip_coordinates
from atp.core.network import Network


def load_network(path: Path) -> Network:
    """Errors name the file and the entry, e.g. `config/network.yaml: locations[3].type: ...`."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise NetworkConfigError(
            str(path), f"cannot read the network file: {exc.strerror}"
        ) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise NetworkConfigError(str(path), f"not valid YAML: {exc}") from None
    try:
        return Network.from_dict(data, geocode=zip_coordinates)
    except NetworkConfigError as exc:
        raise NetworkConfigError(f"{path}: {exc.path}", exc.message.split(": ", 1)[-1]) from None
