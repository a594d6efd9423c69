"""What a worker is made of, wired from the settings: the two hops (normaliser and ledger, or
with `ATP_HOPS=1` the direct hop and the ledger hop), their consumers, the forwarder they
publish through, the outbox relay and the ledger store."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from atp.clock import now_ms
from atp.core.network import Network
from atp.core.sources import ADAPTERS
from atp.kafka import topics
from atp.kafka.security import client_options
from atp.settings import Settings
from atp.store.client import client_for
from atp.store.feed import ChangeFeed
from atp.store.ledger import LedgerStore
from atp.store.reservations import ReservationStore
from atp.store.webhooks import WebhookStore
from stream.acks import Commit, DurableAcker
from stream.apply import Applier
from stream.consumer import BatchConsumer
from stream.direct import Direct
from stream.forward import Forwarder
from stream.metrics import WorkerMetrics
from stream.normalise import Normaliser
from stream.relay import OutboxRelay
from stream.webhooks import WebhookFanout, WebhookSender


@dataclass(frozen=True)
class Parts:
    """What the faust app runs."""

    hops: list[BatchConsumer]  # the normaliser, then the ledger hop
    relay: OutboxRelay
    webhook_hop: BatchConsumer  # not a hop of the stock's way: its lag is no one's behind_ms
    webhooks: WebhookSender
    forwarder: Forwarder
    store: LedgerStore
    redis: aioredis.Redis  # the client every part shares

    @classmethod
    def build(cls, settings: Settings, network: Network, metrics: WorkerMetrics) -> Parts:
        redis = client_for(settings)
        store = LedgerStore(redis, settings.ledger_policy, network=network)
        reservations = ReservationStore(redis, settings.reservation_replay_ms)
        forwarder = Forwarder(
            client_options(settings),
            client_id=f"{settings.group_id}-forward",
            max_batch_bytes=settings.forward_batch_bytes,
        )
        common: dict[str, Any] = {
            "rejected_topic": settings.topic(topics.REJECTED),
            "metrics": metrics,
            "clock": now_ms,
        }
        adapters = {settings.topic(t): ADAPTERS[contract] for t, contract in topics.SOURCES.items()}
        movements = settings.topic(topics.MOVEMENTS)
        normaliser = Normaliser(adapters, network, forwarder, movements_topic=movements, **common)
        availability = settings.topic(topics.AVAILABILITY)
        source = settings.event_source if settings.event_format == "cloudevents" else None
        applier = Applier(
            store,
            reservations,
            network,
            forwarder,
            availability_topic=availability,
            feed=ChangeFeed(redis),
            cloudevents_source=source,
            **common,
        )
        durable = settings.durable_acks

        def acker(commit: Commit) -> DurableAcker:
            return DurableAcker(redis, commit, durable=durable)

        sources = list(adapters)
        if settings.hops == 1:
            # The source hop keeps the normaliser's group, so a switch from two hops resumes
            # where the normaliser was; the ledger hop still applies what a two-hop normaliser
            # published (during a rolling switch) and skips what a one-hop worker applied.
            direct = Direct(normaliser, applier, forwarder)
            first = BatchConsumer.for_hop(settings, sources, "normalise", direct.handle, acker)
        else:
            first = BatchConsumer.for_hop(settings, sources, "normalise", normaliser.handle)
        hops = [
            first,
            BatchConsumer.for_hop(settings, [movements], "ledger", applier.handle, acker),
        ]
        reservations_topic = settings.topic(topics.RESERVATIONS)
        relay = OutboxRelay(redis, forwarder, reservations_topic, cloudevents_source=source)
        hooks = WebhookStore(redis)
        fanout = WebhookFanout(hooks, settings, metrics, now_ms)
        events = [availability, reservations_topic]
        webhook_hop = BatchConsumer.for_hop(settings, events, "webhooks", fanout.handle, acker)
        sender = WebhookSender(hooks, settings, metrics, now_ms)
        return cls(hops, relay, webhook_hop, sender, forwarder, store, redis)
