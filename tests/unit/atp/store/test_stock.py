"""The served hash, parsed without Redis."""

from __future__ import annotations

from atp.core.availability import LocationCounts
from atp.store.stock import parse_stock


def test_parse_stock_reads_the_served_hash():
    record = parse_stock(
        {b"oh:WH-NJ": b"12", b"rs:WH-NJ": b"2", b"rs:S-1": b"1", b"ib:WH-NJ": b"99:4", b"ts": b"7"}
    )
    assert record.counts == {"WH-NJ": LocationCounts(12, 2), "S-1": LocationCounts(0, 1)}
    assert record.inbound == {"WH-NJ": (99, 4)}
    assert record.updated_ms == 7


def test_parse_stock_reads_every_expected_arrival_earliest_first():
    record = parse_stock(
        {b"oh:WH-NJ": b"0", b"ib:WH-NJ": b"99:4", b"fu:WH-NJ": b"120:2,300:7", b"ib:S-1": b"50:1"}
    )
    assert record.inbound == {"WH-NJ": (99, 4), "S-1": (50, 1)}
    assert record.future == {"WH-NJ": [(99, 4), (120, 2), (300, 7)], "S-1": [(50, 1)]}
