"""The worker's one way to wait before trying again: exponential backoff with a ceiling.

Every loop in the worker that meets Redis or broker trouble retries (nothing is acknowledged
meanwhile, so nothing is lost): 0.1 s, doubling, at most 5 s, back to the start after a success.
"""

from __future__ import annotations

import asyncio


class Backoff:
    def __init__(self, first_s: float = 0.1, most_s: float = 5.0) -> None:
        self._first_s = first_s
        self._most_s = most_s
        self.delay_s = first_s

    async def wait(self) -> None:
        """Sleep the current delay, and double it for next time."""
        await asyncio.sleep(self.delay_s)
        self.delay_s = min(self.delay_s * 2, self._most_s)

    def reset(self) -> None:
        self.delay_s = self._first_s
