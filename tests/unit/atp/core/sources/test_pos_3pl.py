"""Store transactions and 3PL reports become canonical movements, or a reasoned rejection."""

from __future__ import annotations

import orjson
import pytest

from atp.core.errors import InvalidMovement
from atp.core.movements import Effect
from atp.core.sources import ADAPTERS, pos, tpl
from atp.kafka import topics


def transaction(**fields: object) -> bytes:
    body: dict[str, object] = {
        "transaction_id": "S-0412-20261126-0042",
        "store_id": "S-0412",
        "type": "SALE",
        "occurred_at": "2026-11-26T15:20:00-05:00",
        "order_ref": None,
        "lines": [{"sku": "LEGO-75954", "qty": 1}, {"sku": "LEGO-60337", "qty": 2}],
    }
    body.update(fields)
    return orjson.dumps(body)


def report(**fields: object) -> bytes:
    body: dict[str, object] = {
        "report_id": "acme-2026-11-26T06",
        "provider": "acme",
        "facility_id": "3PL-ACME-TX",
        "as_of": "2026-11-26T06:00:00Z",
        "items": [{"sku": "LEGO-75954", "on_hand": 130}, {"sku": "LEGO-60337", "on_hand": 0}],
    }
    body.update(fields)
    return orjson.dumps(body)


def test_every_source_topic_has_an_adapter():
    assert set(ADAPTERS) == set(topics.SOURCES.values())


@pytest.mark.parametrize(
    ("kind", "effect", "sign"),
    [
        ("SALE", Effect.DELTA, -1),
        ("RETURN", Effect.DELTA, 1),
        ("RECEIPT", Effect.DELTA, 1),
        ("COUNT", Effect.COUNT, 1),
    ],
)
def test_a_transaction_is_one_movement_per_line(demo_network, kind, effect, sign):
    ms = pos.parse(transaction(type=kind), demo_network)
    assert [(m.event_id, m.sku, m.qty, m.effect) for m in ms] == [
        ("S-0412-20261126-0042:0", "LEGO-75954", sign * 1, effect),
        ("S-0412-20261126-0042:1", "LEGO-60337", sign * 2, effect),
    ]
    assert {m.location_id for m in ms} == {"S-0412"}
    assert {m.occurred_ms for m in ms} == {1795724400000}  # 20:20:00Z


def test_a_pickup_fulfils_its_reservation(demo_network):
    [m, _] = pos.parse(transaction(type="PICKUP", order_ref="R-1"), demo_network)
    assert (m.qty, m.order_ref) == (-1, "R-1")
    with pytest.raises(InvalidMovement) as info:
        pos.parse(transaction(type="PICKUP"), demo_network)
    assert info.value.code == "schema"


# Ways a transaction can be wrong, with their reasons (held to the published schema too:
# tests/unit/atp/test_contracts.py).
POS_REJECTIONS: list[tuple[bytes, str]] = [
    (transaction(lines=[]), "schema"),
    (transaction(lines=[{"sku": "A", "qty": 1}, {"sku": "B"}]), "schema"),
    (transaction(lines=[{"sku": "A", "qty": -1}]), "negative_quantity"),
    (transaction(store_id="S-9999"), "unknown_location"),
    (transaction(type="THEFT"), "schema"),
    (transaction(occurred_at="2026-11-26T15:20:00"), "schema"),
    (transaction(type="PICKUP"), "schema"),  # names no reservation
]


@pytest.mark.parametrize(("raw", "reason"), POS_REJECTIONS)
def test_a_bad_line_rejects_the_whole_transaction(demo_network, raw, reason):
    with pytest.raises(InvalidMovement) as info:
        pos.parse(raw, demo_network)
    assert info.value.code == reason


def test_a_report_is_an_absolute_count_per_listed_sku(demo_network):
    ms = tpl.parse(report(), demo_network)
    assert [(m.event_id, m.sku, m.qty, m.effect) for m in ms] == [
        ("acme-2026-11-26T06:LEGO-75954", "LEGO-75954", 130, Effect.COUNT),
        ("acme-2026-11-26T06:LEGO-60337", "LEGO-60337", 0, Effect.COUNT),
    ]
    assert {m.occurred_ms for m in ms} == {1795672800000}
    assert tpl.parse(report(items=[]), demo_network) == []


# The same for 3PL reports. A SKU listed twice is the one the schema cannot see.
TPL_REJECTIONS: list[tuple[bytes, str]] = [
    (report(facility_id="3PL-NOPE"), "unknown_location"),
    (report(items=[{"sku": "A", "on_hand": -3}]), "negative_quantity"),
    (report(items=[{"sku": "A", "on_hand": 1}, {"sku": "A", "on_hand": 2}]), "schema"),
    (report(items={"sku": "A"}), "schema"),
    (report(as_of=None), "schema"),
]


@pytest.mark.parametrize(("raw", "reason"), TPL_REJECTIONS)
def test_report_rejections(demo_network, raw, reason):
    with pytest.raises(InvalidMovement) as info:
        tpl.parse(raw, demo_network)
    assert info.value.code == reason
