"""A batch's effect on one SKU: what to write, and the counts before and after."""

from __future__ import annotations

from atp.core.availability import LocationCounts
from atp.core.ledger import Policy
from atp.core.movements import Effect, Movement
from atp.core.reservations import hold_member
from atp.core.updates import hold_members, update_sku

NOW = 1_790_000_000_000


def move(event_id: str, qty: int, kind: str = "ADJUSTED", ref: str | None = None) -> Movement:
    effect = Effect.COUNT if kind == "CYCLE_COUNT" else Effect.DELTA
    return Movement(event_id, "S", "WH", effect, qty, NOW - 100, kind, "wms", ref)


def test_a_new_pair_is_written_and_a_repeat_is_not():
    batch = [move("c", 10, "CYCLE_COUNT")]
    first = update_sku("S", batch, {"WH": None}, {}, {}, NOW, Policy())
    assert first.writes and first.states["WH"].on_hand == 10
    assert (first.before, first.after) == ({}, {"WH": LocationCounts(10, 0)})
    again = update_sku("S", batch, {"WH": first.states["WH"]}, first.after, {}, NOW, Policy())
    assert not again.writes and again.after == again.before


def test_a_shipment_lowers_on_hand_and_uses_up_its_hold():
    stored = update_sku("S", [move("c", 10, "CYCLE_COUNT")], {"WH": None}, {}, {}, NOW, Policy())
    ship = Movement("s", "S", "WH", Effect.DELTA, -2, NOW - 50, "SHIPPED", "wms", "R-1")
    assert hold_members([ship]) == [hold_member("R-1", "WH")]
    held = {hold_member("R-1", "WH"): 2}
    counts = {"WH": LocationCounts(10, 2)}
    u = update_sku("S", [ship], {"WH": stored.states["WH"]}, counts, held, NOW, Policy())
    assert (u.shipments, u.used) == ([("WH", "R-1", 2)], [2])
    assert u.after == {"WH": LocationCounts(8, 0)}
