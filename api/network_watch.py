"""Configuration files reloaded when they change: the network file (safety stock, channels) and
the catalogue (kits) change without a restart. A file that no longer validates is not taken:
the one in force stays, and the error is logged."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

from atp.core.errors import NetworkConfigError

log = logging.getLogger(__name__)

T = TypeVar("T")


class Watched(Generic[T]):
    def __init__(
        self, path: Path, current: T, load: Callable[[Path], T], what: str, poll_s: float
    ) -> None:
        """`load` reads and validates the file (raising NetworkConfigError or a subclass);
        `what` names it in the log."""
        self.path, self.current, self.poll_s = path, current, poll_s
        self._load, self._what = load, what
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
            loaded = await asyncio.to_thread(self._load, self.path)
        except NetworkConfigError as exc:
            log.error("%s not reloaded, keeping the previous one: %s", self._what, exc.message)
            return False
        self.current = loaded
        log.info("%s %s reloaded", self._what, self.path)
        return True

    async def watch(self) -> None:
        while True:
            await asyncio.sleep(self.poll_s)
            await self.reload_if_changed()
