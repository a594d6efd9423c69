"""Hostile input on the stream: tens of thousands of bad messages mixed with good ones.

No worker crash, every bad message in stock.rejected with a reason, every good one counted
(including SKUs with odd but valid Unicode and hash-tag characters).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections import Counter
from datetime import UTC, datetime

import orjson
import pytest
import redis as redis_sync

from atp.kafka import topics
from atp.store import keys
from tests.integration.test_pipeline import metric
from tests.integration.wms_scenario import produce, read_raw

pytestmark = pytest.mark.integration
BAD = 20_000
REASONS = (
    "malformed_json",
    "schema",
    "unknown_location",
    "negative_quantity",
    "quantity_out_of_range",
)
AT = datetime.now(UTC).isoformat(timespec="seconds")


def good_messages(run: str, rng: random.Random) -> tuple[list[tuple[str, bytes]], dict]:
    """Valid messages on all three sources, with the on-hand they imply."""
    odd = ["ü-ß-✓", "{tag}", "a}b{c", "SKU with spaces", "日本語-123", "🧱" * 20, "x" * 128]
    skus = [f"{run}-{s}" if len(s) < 100 else s[: 128 - len(run) - 1] + "-" + run for s in odd]
    skus = [s[:128] for s in skus]
    out, expected = [], {}
    for i, sku in enumerate(skus):
        out.append(
            (
                topics.WMS,
                orjson.dumps(
                    {
                        "event_id": f"{run}-w{i}",
                        "warehouse_id": "WH-NJ",
                        "sku": sku,
                        "kind": "CYCLE_COUNT",
                        "qty": 10 + i,
                        "occurred_at": AT,
                    }
                ),
            )
        )
        expected[(sku, "WH-NJ")] = 10 + i
        out.append(
            (
                topics.POS,
                orjson.dumps(
                    {
                        "transaction_id": f"{run}-p{i}",
                        "store_id": "S-0101",
                        "type": "COUNT",
                        "occurred_at": AT,
                        "lines": [{"sku": sku, "qty": i}],
                    }
                ),
            )
        )
        expected[(sku, "S-0101")] = i
        out.append(
            (
                topics.TPL,
                orjson.dumps(
                    {
                        "report_id": f"{run}-r{i}",
                        "provider": "acme",
                        "facility_id": "3PL-ACME-TX",
                        "as_of": AT,
                        "items": [{"sku": sku, "on_hand": 100 + i}],
                    }
                ),
            )
        )
        expected[(sku, "3PL-ACME-TX")] = 100 + i
    rng.shuffle(out)
    return out, expected


def bad_message(rng: random.Random, n: int) -> tuple[str, bytes]:
    topic = rng.choice(tuple(topics.SOURCES))
    base = {
        topics.WMS: {
            "event_id": f"b{n}",
            "warehouse_id": "WH-NJ",
            "sku": "S",
            "kind": "RECEIVED",
            "qty": 1,
            "occurred_at": AT,
        },
        topics.POS: {
            "transaction_id": f"b{n}",
            "store_id": "S-0101",
            "type": "SALE",
            "occurred_at": AT,
            "lines": [{"sku": "S", "qty": 1}],
        },
        topics.TPL: {
            "report_id": f"b{n}",
            "provider": "p",
            "facility_id": "3PL-ACME-TX",
            "as_of": AT,
            "items": [{"sku": "S", "on_hand": 1}],
        },
    }[topic]
    kind = rng.randrange(10)
    if kind == 0:
        return topic, rng.randbytes(rng.randint(0, 300))
    if kind == 1:
        return topic, b"[" * 5000 + b"]" * 5000  # deeper than any parser should follow
    if kind == 2:
        return topic, orjson.dumps(rng.choice([1, "text", None, [base], True, 2.5]))
    body = dict(base)
    if kind == 3:  # a field of the wrong type
        field = rng.choice(list(body))
        body[field] = rng.choice([None, 1.5, [1], {"a": 1}, True])
        if (
            field in ("occurred_at", "as_of")
            or body[field] is None
            or isinstance(body[field], bool)
        ):
            pass
    elif kind == 4:  # impossible quantities
        value = rng.choice([-1, -(10**9), 10**12, 2**70])
        if topic == topics.WMS:
            body["qty"] = value
        elif topic == topics.POS:
            body["lines"] = [{"sku": "S", "qty": value}]
        else:
            body["items"] = [{"sku": "S", "on_hand": value}]
    elif kind == 5:  # unknown location
        loc = "NOWHERE-" + str(n)
        body[
            {topics.WMS: "warehouse_id", topics.POS: "store_id", topics.TPL: "facility_id"}[topic]
        ] = loc
    elif kind == 6:  # SKU too long, or with control characters
        sku = rng.choice(["x" * 129, "bad\x00sku", "\x1b[31mred", "é" * 200])
        if topic == topics.WMS:
            body["sku"] = sku
        elif topic == topics.POS:
            body["lines"] = [{"sku": sku, "qty": 1}]
        else:
            body["items"] = [{"sku": sku, "on_hand": 1}]
    elif kind == 7:  # naive or nonsense timestamps
        body["occurred_at" if topic != topics.TPL else "as_of"] = rng.choice(
            ["2026-11-26T10:00:00", "tomorrow", "", 12345]
        )
    elif kind == 8:  # missing required fields
        body.pop(rng.choice(list(body)))
    else:  # unknown kinds and types
        body["kind" if topic == topics.WMS else "type"] = "STOLEN"
        if topic == topics.TPL:
            body["items"] = "all of them"
    return topic, json.dumps(body).encode()  # the standard library writes ints past 64 bits


def test_bad_input_is_rejected_and_good_input_counted(settings, processes):
    rng = random.Random(99)
    run = uuid.uuid4().hex[:6]
    good, expected = good_messages(run, rng)
    bad = [bad_message(rng, n) for n in range(BAD)]
    mixed = bad + good
    rng.shuffle(mixed)
    worker = processes.start("worker")
    by_topic: dict[str, list[tuple[bytes, bytes]]] = {}
    for topic, value in mixed:
        by_topic.setdefault(topic, []).append((b"k", value))
    for topic, messages in by_topic.items():
        asyncio.run(produce(settings.kafka_bootstrap, settings.topic(topic), messages))

    client = redis_sync.Redis.from_url(settings.redis_url)
    deadline = time.monotonic() + 240
    metrics_url = f"http://127.0.0.1:{settings.worker_web_port}/metrics"
    rejected_total = 0.0
    while time.monotonic() < deadline:
        try:
            rejected_total = sum(
                metric(metrics_url, "atp_rejected_total", f'reason="{r}"') for r in REASONS
            )
        except OSError:  # the worker's web server is not up yet
            rejected_total = 0.0
        seen = {k: client.hget(keys.stock(k[0]), f"oh:{k[1]}") for k in expected}
        if rejected_total >= BAD and all(v is not None for v in seen.values()):
            break
        time.sleep(1)
    assert worker.alive()
    assert {k: int(v) for k, v in seen.items() if v is not None} == expected
    assert rejected_total == BAD
    records = [
        orjson.loads(r)
        for r in asyncio.run(read_raw(settings.kafka_bootstrap, settings.topic(topics.REJECTED)))
    ]
    assert len(records) == BAD
    assert all(r["reason"] and r["message"] for r in records)
    reasons = Counter(r["reason"] for r in records)
    assert set(reasons) >= {
        "malformed_json",
        "schema",
        "unknown_location",
        "negative_quantity",
        "quantity_out_of_range",
    }
    client.close()
