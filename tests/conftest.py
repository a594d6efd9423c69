from __future__ import annotations

from pathlib import Path

import pytest

from atp.core.network import Network
from atp.network_file import load_network
from atp.tools.pki import Pki, make_pki

ROOT = Path(__file__).resolve().parent.parent
DEMO_NETWORK = ROOT / "config" / "network.yaml"


@pytest.fixture(scope="session")
def demo_network() -> Network:
    return load_network(DEMO_NETWORK)


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A CA and certificates for TLS tests (atp/tools/pki.py), made once per session."""
    return make_pki(tmp_path_factory.mktemp("pki"))
