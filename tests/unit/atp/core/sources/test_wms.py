"""The warehouse adapter: every kind, and a stable reason for each way a message can be wrong."""

from __future__ import annotations

import orjson
import pytest

from atp.core.errors import InvalidMovement
from atp.core.movements import Effect
from atp.core.sources import wms


def message(**fields: object) -> bytes:
    body: dict[str, object] = {
        "event_id": "WH-NJ-000912",
        "warehouse_id": "WH-NJ",
        "sku": "LEGO-75954",
        "kind": "RECEIVED",
        "qty": 24,
        "occurred_at": "2026-11-26T14:03:11Z",
        "order_ref": None,
        "eta": None,
    }
    body.update(fields)
    return orjson.dumps(body)


@pytest.mark.parametrize(
    ("kind", "qty", "effect", "signed_qty"),
    [
        ("RECEIVED", 24, Effect.DELTA, 24),
        ("SHIPPED", 2, Effect.DELTA, -2),
        ("ADJUSTED", -3, Effect.DELTA, -3),
        ("ADJUSTED", 3, Effect.DELTA, 3),
        ("DAMAGED", 1, Effect.DELTA, -1),
        ("TRANSFER_OUT", 5, Effect.DELTA, -5),
        ("TRANSFER_IN", 5, Effect.DELTA, 5),
        ("CYCLE_COUNT", 130, Effect.COUNT, 130),
    ],
)
def test_kinds(demo_network, kind, qty, effect, signed_qty):
    [m] = wms.parse(message(kind=kind, qty=qty), demo_network)
    assert (m.effect, m.qty, m.kind, m.sku, m.location_id) == (
        effect,
        signed_qty,
        kind,
        "LEGO-75954",
        "WH-NJ",
    )
    assert m.occurred_ms == 1795701791000


def test_asn_is_inbound_with_its_eta(demo_network):
    [m] = wms.parse(message(kind="ASN", qty=40, eta="2026-12-03T09:00:00-05:00"), demo_network)
    assert m.effect is Effect.INBOUND and m.qty == 40
    assert m.eta_ms == 1796306400000


def test_offsets_and_z_are_the_same_instant(demo_network):
    [a] = wms.parse(message(occurred_at="2026-11-26T14:03:11Z"), demo_network)
    [b] = wms.parse(message(occurred_at="2026-11-26T09:03:11-05:00"), demo_network)
    assert a.occurred_ms == b.occurred_ms


# Every way a message can be wrong, with its reason (tests/unit/atp/test_contracts.py
# holds the published schema to these too).
REJECTIONS: list[tuple[bytes, str]] = [
    (b"{not json", "malformed_json"),
    (b"\xff\xfe", "malformed_json"),
    (b"[1, 2]", "schema"),
    (message(kind="STOLEN"), "schema"),
    (message(sku=""), "schema"),
    (message(sku="x" * 129), "schema"),
    (message(sku="bad\x07sku"), "schema"),
    (message(event_id=None), "schema"),
    (message(qty="24"), "schema"),
    (message(qty=True), "schema"),
    (message(qty=2.5), "schema"),
    (message(occurred_at="2026-11-26T14:03:11"), "schema"),  # naive: refused
    (message(occurred_at="yesterday"), "schema"),
    (message(kind="ASN", eta=None), "schema"),
    (message(warehouse_id="WH-ZZ"), "unknown_location"),
    (message(qty=-1), "negative_quantity"),
    (message(kind="CYCLE_COUNT", qty=-1), "negative_quantity"),
    (message(qty=10**12), "quantity_out_of_range"),
    (message(kind="ADJUSTED", qty=-(10**9)), "quantity_out_of_range"),
]


@pytest.mark.parametrize(("raw", "reason"), REJECTIONS)
def test_rejections_carry_a_reason(demo_network, raw, reason):
    with pytest.raises(InvalidMovement) as info:
        wms.parse(raw, demo_network)
    assert info.value.code == reason
    assert info.value.message
