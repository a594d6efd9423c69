"""End to end on real processes: warehouse messages in, exact counts out of the API."""

from __future__ import annotations

import asyncio
import random
import signal
import time
import urllib.request

import orjson
import pytest

from atp.kafka import topics
from tests.integration.conftest import conforms, wait_http_ok
from tests.integration.wms_scenario import (
    expected_from,
    produce,
    read_all,
    warehouse_traffic,
)

pytestmark = pytest.mark.integration


def api_on_hand(base: str, skus: set[str]) -> dict[tuple[str, str], int]:
    seen: dict[tuple[str, str], int] = {}
    for sku in sorted(skus):
        with urllib.request.urlopen(f"{base}/v1/availability/{sku}?channel=online") as r:
            body = orjson.loads(r.read())
        for loc in body["locations"]:
            if loc["location_id"].startswith("WH-"):
                seen[(sku, loc["location_id"])] = loc["on_hand"]
    return seen


def wait_for_counts(base: str, expected: dict[tuple[str, str], int], timeout_s: float = 90.0):
    """Poll until the API shows the expected counts or the time is up; return the last view."""
    skus = {sku for sku, _ in expected}
    deadline = time.monotonic() + timeout_s
    while True:
        seen = api_on_hand(base, skus)
        view = {k: seen.get(k, 0) for k in expected}
        if view == expected or time.monotonic() > deadline:
            return view
        time.sleep(0.5)


def metric(url: str, name: str, labels: str) -> float:
    with urllib.request.urlopen(url) as r:
        text = r.read().decode()
    series = f"{name}{{{labels}}} " if labels else f"{name} "
    for line in text.splitlines():
        if line.startswith(series):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.mark.parametrize("hops", [2, 1], ids=["two-hops", "one-hop"])
def test_movements_become_exact_counts_and_bad_input_is_rejected(settings, processes, hops):
    sc = warehouse_traffic(f"p{hops}", skus=12, events=300, seed=7)
    rng = random.Random(1)
    duplicates = rng.sample(sc.messages, 40)
    malformed = b'{"event_id": "broken'
    unknown = orjson.dumps(
        {
            "event_id": f"p{hops}-X",
            "warehouse_id": "WH-XX",
            "sku": f"p{hops}-SKU-000",
            "kind": "RECEIVED",
            "qty": 1,
            "occurred_at": "2026-11-26T10:00:00Z",
        }
    )
    traffic = [*sc.messages[:150], (b"WH-NJ", malformed), *sc.messages[150:]]
    traffic += [*duplicates, (b"WH-XX", unknown)]

    worker = processes.start("worker", env={"ATP_HOPS": str(hops)})
    api = processes.start("api")
    base = f"http://127.0.0.1:{settings.api_port}"
    wait_http_ok(f"{base}/readyz", api)
    asyncio.run(produce(settings.kafka_bootstrap, settings.topic(topics.WMS), traffic))

    assert sc.expected == expected_from(sc.messages)  # the two computations of the truth agree
    assert wait_for_counts(base, sc.expected) == sc.expected
    assert worker.alive()

    rejected = asyncio.run(read_all(settings.kafka_bootstrap, settings.topic(topics.REJECTED), 2))
    by_reason = {r["reason"]: r for r in rejected}
    assert set(by_reason) == {"malformed_json", "unknown_location"}
    assert by_reason["malformed_json"]["value"] == malformed.decode()
    assert by_reason["malformed_json"]["source_topic"] == settings.topic(topics.WMS)
    assert by_reason["malformed_json"]["offset"] >= 0
    assert orjson.loads(by_reason["unknown_location"]["value"]) == orjson.loads(unknown)
    assert all(conforms("Rejection", r) for r in rejected)  # as docs/asyncapi.yaml says

    metrics_url = f"http://127.0.0.1:{settings.worker_web_port}/metrics"
    outcomes = {
        o: metric(metrics_url, "atp_ledger_outcomes_total", f'outcome="{o}"')
        for o in ("applied", "duplicate", "superseded", "too_late")
    }
    # Every original applied once; each repeat either recognised by its id or, when a later
    # count already replaced it, as contained in that count.
    assert outcomes["applied"] == len(sc.messages)
    assert outcomes["duplicate"] + outcomes["superseded"] == len(duplicates)
    assert outcomes["too_late"] == 0
    # Every movement applied was timed from its source message to Redis, within a minute.
    timed = metric(metrics_url, "atp_freshness_seconds_count", "")
    assert timed == len(sc.messages) + len(duplicates)
    assert metric(metrics_url, "atp_freshness_seconds_bucket", 'le="60.0"') == timed
    assert metric(metrics_url, "atp_rejected_total", 'reason="malformed_json"') == 1
    # The log `atp rebuild` reads has every movement, in either shape of the worker (the
    # second hop's records skipped by the ledger hop in one-hop mode are still there).
    logged = len(sc.messages) + len(duplicates)
    movements = asyncio.run(
        read_all(settings.kafka_bootstrap, settings.topic(topics.MOVEMENTS), logged, headers=True)
    )
    assert sorted(m["event_id"] for m in movements) == sorted(
        orjson.loads(v)["event_id"] for _, v in [*sc.messages, *duplicates]
    )
    # Applied where they were published (one hop), or left to the ledger hop (two).
    marked = [m["_headers"] == [("atp-applied", b"1")] for m in movements]
    assert marked == [hops == 1] * logged
    assert all(
        conforms("Movement", {k: v for k, v in m.items() if k != "_headers"}) for m in movements
    )


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_a_restarted_worker_never_double_counts(settings, processes, sig):
    sc = warehouse_traffic(f"r{sig}", skus=10, events=400, seed=int(sig))
    first, second = sc.messages[:250], sc.messages[250:]
    api = processes.start("api")
    base = f"http://127.0.0.1:{settings.api_port}"
    wait_http_ok(f"{base}/readyz", api)
    wms = settings.topic(topics.WMS)

    worker = processes.start("worker", name="worker-1")
    asyncio.run(produce(settings.kafka_bootstrap, wms, first))
    # Once the first half is in Redis, stop the worker: its last acknowledgements may not have
    # been committed (SIGKILL), so the next worker sees part of the first half again.
    after_first = expected_from(first)
    assert wait_for_counts(base, after_first) == after_first
    worker.stop(grace_s=15, sig=sig)

    # The second half, plus the whole first half again, while no worker runs.
    asyncio.run(produce(settings.kafka_bootstrap, wms, second + first))
    processes.start("worker", name="worker-2")
    assert wait_for_counts(base, sc.expected) == sc.expected
