"""The worker's Prometheus metrics, built once from a registry passed in."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram


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

    @classmethod
    def create(cls, registry: CollectorRegistry) -> WorkerMetrics:
        return cls(
            movements=Counter(
                "atp_movements_consumed_total",
                "Canonical movements produced by the normaliser, per source and kind.",
                ["source", "kind"],
                registry=registry,
            ),
            rejected=Counter(
                "atp_rejected_total",
                "Messages sent to the rejected topic, per reason.",
                ["reason"],
                registry=registry,
            ),
            outcomes=Counter(
                "atp_ledger_outcomes_total",
                "Movements folded into the ledger, per outcome (applied, duplicate, ...).",
                ["outcome"],
                registry=registry,
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
            availability_events=Counter(
                "atp_availability_events_total",
                "Availability change events published to stock.availability, per channel.",
                ["channel"],
                registry=registry,
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
        )
