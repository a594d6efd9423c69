from __future__ import annotations

from pathlib import Path

import pytest

from atp.core.network import Network
from atp.network_file import load_network

ROOT = Path(__file__).resolve().parent.parent
DEMO_NETWORK = ROOT / "config" / "network.yaml"


@pytest.fixture(scope="session")
def demo_network() -> Network:
    return load_network(DEMO_NETWORK)
