"""Admission control: a process takes on no more work than it can answer in bounded time.

Past its capacity an asyncio server does not slow down gracefully: every request it accepts
shares the one event loop, so with N requests running each takes about N times as long, and
under a burst every answer (the health checks included) comes too late to be of use. Here at
most `limit` requests run at once; the next wait, in arrival order (see `Gate` for how long),
and at most `max_queued` of them; the rest are refused with `503 overloaded` and
`Retry-After`, which a client or a load balancer can act on. The health checks and /metrics
are never held back: a load balancer must see a busy process as alive, and a dashboard must
see it busy.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable

from prometheus_client import Counter
from starlette.types import ASGIApp, Receive, Scope, Send

from api.problems import problem

# A live stream holds its connection for as long as its client stays; it has a limit of its own
# (ATP_STREAM_MAX_CONNECTIONS) and never takes a slot here.
EXEMPT = frozenset({"/healthz", "/readyz", "/metrics", "/v1/stream/availability"})
QUEUE_FULL, QUEUE_TIMEOUT = "queue_full", "queue_timeout"


class Gate:
    """At most `limit` holders at once; waiters are served first come, first served.

    A waiter waits at most `max_wait_s`, long enough to absorb a burst. But a queue that has
    not been empty for `interval_s` is a standing queue, not a burst: the process is past its
    capacity, and a long wait would only make every admitted request late. Then a newcomer
    waits at most `busy_wait_s` (CoDel's idea, as in "Fail at Scale", ACM Queue 2015)."""

    def __init__(
        self,
        limit: int,
        max_queued: int,
        max_wait_s: float,
        *,
        busy_wait_s: float = 0.05,
        interval_s: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.max_queued = max_queued
        self.max_wait_s = max_wait_s
        self.busy_wait_s = min(busy_wait_s, max_wait_s)
        self.interval_s = interval_s
        self.clock = clock
        self.running = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._empty_at = clock()  # when the queue was last seen empty

    def wait_s(self) -> float:
        """How long a newcomer may wait now."""
        if self._waiters and self.clock() - self._empty_at > self.interval_s:
            return self.busy_wait_s
        return self.max_wait_s

    async def enter(self) -> str | None:
        """None once admitted (then call `leave`), else why not."""
        if not self._waiters:
            self._empty_at = self.clock()
            if self.running < self.limit:
                self.running += 1
                return None
        if len(self._waiters) >= self.max_queued:
            return QUEUE_FULL
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(turn)
        try:
            async with asyncio.timeout(self.wait_s()):
                await turn
        except TimeoutError:
            if turn.done() and not turn.cancelled():
                return None  # handed a slot just as the wait ran out: it is ours
            self._drop(turn)
            return QUEUE_TIMEOUT
        except BaseException:  # the request itself was cancelled (the client went away)
            if turn.done() and not turn.cancelled():
                self.leave()
            else:
                self._drop(turn)
            raise
        return None

    def leave(self) -> None:
        """Hand the slot to the first waiter, or free it."""
        while self._waiters:
            turn = self._waiters.popleft()
            if not self._waiters:
                self._empty_at = self.clock()
            if not turn.done():  # (one whose wait just ran out is cancelled, not yet dropped)
                turn.set_result(None)
                return
        self.running -= 1

    def _drop(self, turn: asyncio.Future[None]) -> None:
        turn.cancel()
        with contextlib.suppress(ValueError):
            self._waiters.remove(turn)


class AdmissionMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        limit: int,
        max_queued: int,
        max_wait_s: float,
        refused: Counter,
    ) -> None:
        self.app = app
        self.gate = Gate(limit, max_queued, max_wait_s)
        self.refused = refused

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in EXEMPT:
            await self.app(scope, receive, send)
            return
        why = await self.gate.enter()
        if why is not None:
            self.refused.labels(why).inc()
            detail = (
                f"this API process is at its limit of {self.gate.limit} requests at once "
                f"({why.replace('_', ' ')}); ask again after Retry-After, or run more API "
                "processes (ATP_API_WORKERS) or instances"
            )
            refusal = problem(503, "overloaded", "Too busy", detail, scope["path"], reason=why)
            await refusal(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self.gate.leave()
