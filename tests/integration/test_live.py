"""Live availability (GET /v1/stream/availability) over real HTTP, with a real worker, broker and
Redis: the snapshot, a movement's change and a reservation's on the wire, a reconnect with
Last-Event-ID, the limits as problems, heartbeats, and a SIGTERM that ends the streams."""

from __future__ import annotations

import asyncio
import http.client
import signal
import socket
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import orjson
import pytest

from atp.core.movements import Effect, Movement
from atp.kafka import topics
from tests.integration.conftest import RESERVE_TOKEN, seed, wait_http_ok
from tests.integration.test_fulfilment import wms
from tests.integration.wms_scenario import produce

pytestmark = pytest.mark.integration


@dataclass
class Stream:
    response: http.client.HTTPResponse
    heartbeats: int = 0
    events: list[dict[str, object]] = field(default_factory=list)

    def next_event(self, timeout_s: float = 15.0) -> dict[str, object]:
        """The next `availability` event (its id and JSON); heartbeats are counted."""
        deadline = time.monotonic() + timeout_s
        fields: dict[str, str] = {}
        while time.monotonic() < deadline:
            line = self.response.readline()
            if not line:
                raise EOFError("the stream ended")
            text = line.decode().rstrip("\n")
            if text.startswith(":"):
                self.heartbeats += 1
            elif text:
                name, _, value = text.partition(": ")
                fields[name] = value
            elif "data" in fields:
                event = {
                    "id": fields["id"],
                    "event": fields["event"],
                    **orjson.loads(fields["data"]),
                }
                self.events.append(event)
                return event
        raise TimeoutError("no event in time")


@contextmanager
def stream(port: int, query: str, last_event_id: str | None = None) -> Iterator[Stream]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    headers = {"Accept": "text/event-stream"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    conn.request("GET", f"/v1/stream/availability?{query}", headers=headers)
    response = conn.getresponse()
    try:
        yield Stream(response)
    finally:
        conn.close()


def count(sku: str, qty: int) -> Movement:
    now = int(time.time() * 1000)
    return Movement(f"{sku}-c", sku, "WH-NJ", Effect.COUNT, qty, now - 1000, "CYCLE_COUNT", "t")


def on_hand(event: dict[str, object]) -> int:
    return sum(loc["on_hand"] for loc in event["locations"])  # type: ignore[attr-defined,misc]


@pytest.mark.parametrize("redis_kind", ["node", "cluster"], indirect=True, scope="session")
def test_a_stream_sends_the_answer_then_each_change(settings, processes):
    a, b = f"L-{uuid.uuid4().hex[:8]}", f"L-{uuid.uuid4().hex[:8]}"
    seed(settings.redis_url, [count(a, 10), count(b, 20)], int(time.time() * 1000))
    processes.start("worker")
    api = processes.start("api")
    port = settings.api_port
    wait_http_ok(f"http://127.0.0.1:{port}/readyz", api)

    with stream(port, f"skus={a},{b}&channel=online") as s:
        assert s.response.status == 200
        assert s.response.getheader("content-type").startswith("text/event-stream")
        first = {e["sku"]: e for e in (s.next_event(), s.next_event())}
        assert {k: on_hand(e) for k, e in first.items()} == {a: 10, b: 20}
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/availability/{a}") as r:
            polled = orjson.loads(r.read())
        assert {
            k: v for k, v in first[a].items() if k not in ("id", "event", "age_ms", "behind_ms")
        } == {k: v for k, v in polled.items() if k not in ("age_ms", "behind_ms")}

        # A movement through broker and worker: the new count on the wire.
        wms_topic = settings.topic(topics.WMS)
        asyncio.run(produce(settings.kafka_bootstrap, wms_topic, [wms(f"{a}-r", a, "RECEIVED", 5)]))
        moved = s.next_event(30)
        assert (moved["sku"], on_hand(moved)) == (a, 15)
        assert moved["id"] != first[a]["id"]

        # A reservation: the units it holds leave the ATP at once, no movement needed.
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/reservations",
            data=orjson.dumps({"reservation_id": f"r-{b}", "lines": [{"sku": b, "quantity": 3}]}),
            headers={
                "authorization": f"Bearer {RESERVE_TOKEN}",
                "content-type": "application/json",
            },
        )
        with urllib.request.urlopen(request) as r:
            assert r.status == 201
        held = s.next_event(15)
        assert (held["sku"], held["atp"], first[b]["atp"]) == (b, first[b]["atp"] - 3, 20)
        last_id = str(held["id"])

    # Away, then back with Last-Event-ID: only what changed meanwhile.
    asyncio.run(produce(settings.kafka_bootstrap, wms_topic, [wms(f"{a}-s", a, "SHIPPED", 1)]))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/availability/{a}") as r:
            if sum(x["on_hand"] for x in orjson.loads(r.read())["locations"]) == 14:
                break
        time.sleep(0.2)
    with stream(port, f"skus={a},{b}&channel=online", last_event_id=last_id) as s:
        missed = s.next_event()
        assert (missed["sku"], on_hand(missed)) == (a, 14)
        with pytest.raises((TimeoutError, socket.timeout)):
            s.next_event(2)  # b did not change: nothing for it
    # An id the feed does not know: every SKU afresh.
    with stream(port, f"skus={a},{b}&channel=online", last_event_id="1-0") as s:
        assert {s.next_event()["sku"], s.next_event()["sku"]} == {a, b}


def test_limits_heartbeats_and_a_sigterm(settings, processes):
    env = {"ATP_STREAM_MAX_CONNECTIONS": "1", "ATP_STREAM_MAX_SKUS": "2"}
    api = processes.start("api", env={**env, "ATP_STREAM_HEARTBEAT_S": "0.3"})
    port = settings.api_port
    wait_http_ok(f"http://127.0.0.1:{port}/readyz", api)

    def refused(query: str) -> tuple[int, dict[str, object], str | None]:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", f"/v1/stream/availability?{query}")
        r = conn.getresponse()
        try:
            assert r.getheader("content-type") == "application/problem+json"
            return r.status, orjson.loads(r.read()), r.getheader("retry-after")
        finally:
            conn.close()

    status, body, _ = refused("skus=A,B,C")
    assert (status, body["code"], body["limit"]) == (413, "too_many_skus", 2)
    assert refused("skus=A&channel=moon")[0] == 422
    with stream(port, "skus=A") as s:
        s.next_event()
        status, body, retry = refused("skus=B")
        assert (status, body["code"], retry) == (429, "too_many_streams", "5")
        time.sleep(1.0)
        with pytest.raises((TimeoutError, socket.timeout)):
            s.next_event(1.0)
        assert s.heartbeats >= 2
        # SIGTERM: the stream ends and the process exits, without waiting for the client.
        started = time.monotonic()
        api.popen.send_signal(signal.SIGTERM)
        with pytest.raises(EOFError):
            while True:
                s.next_event(10)
        # uvicorn stops cleanly, then raises the signal again (exit status: killed by SIGTERM).
        assert api.popen.wait(10) == -signal.SIGTERM
        assert time.monotonic() - started < 5
    assert "Application shutdown complete" in api.log_path.read_text()
