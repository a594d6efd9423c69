"""The change feed of the API's live streams: which (SKU, channel) answers may have changed.

The worker adds the channel changes of every batch it applies, the API the SKUs a reservation
changed (channel "*": every channel); each API process reads the feed with one blocking XREAD
and fans out to its subscribers (api/live.py), so a subscriber costs no Redis call of its own.
A capped Redis stream: its entry ids are the `id:` of the events a client sees, and a client
that reconnects with `Last-Event-ID` gets what changed after it while the id is still kept.
Writing it is best effort: a lost entry delays a live update until the SKU's next change, it
never holds back a batch or a reservation.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from atp.store import keys
from atp.store.client import REDIS_DOWN, unavailable_as_error

log = logging.getLogger(__name__)

ALL_CHANNELS = "*"
MAX_ENTRIES = 100_000  # about a minute of changes at Black Friday rates, a few MB


@dataclass(frozen=True, slots=True)
class Change:
    id: str  # the stream entry's id, "<ms>-<seq>"
    sku: str
    channel: str  # or ALL_CHANNELS


class ChangeFeed:
    def __init__(self, client: aioredis.Redis, max_entries: int = MAX_ENTRIES) -> None:
        self._redis = client
        self._max = max_entries

    async def publish(self, changes: Iterable[tuple[str, str]]) -> None:
        """Add (sku, channel) entries; logs and goes on when Redis refuses (best effort)."""
        entries = list(dict.fromkeys(changes))
        if not entries:
            return
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for sku, channel in entries:
                    pipe.xadd(
                        keys.feed(),
                        {"s": sku, "c": channel},
                        maxlen=self._max,
                        approximate=True,
                    )
                await pipe.execute()
        except (*REDIS_DOWN, RedisError) as exc:
            log.warning("%d live-stream changes not published: %s", len(entries), exc)

    async def last_id(self) -> str:
        """The id of the newest entry ("0-0" when empty): what a new stream starts from."""
        with unavailable_as_error():
            newest = await self._redis.xrevrange(keys.feed(), count=1)
        return _text(newest[0][0]) if newest else "0-0"

    async def read(self, after: str, block_ms: int, count: int = 10_000) -> list[Change]:
        """Entries after `after`, waiting up to `block_ms` for the first."""
        with unavailable_as_error():
            reply = await self._redis.xread({keys.feed(): after}, count=count, block=block_ms)
        return [_change(i, f) for _, entries in reply or () for i, f in entries]

    async def since(self, after: str, count: int = 10_000) -> list[Change] | None:
        """What was added after `after`, or None when the feed no longer goes back that far
        (or `after` is not an id of it)."""
        with unavailable_as_error():
            oldest = await self._redis.xrange(keys.feed(), count=1)
            if not oldest or _before(after, _text(oldest[0][0])):
                return None
            entries = await self._redis.xrange(keys.feed(), min=f"({after}", count=count)
        return [_change(i, f) for i, f in entries]


def _change(entry_id: bytes | str, fields: dict[bytes, bytes]) -> Change:
    return Change(_text(entry_id), _text(fields[b"s"]), _text(fields[b"c"]))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _before(a: str, b: str) -> bool:
    """Stream id `a` is older than `b`; True for what is not an id (so: start afresh)."""
    try:
        ams, _, aseq = a.partition("-")
        bms, _, bseq = b.partition("-")
        return (int(ams), int(aseq or 0)) < (int(bms), int(bseq or 0))
    except ValueError:
        return True
