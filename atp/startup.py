"""What every entry point does first: settings from the environment, the network file, logging.

A setting or network file that does not validate stops the process with a message that names
it and exit code 2, before anything connects anywhere.
"""

from __future__ import annotations

import logging
import sys

from atp.core.errors import ATPError
from atp.core.network import Network
from atp.network_file import load_network
from atp.settings import Settings, load_settings


def load_or_exit() -> tuple[Settings, Network]:
    try:
        settings = load_settings()
        network = load_network(settings.network_file)
    except ATPError as exc:
        print(f"atp: {exc.message}", file=sys.stderr)
        raise SystemExit(2) from None
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return settings, network
