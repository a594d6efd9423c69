"""Records for stock.rejected keep the original bytes and say where they came from."""

from __future__ import annotations

import orjson

from atp.kafka.rejected import original_bytes, rejection


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
