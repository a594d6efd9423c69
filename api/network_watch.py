"""The network file, reloaded when it changes: safety stock and channels change without restart."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from atp.core.errors import NetworkConfigError
from atp.core.network import Network
from atp.network_file import load_network

log = logging.getLogger(__name__)


class NetworkHolder:
    def __init__(self, path: Path, network: Network, poll_s: float) -> None:
        self.path = path
        self.current = network
        self.poll_s = poll_s
        self._stamp = self._file_stamp()

    def _file_stamp(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size

    async def reload_if_changed(self) -> bool:
        stamp = self._file_stamp()
        if stamp is None or stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            network = await asyncio.to_thread(load_network, self.path)
        except NetworkConfigError as exc:
            log.error("network file not reloaded, keeping the previous one: %s", exc.message)
            return False
        self.current = network
        log.info("network file %s reloaded", self.path)
        return True

    async def watch(self) -> None:
        while True:
            await asyncio.sleep(self.poll_s)
            await self.reload_if_changed()
