"""The admission gate (api/admission.py) on its own, and the middleware on a bare ASGI app."""

from __future__ import annotations

import asyncio

import orjson
from prometheus_client import CollectorRegistry, Counter

from api.admission import QUEUE_FULL, QUEUE_TIMEOUT, AdmissionMiddleware, Gate


def test_the_gate_admits_its_limit_then_queues_in_order_then_refuses():
    async def main() -> None:
        gate = Gate(limit=2, max_queued=2, max_wait_s=5.0)
        assert await gate.enter() is None
        assert await gate.enter() is None
        order: list[int] = []

        async def wait(i: int) -> None:
            assert await gate.enter() is None
            order.append(i)

        first, second = asyncio.create_task(wait(1)), asyncio.create_task(wait(2))
        await asyncio.sleep(0)
        assert await gate.enter() == QUEUE_FULL  # two already wait
        gate.leave()  # the slot goes to the first waiter, not to a newcomer
        await first
        gate.leave()
        await second
        assert order == [1, 2] and gate.running == 2
        gate.leave()
        gate.leave()
        assert gate.running == 0

    asyncio.run(main())


def test_a_wait_that_runs_out_is_refused_and_leaves_no_trace():
    async def main() -> None:
        gate = Gate(limit=1, max_queued=10, max_wait_s=0.01)
        assert await gate.enter() is None
        assert await gate.enter() == QUEUE_TIMEOUT
        gate.leave()  # no live waiter: the slot is free again
        assert gate.running == 0
        assert await gate.enter() is None

    asyncio.run(main())


def test_a_cancelled_waiter_gives_back_a_slot_it_was_handed():
    async def main() -> None:
        gate = Gate(limit=1, max_queued=10, max_wait_s=5.0)
        assert await gate.enter() is None
        waiting = asyncio.create_task(gate.enter())
        await asyncio.sleep(0)
        gate.leave()  # handed to the waiter ...
        waiting.cancel()  # ... whose request is cancelled before it runs
        await asyncio.gather(waiting, return_exceptions=True)
        assert gate.running == 0
        assert await gate.enter() is None

    asyncio.run(main())


def test_a_standing_queue_shortens_the_wait_a_burst_does_not():
    now = [0.0]
    gate = Gate(1, 100, 1.0, busy_wait_s=0.05, interval_s=0.1, clock=lambda: now[0])

    async def main() -> None:
        assert await gate.enter() is None
        assert gate.wait_s() == 1.0  # nobody waits
        waiter = asyncio.create_task(gate.enter())
        await asyncio.sleep(0)
        now[0] = 0.05
        assert gate.wait_s() == 1.0  # a queue for 50 ms: a burst
        now[0] = 0.2
        assert gate.wait_s() == 0.05  # not empty for 200 ms: past capacity
        gate.leave()  # the waiter gets the slot; the queue is empty again
        assert await waiter is None
        assert gate.wait_s() == 1.0

    asyncio.run(main())


def test_refused_requests_get_a_problem_with_retry_after_and_health_checks_pass():
    async def main() -> tuple[list[dict[str, object]], list[int]]:
        release = asyncio.Event()

        async def slow_app(scope, receive, send) -> None:
            await release.wait()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})

        refused = Counter("t_refusals", "", ["reason"], registry=CollectorRegistry())
        app = AdmissionMiddleware(slow_app, limit=1, max_queued=0, max_wait_s=0.1, refused=refused)
        sent: dict[str, list[dict[str, object]]] = {}

        async def call(path: str) -> None:
            sent[path] = []

            async def send(message: dict[str, object]) -> None:
                sent[path].append(message)

            scope = {"type": "http", "path": path, "method": "GET", "headers": []}
            await app(scope, None, send)

        busy = asyncio.create_task(call("/v1/availability/A"))
        await asyncio.sleep(0)
        await call("/v1/availability/B")  # refused at once: one runs, none may wait
        health = asyncio.create_task(call("/healthz"))  # exempt: reaches the (slow) app
        await asyncio.sleep(0.01)
        assert not health.done()
        release.set()
        await asyncio.gather(busy, health)
        statuses = [sent[p][0]["status"] for p in ("/v1/availability/A", "/healthz")]
        assert refused.labels(QUEUE_FULL)._value.get() == 1
        return sent["/v1/availability/B"], statuses

    refusal, statuses = asyncio.run(main())
    start, body = refusal[0], orjson.loads(refusal[1]["body"])
    headers = dict(start["headers"])
    assert start["status"] == 503 and headers[b"retry-after"] == b"1"
    assert headers[b"content-type"] == b"application/problem+json"
    assert body["code"] == "overloaded" and body["reason"] == QUEUE_FULL
    assert "ATP_API_WORKERS" in body["detail"]
    assert statuses == [200, 200]
