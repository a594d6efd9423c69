"""What every entry point does first: settings from the environment, the network file, logging.

A setting or network file that does not validate stops the process with a message that names
it and exit code 2, before anything connects anywhere; so does a Redis that refuses the user or
the TLS settings, once the process has asked it.
"""

from __future__ import annotations

import asyncio
import logging
import sys

from atp.catalog_file import load_catalog
from atp.core.errors import ATPError
from atp.core.network import Network
from atp.network_file import load_network
from atp.settings import Settings, load_settings
from atp.store.access import check_access
from atp.store.client import client_for


def load_or_exit() -> tuple[Settings, Network]:
    try:
        settings = load_settings()
        network = load_network(settings.network_file)
        load_catalog(settings.catalog_file)  # the API reads it again; here its errors stop us
    except ATPError as exc:
        print(f"atp: {exc.message}", file=sys.stderr)
        raise SystemExit(2) from None
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return settings, network


def redis_access_or_exit(settings: Settings) -> None:
    """Stop with a message that names the setting when Redis refuses this user, its password or
    its TLS (atp.store.access); a Redis that cannot be reached now is only logged."""

    async def check() -> bool:
        client = client_for(settings, timeout_s=5.0)
        try:
            return await check_access(client, settings)
        finally:
            await client.aclose()

    try:
        reached = asyncio.run(check())
    except ATPError as exc:
        print(f"atp: {exc.message}", file=sys.stderr)
        raise SystemExit(2) from None
    if not reached:
        logging.getLogger(__name__).warning(
            "Redis at ATP_REDIS_URL cannot be reached now: going on without it for now"
        )
