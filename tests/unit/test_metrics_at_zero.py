"""Labelled series whose label values are known exist at 0 before their first event, so a new
dashboard shows 0 (and a rate) instead of "no data"."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from api.metrics import ApiMetrics
from atp.core.network import Network
from stream.metrics import WorkerMetrics


def series(registry: CollectorRegistry) -> dict[str, float]:
    out = {}
    for line in generate_latest(registry).decode().splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def test_the_api_counts_every_known_outcome_from_zero():
    registry = CollectorRegistry()
    ApiMetrics.create(registry)
    got = series(registry)
    for outcome in ("held", "idempotent_replay", "confirmed", "released", "fulfilled", "short"):
        assert got[f'atp_reservations_total{{outcome="{outcome}"}}'] == 0
    for kind in ("single", "batch", "explain", "movements", "delivery_options", "sourcing_plans"):
        assert got[f'atp_availability_lookups_total{{kind="{kind}"}}'] == 0
    assert got['atp_api_overload_refusals_total{reason="queue_full"}'] == 0


def test_the_worker_counts_every_known_kind_reason_outcome_and_channel_from_zero(
    demo_network: Network,
):
    registry = CollectorRegistry()
    WorkerMetrics.create(registry, demo_network.channels)
    got = series(registry)
    assert got['atp_movements_consumed_total{kind="SHIPPED",source="wms"}'] == 0
    assert got['atp_movements_consumed_total{kind="SALE",source="pos"}'] == 0
    assert got['atp_movements_consumed_total{kind="REPORT",source="3pl"}'] == 0
    for reason in ("malformed_json", "unknown_location", "too_late", "adapter_error"):
        assert got[f'atp_rejected_total{{reason="{reason}"}}'] == 0
    for outcome in ("applied", "duplicate", "superseded", "too_late"):
        assert got[f'atp_ledger_outcomes_total{{outcome="{outcome}"}}'] == 0
    for channel in demo_network.channels:
        assert got[f'atp_availability_events_total{{channel="{channel}"}}'] == 0
    for outcome in ("queued", "delivered", "retrying", "failed", "dropped"):
        assert got[f'atp_webhook_messages_total{{outcome="{outcome}"}}'] == 0
