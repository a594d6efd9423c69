"""The API's reader of the stream's progress: shared refreshes, and answers that never fail
for it."""

from __future__ import annotations

import asyncio

from redis.exceptions import NoPermissionError

from atp.core.freshness import PartitionProgress
from atp.store.progress import BehindReader

NOW = 1_790_000_000_000


class Progress:
    """HGETALL of the progress hash, counted; `error` makes it fail."""

    def __init__(self, value: str) -> None:
        self.value = value
        self.reads = 0
        self.error: Exception | None = None

    async def hgetall(self, key: str) -> dict[bytes, bytes]:
        self.reads += 1
        await asyncio.sleep(0)
        if self.error is not None:
            raise self.error
        return {b"atp-ledger/stock.movements/0": self.value.encode()}


def test_concurrent_answers_share_one_read_and_a_refused_read_keeps_the_last():
    clock = [NOW]
    redis = Progress(PartitionProgress(NOW - 30_000, caught_up=False).encode())
    reader = BehindReader(redis, "atp", lambda: clock[0], refresh_ms=500)  # type: ignore[arg-type]

    async def main() -> list[int | None]:
        first = await asyncio.gather(*(reader.behind_ms() for _ in range(20)))
        clock[0] += 1_000
        redis.error = NoPermissionError("this user has no permissions to run 'hgetall'")
        later = await reader.behind_ms()
        return [*first, later]

    answers = asyncio.run(main())
    assert answers[:20] == [30_000] * 20 and redis.reads == 2
    assert answers[20] == 31_000  # the last progress read, older by the time gone by
