"""Live availability for product pages: Server-Sent Events fanned out inside each API process.

One `LiveHub` per process reads the change feed (atp/store/feed.py) with one blocking XREAD at a
time. Subscribers are grouped by what they asked for (SKU, channel, postal code); a change
marks the groups of its SKU, each marked group is read once (the reads of one round share one
Redis call, atp/store/stock.py) and its answer goes to every subscriber of the group only when
it differs from the last one the group was sent. So a subscriber costs memory and a queue, not
Redis calls. A subscriber that cannot keep up (its queue full) is disconnected; its client
reconnects with `Last-Event-ID` and is sent what changed meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

import orjson

from atp.core.errors import StoreUnavailable
from atp.store.feed import ALL_CHANNELS, Change, ChangeFeed

log = logging.getLogger(__name__)

GroupKey = tuple[str, str, str | None, float | None]  # (sku, channel, postal code, radius)
Answer = Callable[[GroupKey], Awaitable[dict[str, Any]]]
# Members of an answer that change without the stock changing: not a reason to send it again.
VOLATILE = ("age_ms", "behind_ms")


def frame(event_id: str, body: dict[str, Any]) -> bytes:
    """One SSE event: `id`, `event: availability`, the answer as `data`."""
    return b"id: %s\nevent: availability\ndata: %s\n\n" % (event_id.encode(), orjson.dumps(body))


def content(body: dict[str, Any]) -> bytes:
    return orjson.dumps({k: v for k, v in body.items() if k not in VOLATILE})


@dataclass(eq=False)
class Subscriber:
    groups: list[GroupKey]
    queue: asyncio.Queue[bytes]
    overflowed: bool = False


@dataclass
class Group:
    subscribers: set[Subscriber] = field(default_factory=set)
    last: bytes | None = None  # content of the last answer sent to the group
    watched: tuple[str, ...] | None = None  # the SKUs whose changes it is sent (LiveHub.watches)


class LiveHub:
    def __init__(
        self,
        feed: ChangeFeed,
        answer: Answer,
        *,
        max_connections: int,
        queue_size: int = 64,
        on_event: Callable[[], None] = lambda: None,
        watches: Callable[[str], Iterable[str]] = lambda sku: (sku,),
    ) -> None:
        """`watches`: the SKUs whose changes change a SKU's answer (a kit's: its components),
        as of when a stream subscribes."""
        self.feed = feed
        self.watches = watches
        self.answer = answer
        self.max_connections = max_connections
        self.queue_size = queue_size
        self.on_event = on_event
        self.subscribers: set[Subscriber] = set()
        self.closing = False
        self._groups: dict[GroupKey, Group] = {}
        self._by_sku: dict[str, set[GroupKey]] = {}
        self._cursor: str | None = None
        self._notifying: set[asyncio.Future[None]] = set()

    def notify(self, skus: Iterable[str]) -> None:
        """Reservations changed these SKUs' counts (every channel): add them to the feed, in the
        background (a reservation's answer does not wait for it)."""
        task = asyncio.ensure_future(self.feed.publish((sku, ALL_CHANNELS) for sku in skus))
        self._notifying.add(task)
        task.add_done_callback(self._notifying.discard)

    @property
    def full(self) -> bool:
        return len(self.subscribers) >= self.max_connections

    def subscribe(self, groups: Iterable[GroupKey]) -> Subscriber:
        sub = Subscriber(list(groups), asyncio.Queue(self.queue_size))
        self.subscribers.add(sub)
        for key in sub.groups:
            self._groups.setdefault(key, Group()).subscribers.add(sub)
            group = self._groups[key]
            if group.watched is None:
                group.watched = tuple(dict.fromkeys([key[0], *self.watches(key[0])]))
            for sku in group.watched:
                self._by_sku.setdefault(sku, set()).add(key)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)
        for key in sub.groups:
            group = self._groups.get(key)
            if group is None:
                continue
            group.subscribers.discard(sub)
            if not group.subscribers:
                del self._groups[key]
                for sku in group.watched or ():
                    keys = self._by_sku[sku]
                    keys.discard(key)
                    if not keys:
                        del self._by_sku[sku]

    async def run(self, block_ms: int = 1000) -> None:
        """Read the feed and fan out, until cancelled; Redis away: wait and go on."""
        while True:
            try:
                if self._cursor is None:
                    self._cursor = await self.feed.last_id()
                changes = await self.feed.read(self._cursor, block_ms)
                if changes:
                    self._cursor = changes[-1].id
                    await self.dispatch(changes)
            except StoreUnavailable as exc:
                log.warning("live streams: the change feed cannot be read: %s", exc)
                await asyncio.sleep(1.0)

    async def dispatch(self, changes: list[Change]) -> None:
        """Send the groups the changes touch their new answer, where it is new."""
        marked: dict[GroupKey, str] = {}
        for change in changes:
            for key in self._by_sku.get(change.sku, ()):
                if change.channel in (key[1], ALL_CHANNELS):
                    marked[key] = change.id
        if not marked:
            return
        keys = list(marked)
        answers = await asyncio.gather(*(self.answer(k) for k in keys), return_exceptions=True)
        for key, body in zip(keys, answers, strict=True):
            group = self._groups.get(key)
            if group is None or isinstance(body, BaseException):
                if isinstance(body, BaseException):
                    log.warning("live streams: %s not read: %s", key[0], body)
                continue
            new = content(body)
            if new == group.last:
                continue
            group.last = new
            self.send(group.subscribers, frame(marked[key], body))

    def send(self, subscribers: Iterable[Subscriber], data: bytes) -> None:
        for sub in list(subscribers):
            try:
                sub.queue.put_nowait(data)
                self.on_event()
            except asyncio.QueueFull:
                sub.overflowed = True

    def close(self) -> None:
        """The process is stopping: end every stream (their clients reconnect elsewhere)."""
        self.closing = True
        for sub in self.subscribers:
            with contextlib.suppress(asyncio.QueueFull):
                sub.queue.put_nowait(b"")  # wakes it; a full queue is woken already

    async def events(
        self, sub: Subscriber, first: list[bytes], heartbeat_s: float
    ) -> AsyncIterator[bytes]:
        """The stream of one subscriber: `first`, then its events, with a comment every
        `heartbeat_s` when there is nothing to say; ends when it overflows or the process
        stops."""
        try:
            yield b"retry: 2000\n\n" + b"".join(first)
            while True:
                try:
                    data = await asyncio.wait_for(sub.queue.get(), heartbeat_s)
                except TimeoutError:
                    data = b": heartbeat\n\n"
                if sub.overflowed or self.closing:
                    return
                yield data
        finally:
            self.unsubscribe(sub)


def end_streams_on_exit(hub: LiveHub) -> None:
    """uvicorn waits for open responses before it stops, and a live stream never ends by
    itself: on the signals uvicorn stops on, end the streams first, then let uvicorn's own
    handler run. (In the main thread only, where signal handlers live: not under TestClient.)"""
    if threading.current_thread() is not threading.main_thread():
        return
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        previous = signal.getsignal(sig)
        if not callable(previous):
            continue

        def handler(signum: int, frame: FrameType | None, previous: Any = previous) -> None:
            loop.call_soon_threadsafe(hub.close)
            previous(signum, frame)

        signal.signal(sig, handler)
