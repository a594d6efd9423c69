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
