"""Webhooks, the worker's part: a hop that turns `stock.availability` and `stock.reservations`
records into messages for the subscriptions that want them (`WebhookFanout`), and a sender that
delivers them (`WebhookSender`).

- The hop is a `BatchConsumer` of its own group (`<ATP_GROUP_ID>-webhooks`): its offsets are
  committed once the batch's messages are in Redis, so a record is never lost, and one read
  twice is queued once (its message id is made from topic, partition, offset and type). Only
  records at or after a subscription's creation are sent to it.
- Sending: every worker runs a sender; per subscription, one worker at a time holds a lease
  (atp/store/lua/webhook/lease.lua) and sends its due messages, up to ATP_WEBHOOK_CONCURRENCY at
  once. Each subscription has its own task, so one slow or dead receiver delays only itself.
  A failed attempt (a connection error, a timeout, an answer other than 2xx) is tried again
  after the next wait of ATP_WEBHOOK_RETRY_S; after the last, the message is kept as failed.
- Every attempt is signed afresh (Standard Webhooks: the timestamp is the attempt's), goes only
  to addresses the allow-list permits (checked after resolution, on the addresses connected
  to), follows no redirect, and logs the URL without its query.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import logging
import os
import socket
from collections.abc import Callable, Sequence
from typing import Any

import aiohttp
import orjson
from aiohttp.abc import AbstractResolver, ResolveResult

from atp.core import webhooks as wh
from atp.core.errors import StoreUnavailable
from atp.kafka import topics
from atp.settings import Settings
from atp.store.webhooks import Message, WebhookStore, attempt_entry
from stream.metrics import WorkerMetrics
from stream.records import Records
from stream.retry import Backoff

log = logging.getLogger(__name__)

LEASE_S = 30.0  # plus twice the attempt timeout: a lease outlives the batch it was renewed for
REFRESH_S = 0.5  # how often the sender looks for new subscriptions and idle ones look again
USER_AGENT = "inventory-availability-webhooks/0.1"


class WebhookFanout:
    """The webhook hop's handler: records in, messages queued in Redis."""

    def __init__(
        self,
        store: WebhookStore,
        settings: Settings,
        metrics: WorkerMetrics,
        clock: Callable[[], int],
    ) -> None:
        self._store = store
        self._availability = settings.topic(topics.AVAILABILITY)
        self._source = settings.event_source
        self._max_pending = settings.webhook_max_pending
        self._metrics = metrics
        self._clock = clock

    async def handle(self, records: Records) -> None:
        subs = await self._subscriptions()
        if not subs:
            return
        messages = []
        for record in records:
            for event in self._events(record):
                event_id = message_id(record.topic, record.partition, record.offset, event.type)
                for sub in subs:
                    if record.timestamp >= sub.created_ms and wh.wants(sub.events, event.type):
                        envelope = wh.cloud_event(event, event_id, self._source, record.timestamp)
                        messages.append((sub.id, Message(event_id, envelope, 0)))
        queued, dropped = await self._store.enqueue(messages, self._clock(), self._max_pending)
        self._metrics.webhook_messages.labels("queued").inc(queued)
        if dropped:
            self._metrics.webhook_messages.labels("dropped").inc(dropped)
            log.warning(
                "webhooks: %d messages dropped, their subscriptions' backlog is full", dropped
            )

    def _events(self, record: Any) -> list[wh.Event]:
        try:
            payload = orjson.loads(record.value)
        except orjson.JSONDecodeError:
            return []  # not ours to judge: the topic's producers are this service
        payload = wh.unwrapped(payload)  # either ATP_EVENT_FORMAT
        if not isinstance(payload, dict):
            return []
        if record.topic == self._availability:
            return wh.availability_events(payload)
        return wh.reservation_events(payload)

    async def _subscriptions(self) -> list[wh.Subscription]:
        """Read for every batch (one HGETALL, off the stock's path): a subscription gets what
        happens from the moment it is stored, not from the next reload."""
        return await self._store.all()


def message_id(topic: str, partition: int, offset: int, event_type: str) -> str:
    """A message's id, the same each time its record is read (`webhook-id`, CloudEvents id)."""
    digest = hashlib.blake2b(f"{topic}/{partition}/{offset}/{event_type}".encode(), digest_size=12)
    return "msg_" + digest.hexdigest()


class AllowListResolver(AbstractResolver):
    """Resolves as the system does, then keeps only addresses webhooks may reach: the check is
    on the addresses aiohttp connects to, so DNS cannot point a checked name elsewhere later."""

    def __init__(self, networks: Sequence[wh.Network], plain_http: bool) -> None:
        self._inner = aiohttp.ThreadedResolver()
        self._networks = networks
        self._plain_http = plain_http

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        scheme = "http" if self._plain_http else "https"
        kept = [r for r in found if wh.refused(scheme, r["host"], self._networks) is None]
        if not kept:
            reason = wh.refused(scheme, found[0]["host"], self._networks) if found else None
            raise OSError(f"{host}: {reason or 'no address'}")
        return kept

    async def close(self) -> None:
        await self._inner.close()


class WebhookSender:
    def __init__(
        self,
        store: WebhookStore,
        settings: Settings,
        metrics: WorkerMetrics,
        clock: Callable[[], int],
    ) -> None:
        self._store = store
        self._networks = wh.parse_networks(settings.webhook_allowed_networks)
        self._schedule = settings.webhook_retry_schedule
        self._timeout = aiohttp.ClientTimeout(total=settings.webhook_timeout_s)
        self._concurrency = settings.webhook_concurrency
        self._lease_ms = int((LEASE_S + 2 * settings.webhook_timeout_s) * 1000)
        self._metrics = metrics
        self._clock = clock
        self._owner = f"{socket.gethostname()}-{os.getpid()}"
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._sessions: dict[bool, aiohttp.ClientSession] = {}

    async def run(self) -> None:
        backoff = Backoff(first_s=REFRESH_S, most_s=5.0)
        try:
            while True:
                try:
                    await self._serve_all()
                    backoff.reset()
                    await asyncio.sleep(REFRESH_S)
                except StoreUnavailable as exc:
                    log.warning(
                        "webhooks: Redis unavailable, retrying in %.1fs: %s", backoff.delay_s, exc
                    )
                    await backoff.wait()
        finally:
            await self.stop()

    async def stop(self) -> None:
        """End the subscriptions' tasks and give up their leases, so that another worker
        takes them over at once instead of when the lease runs out."""
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        for sid in list(self._tasks):
            with contextlib.suppress(StoreUnavailable):
                await self._store.lease(sid, self._owner, 0)
        self._tasks.clear()
        for session in self._sessions.values():
            await session.close()
        self._sessions.clear()

    async def _serve_all(self) -> None:
        """A task per subscription whose lease this worker holds; none for deleted ones."""
        subs = {s.id: s for s in await self._store.all()}
        for sid, task in list(self._tasks.items()):
            if task.done() and not task.cancelled() and task.exception() is not None:
                log.warning("webhooks: sending %s stopped: %r", sid, task.exception())
            if task.done() or sid not in subs:
                task.cancel()
                del self._tasks[sid]
        for sid, sub in subs.items():
            if sid not in self._tasks and await self._store.lease(sid, self._owner, self._lease_ms):
                self._tasks[sid] = asyncio.create_task(self._serve(sub), name=f"webhook-{sid}")

    async def _serve(self, sub: wh.Subscription) -> None:
        """Send the subscription's due messages while this worker holds its lease."""
        while await self._store.lease(sub.id, self._owner, self._lease_ms):
            batch = await self._store.due(sub.id, self._clock(), self._concurrency)
            if batch:
                await asyncio.gather(*(self._attempt(sub, m) for m in batch))
                continue
            next_ms = await self._store.next_due_ms(sub.id)
            wait_s = REFRESH_S if next_ms is None else (next_ms - self._clock()) / 1000
            await asyncio.sleep(min(max(wait_s, 0.02), REFRESH_S))

    async def _attempt(self, sub: wh.Subscription, msg: Message) -> None:
        started = self._clock()
        status, error = None, None
        try:
            status = await self._post(sub, msg)
            if not 200 <= status < 300:
                error = f"HTTP {status}"
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            error = describe(exc)
        done = self._clock()
        took = done - started
        if error is None:
            outcome, retry_at = "delivered", None
        else:
            delay = wh.retry_delay_s(msg.attempts + 1, self._schedule)
            outcome = "failed" if delay is None else "retrying"
            retry_at = None if delay is None else done + int(delay * 1000)
            log.info(
                "webhook %s to %s: attempt %d %s (%s)",
                msg.id, wh.redact(sub.url), msg.attempts + 1, outcome, error,
            )  # fmt: skip
        entry = attempt_entry(
            msg,
            done,
            outcome,
            status=status,
            error=error,
            duration_ms=took,
            next_attempt_ms=retry_at,
        )
        await self._store.settle(sub.id, msg, entry, retry_at)
        self._metrics.webhook_messages.labels(outcome).inc()
        self._metrics.webhook_seconds.observe(took / 1000)

    async def _post(self, sub: wh.Subscription, msg: Message) -> int:
        scheme, host, _ = wh.check_url(sub.url)
        plain = scheme == "http"
        with contextlib.suppress(ValueError):  # a literal address skips the resolver: check it here
            reason = wh.refused(scheme, str(ipaddress.ip_address(host)), self._networks)
            if reason:
                raise OSError(reason)
        if sub.format == "binary":
            body = orjson.dumps(msg.envelope.get("data"))
            headers = wh.binary_headers(msg.envelope)
        else:
            body = orjson.dumps(msg.envelope)
            headers = {"content-type": "application/cloudevents+json"}
        now_s = self._clock() // 1000
        headers |= {
            "webhook-id": msg.id,
            "webhook-timestamp": str(now_s),
            "webhook-signature": wh.sign(sub.secret, msg.id, now_s, body),
            "user-agent": USER_AGENT,
        }
        session = self._session(plain)
        async with session.post(sub.url, data=body, headers=headers, allow_redirects=False) as r:
            await r.content.read(64 * 1024)  # drain a little; the answer's body is not used
            return r.status

    def _session(self, plain_http: bool) -> aiohttp.ClientSession:
        session = self._sessions.get(plain_http)
        if session is None or session.closed:
            resolver = AllowListResolver(self._networks, plain_http)
            connector = aiohttp.TCPConnector(resolver=resolver, limit=0, ttl_dns_cache=10)
            session = aiohttp.ClientSession(
                connector=connector, timeout=self._timeout, trust_env=False
            )
            self._sessions[plain_http] = session
        return session


def describe(exc: BaseException) -> str:
    """An attempt's error as the delivery log shows it (no URL: it may carry a token)."""
    if isinstance(exc, TimeoutError):
        return "timed out"
    text = str(exc) or type(exc).__name__
    return text if "://" not in text else type(exc).__name__
