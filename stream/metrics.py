"""The worker's Prometheus metrics, built once from a registry passed in."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from atp.core.availability import IN_STOCK, LOW_STOCK, OUT_OF_STOCK
from atp.core.ledger import Outcome
from atp.core.sources import KINDS
from atp.core.sources.common import REASONS
from atp.prometheus import with_labels
from atp.store.ledger import LedgerStats

STATUSES = (IN_STOCK, LOW_STOCK, OUT_OF_STOCK)

# (topic, partition, lag) of every partition the worker consumes, read at each scrape.
LagSource = Callable[[], Iterable[tuple[str, int, int]]]


class ConsumerLag(Collector):
    """`atp_consumer_lag{topic,partition}`, computed when scraped, so a partition that moved
    to another worker in a rebalance disappears from this worker's answer at once."""

    def __init__(self, source: LagSource) -> None:
        self._source = source

    def describe(self) -> list[Metric]:
        return []  # nothing to check at registration: the labels come and go with assignment

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "atp_consumer_lag",
            "Records of a consumed partition not yet committed: high watermark (from the last "
            "fetch response) minus the group's committed offset.",
            labels=["topic", "partition"],
        )
        for topic, partition, lag in self._source():
            family.add_metric([topic, str(partition)], lag)
        yield family


WEBHOOK_OUTCOMES = ("queued", "delivered", "retrying", "failed", "dropped")


@dataclass(frozen=True)
class WorkerMetrics:
    movements: Counter
    rejected: Counter
    outcomes: Counter
    batch_size: Histogram
    apply_seconds: Histogram
    availability_events: Counter
    fulfilment_consumed: Counter
    fulfilment_unmatched: Counter
    oversell_exposures: Counter
    freshness: Histogram
    ledger_skus: Gauge
    ledger_pairs: Gauge
    skus_by_status: Gauge
    webhook_messages: Counter
    webhook_seconds: Histogram

    def set_ledger_stats(self, stats: LedgerStats, channels: Iterable[str]) -> None:
        """The gauges from the ledger's counters; every status of every channel has a value."""
        self.ledger_skus.set(stats.skus)
        self.ledger_pairs.set(stats.pairs)
        for channel in channels:
            for status in STATUSES:
                count = stats.statuses.get((channel, status), 0)
                self.skus_by_status.labels(channel, status).set(count)

    @classmethod
    def create(cls, registry: CollectorRegistry, channels: Iterable[str] = ()) -> WorkerMetrics:
        """Every labelled series whose label values are known (the sources' kinds, rejection
        reasons, outcomes, the network's `channels`) exists at 0 from the start."""
        return cls(
            movements=with_labels(
                Counter(
                    "atp_movements_consumed_total",
                    "Canonical movements produced by the normaliser, per source and kind.",
                    ["source", "kind"],
                    registry=registry,
                ),
                KINDS,
            ),
            rejected=with_labels(
                Counter(
                    "atp_rejected_total",
                    "Messages sent to the rejected topic, per reason.",
                    ["reason"],
                    registry=registry,
                ),
                REASONS,
            ),
            outcomes=with_labels(
                Counter(
                    "atp_ledger_outcomes_total",
                    "Movements folded into the ledger, per outcome (applied, duplicate, ...).",
                    ["outcome"],
                    registry=registry,
                ),
                (o.value for o in Outcome),
            ),
            batch_size=Histogram(
                "atp_apply_batch_size",
                "Movements per applied batch.",
                buckets=(1, 10, 50, 100, 250, 500, 1000, 2500, 5000),
                registry=registry,
            ),
            apply_seconds=Histogram(
                "atp_apply_seconds",
                "Time to read, fold and write one batch in Redis.",
                buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
                registry=registry,
            ),
            availability_events=with_labels(
                Counter(
                    "atp_availability_events_total",
                    "Availability change events published to stock.availability, per channel.",
                    ["channel"],
                    registry=registry,
                ),
                channels,
            ),
            fulfilment_consumed=Counter(
                "atp_fulfilments_total",
                "Reservations whose holds a shipment or pickup used (wholly or in part).",
                registry=registry,
            ),
            fulfilment_unmatched=Counter(
                "atp_fulfilment_unmatched_total",
                "Shipments naming a reservation that holds nothing at that location.",
                registry=registry,
            ),
            freshness=Histogram(
                "atp_freshness_seconds",
                "From a source message reaching Kafka to its movement's count written in Redis.",
                buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
                registry=registry,
            ),
            oversell_exposures=Counter(
                "atp_oversell_exposures_total",
                "Locations where reserved came to exceed on-hand minus safety stock.",
                registry=registry,
            ),
            ledger_skus=Gauge(
                "atp_ledger_skus",
                "SKUs with ledger state in Redis (read from the ledger's counters).",
                registry=registry,
            ),
            ledger_pairs=Gauge(
                "atp_ledger_pairs",
                "(SKU, location) pairs with ledger state in Redis (the ledger's size).",
                registry=registry,
            ),
            skus_by_status=Gauge(
                "atp_skus",
                "SKUs per channel and stock status, as of each SKU's last ledger write.",
                ["channel", "status"],
                registry=registry,
            ),
            webhook_messages=with_labels(
                Counter(
                    "atp_webhook_messages_total",
                    "Webhook messages per outcome: queued, delivered, retrying (an attempt "
                    "failed, another is due), failed (given up), dropped (backlog full).",
                    ["outcome"],
                    registry=registry,
                ),
                WEBHOOK_OUTCOMES,
            ),
            webhook_seconds=Histogram(
                "atp_webhook_attempt_seconds",
                "One webhook attempt, from connecting to the receiver's answer.",
                buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
                registry=registry,
            ),
        )
