from __future__ import annotations

import orjson

from atp.core.availability import LocationCounts
from atp.kafka.rejected import original_bytes, rejection
from atp.store.stock import parse_stock


def test_rejection_keeps_utf8_as_text_and_other_bytes_as_base64():
    text = orjson.loads(
        rejection(
            raw=b'{"a": 1',
            key=b"WH-NJ",
            topic="stock.wms",
            partition=2,
            offset=7,
            reason="malformed_json",
            message="m",
            now_ms=5,
        )
    )
    assert text["value"] == '{"a": 1' and text["key"] == "WH-NJ"
    assert (text["source_topic"], text["partition"], text["offset"]) == ("stock.wms", 2, 7)
    binary = orjson.loads(
        rejection(
            raw=b"\xff\x00",
            key=None,
            topic="t",
            partition=0,
            offset=0,
            reason="malformed_json",
            message="m",
            now_ms=5,
        )
    )
    assert "value" not in binary and original_bytes(binary) == b"\xff\x00"
    assert original_bytes(text) == b'{"a": 1'


def test_parse_stock_reads_the_served_hash():
    record = parse_stock(
        {b"oh:WH-NJ": b"12", b"rs:WH-NJ": b"2", b"rs:S-1": b"1", b"ib:WH-NJ": b"99:4", b"ts": b"7"}
    )
    assert record.counts == {"WH-NJ": LocationCounts(12, 2), "S-1": LocationCounts(0, 1)}
    assert record.inbound == {"WH-NJ": (99, 4)}
    assert record.updated_ms == 7
