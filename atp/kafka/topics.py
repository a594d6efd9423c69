"""Kafka topic names and their creation."""

from __future__ import annotations

import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from atp.kafka.connect import check_connection
from atp.kafka.security import client_options
from atp.settings import Settings

log = logging.getLogger(__name__)

WMS = "stock.wms"
POS = "stock.pos"
TPL = "stock.3pl"
MOVEMENTS = "stock.movements"
REJECTED = "stock.rejected"
RESERVATIONS = "stock.reservations"
AVAILABILITY = "stock.availability"
# Source topic -> the input contract it carries (atp.core.sources.ADAPTERS).
SOURCES = {WMS: "wms", POS: "pos", TPL: "3pl"}
ALL = (*SOURCES, MOVEMENTS, REJECTED, RESERVATIONS, AVAILABILITY)


async def ensure_topics(settings: Settings, timeout_s: float = 30.0) -> None:
    """Create every topic the service uses (idempotent); waits for the broker up to `timeout_s`,
    and stops with a KafkaSetupError when it refuses the security settings."""
    await check_connection(settings, timeout_s)
    admin = AIOKafkaAdminClient(**client_options(settings))
    try:
        await admin.start()
        existing = set(await admin.list_topics())
        wanted = [settings.topic(t) for t in ALL]
        missing = [t for t in wanted if t not in existing]
        if missing:
            await admin.create_topics(
                [
                    NewTopic(t, num_partitions=settings.partitions, replication_factor=1)
                    for t in missing
                ]
            )
            log.info("created topics %s with %d partitions", missing, settings.partitions)
    finally:
        await admin.close()
