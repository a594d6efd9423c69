"""Signed webhooks end to end: real worker, API, broker and Redis, and real HTTP receivers on
loopback. Deliveries verify with the `standardwebhooks` package and carry CloudEvents; a failing
receiver is retried, then its message is kept as failed; a receiver that does not answer
delays no other; a restarted worker goes on; no secret reaches a log."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
import pytest
from standardwebhooks import Webhook

from atp.kafka import topics
from tests.integration.conftest import ADMIN_TOKEN, READ_TOKEN, RESERVE_TOKEN, wait_http_ok
from tests.integration.test_fulfilment import wms
from tests.integration.test_prometheus import wait_for
from tests.integration.wms_scenario import produce

pytestmark = pytest.mark.integration
FAST = {
    "ATP_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
    "ATP_WEBHOOK_RETRY_S": "0.3,0.3",  # three attempts, then failed
    "ATP_WEBHOOK_TIMEOUT_S": "60",  # longer than any wait below: a stuck receiver stays stuck
}


@dataclass
class Receiver:
    """A real HTTP server on 127.0.0.1 that records each request. It answers each message's
    attempts (by `webhook-id`) with `statuses` in turn, the last one from then on; with `hold`,
    each request waits until it is set."""

    statuses: tuple[int, ...] = (200,)
    hold: threading.Event | None = None
    got: list[tuple[dict[str, str], bytes]] = field(default_factory=list)  # answered
    arrived: int = 0  # requests received, answered or not
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                receiver.arrived += 1
                if receiver.hold is not None:
                    receiver.hold.wait(120)
                headers = {k.lower(): v for k, v in self.headers.items()}
                with receiver.lock:
                    same = [h for h, _ in receiver.got if h["webhook-id"] == headers["webhook-id"]]
                    n = len(same)
                    receiver.got.append((headers, body))
                self.send_response(receiver.statuses[min(n, len(receiver.statuses) - 1)])
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        # A query like a receiver's own token: it must never show up in a log.
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook?token=q-secret-7"

    def close(self) -> None:
        if self.hold is not None:
            self.hold.set()
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def receivers(*made: Receiver) -> Iterator[tuple[Receiver, ...]]:
    with ExitStack() as stack:
        for r in made:
            stack.callback(r.close)
        yield made


def call(
    base: str, method: str, path: str, body: Any = None, token: str = ADMIN_TOKEN
) -> tuple[int, Any]:
    request = urllib.request.Request(
        base + path,
        method=method,
        data=None if body is None else orjson.dumps(body),
        headers={"authorization": f"Bearer {token}", "content-type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=20) as r:
            raw = r.read()
            return r.status, orjson.loads(raw) if raw else None
    except urllib.error.HTTPError as e:
        return e.code, orjson.loads(e.read())


def verified(secret: str, got: tuple[dict[str, str], bytes]) -> Any:
    headers, body = got
    return Webhook(secret).verify(body, headers)  # raises unless signed with this secret


def test_webhooks_are_signed_retried_kept_and_isolated(settings, processes, tmp_path):
    sku = f"WH-{uuid.uuid4().hex[:8]}"
    release = threading.Event()
    with receivers(
        Receiver(),  # good
        Receiver(statuses=(500, 500, 200)),  # flaky: right at the third attempt
        Receiver(statuses=(503,)),  # broken: never right
        Receiver(hold=release),  # stuck: answers only when released
    ) as (good, flaky, broken, stuck):
        processes.start("worker", env=FAST)
        api = processes.start("api", env=FAST)
        base = f"http://127.0.0.1:{settings.api_port}"
        wait_http_ok(f"{base}/readyz", api)

        subs = {}
        for name, receiver, events, fmt in (
            ("good", good, ["availability.*"], "structured"),
            ("broken", broken, ["availability.changed"], "structured"),
            ("stuck", stuck, ["*"], "structured"),
        ):
            status, sub = call(
                base, "POST", "/v1/webhooks", {"url": receiver.url, "events": events, "format": fmt}
            )
            assert status == 201, sub
            assert sub["secret"].startswith("whsec_") and sub["events"] == events
            subs[name] = sub
        status, listed = call(base, "GET", "/v1/webhooks")
        assert status == 200 and {s["id"] for s in listed["webhooks"]} >= {
            s["id"] for s in subs.values()
        }
        assert all("secret" not in s for s in listed["webhooks"])

        # First another SKU's stock: the stuck receiver is sent its events and holds them.
        wms_topic = settings.topic(topics.WMS)
        other = f"{sku}-other"
        asyncio.run(
            produce(settings.kafka_bootstrap, wms_topic, [wms(f"{other}-r", other, "RECEIVED", 5)])
        )
        wait_for(lambda: stuck.arrived >= 1, "a request held by the stuck receiver")
        # Then the SKU's stock arrives (out of stock -> low stock on the online channel): the
        # good receiver gets its events while the stuck one still holds every request.
        asyncio.run(
            produce(settings.kafka_bootstrap, wms_topic, [wms(f"{sku}-r", sku, "RECEIVED", 5)])
        )
        mine = wait_for(
            lambda: about(good, sku, 3), "three events of the SKU at the good receiver", 40
        )
        assert not release.is_set() and stuck.got == [] and stuck.arrived >= 1
        events = [verified(subs["good"]["secret"], g) for g in mine]
        assert sorted(e["type"] for e in events) == [
            "availability.back_in_stock",
            "availability.changed",
            "availability.low_stock",
        ]
        for (headers, _), e in zip(mine, events, strict=True):
            assert e["specversion"] == "1.0" and e["id"] == headers["webhook-id"]
            assert (e["data"]["channel"], e["data"]["atp"], e["data"]["status"]) == (
                "online",
                5,
                "low_stock",
            )
            assert headers["content-type"] == "application/cloudevents+json"
        assert len({h["webhook-id"] for h, _ in mine}) == 3

        # A reservation: the flaky receiver gets it at the third attempt, the same message each
        # time.
        rid = f"r-{sku}"
        # Subscribed just before: it gets the reservation made right after.
        status, subs["flaky"] = call(
            base,
            "POST",
            "/v1/webhooks",
            {"url": flaky.url, "events": ["reservation.*"], "format": "binary"},
        )
        assert status == 201
        status, _ = call(
            base,
            "POST",
            "/v1/reservations",
            {"reservation_id": rid, "lines": [{"sku": sku, "quantity": 1}]},
            RESERVE_TOKEN,
        )
        assert status == 201

        # (The session's Redis is shared: this worker's relay may also publish reservation
        # events other tests left in the outbox, and the flaky receiver gets those too.)
        def ours() -> list[tuple[dict[str, str], bytes]]:
            with flaky.lock:
                return [g for g in flaky.got if g[0].get("ce-subject") == rid]

        wait_for(lambda: len(ours()) >= 3, "three attempts at the flaky receiver")
        assert len({h["webhook-id"] for h, _ in ours()}) == 1
        for got in ours():
            data = verified(subs["flaky"]["secret"], got)  # binary mode: the body is the data
            headers = got[0]
            assert (headers["ce-type"], headers["ce-subject"], data["reservation_id"]) == (
                "reservation.held",
                rid,
                rid,
            )
        fid, mid = subs["flaky"]["id"], ours()[0][0]["webhook-id"]
        attempts = wait_for(lambda: delivered(base, fid, mid), "the flaky delivery recorded")
        assert [a["outcome"] for a in attempts] == ["delivered", "retrying", "retrying"]
        assert [a["status"] for a in attempts] == [200, 500, 500]
        failed = call(base, "GET", f"/v1/webhooks/{fid}/deliveries")[1]["failed"]
        assert [f for f in failed if f["message_id"] == mid] == []

        # The broken receiver: three attempts at each of its two messages (the SKUs' changes),
        # then each is kept as failed.
        bid = subs["broken"]["id"]

        def given_up() -> Any:
            log = call(base, "GET", f"/v1/webhooks/{bid}/deliveries")[1]
            return log if len(log["failed"]) == 2 else None

        log = wait_for(given_up, "the broken deliveries given up")
        assert len(broken.got) == 6 and log["pending"] == 0
        assert {(f["envelope"]["type"], f["subject"], f["status"]) for f in log["failed"]} == {
            ("availability.changed", sku, 503),
            ("availability.changed", other, 503),
        }
        outcomes = sorted(a["outcome"] for a in log["attempts"])
        assert outcomes == ["failed"] * 2 + ["retrying"] * 4

        # Released, the stuck receiver gets all it was sent: six availability events, the hold
        # (and, subscribed to every event, what other tests left in the outbox: not counted).
        release.set()

        def stuck_ours() -> list[Any]:
            with stuck.lock:
                got = list(stuck.got)
            events = (verified(subs["stuck"]["secret"], g) for g in got)
            return [e for e in events if e.get("subject") in (sku, other, rid)]

        wait_for(lambda: len(stuck_ours()) >= 7, "the stuck receiver's seven messages")
        types = sorted(e["type"] for e in stuck_ours())
        assert "reservation.held" in types and "availability.changed" in types

        # A worker restarted: the subscriptions are still there and the next change arrives.
        processes.started[0].stop(grace_s=15)
        processes.start("worker", name="worker-2", env=FAST)
        seen = {h["webhook-id"] for h, _ in good.got}

        def new_types() -> list[str]:
            # At least once: a message sent again has an id seen before.
            fresh = {h["webhook-id"]: g for g in good.got if (h := g[0])["webhook-id"] not in seen}
            return sorted(verified(subs["good"]["secret"], g)["type"] for g in fresh.values())

        asyncio.run(
            produce(settings.kafka_bootstrap, wms_topic, [wms(f"{sku}-s", sku, "SHIPPED", 5)])
        )
        wait_for(lambda: len(new_types()) >= 2, "the out-of-stock events after the restart")
        assert new_types() == ["availability.changed", "availability.out_of_stock"]

        # Deleted: gone, with what it had.
        assert call(base, "DELETE", f"/v1/webhooks/{fid}")[0] == 204
        assert call(base, "GET", f"/v1/webhooks/{fid}")[0] == 404
        assert call(base, "GET", f"/v1/webhooks/{fid}/deliveries")[0] == 404

    processes.stop_all()
    logs = "".join(p.read_text(errors="replace") for p in (tmp_path / "logs").glob("*"))
    assert "attempt" in logs  # the worker did log the attempts that failed...
    for secret in (s["secret"] for s in subs.values()):
        assert secret not in logs  # ... and no secret
    assert "q-secret-7" not in logs  # nor the receivers' tokens


def about(receiver: Receiver, subject: str, n: int) -> list[tuple[dict[str, str], bytes]]:
    """The receiver's structured deliveries about `subject`, once there are `n` of them."""
    mine = [g for g in receiver.got if orjson.loads(g[1])["subject"] == subject]
    return mine if len(mine) >= n else []


def delivered(base: str, subscription_id: str, message_id: str) -> Any:
    """The message's attempts, newest first, once the last of them delivered it."""
    _, log = call(base, "GET", f"/v1/webhooks/{subscription_id}/deliveries")
    attempts = [a for a in log["attempts"] if a["message_id"] == message_id]
    return attempts if attempts and attempts[0]["outcome"] == "delivered" else None


@pytest.mark.parametrize(
    ("body", "token", "status", "code"),
    [
        (
            {"url": "http://10.0.0.1/hook", "events": ["*"]},
            ADMIN_TOKEN,
            422,
            "webhook_target_refused",
        ),
        (
            {"url": "http://93.184.215.14/hook", "events": ["*"]},
            ADMIN_TOKEN,
            422,
            "webhook_target_refused",
        ),
        ({"url": "https://u:p@127.0.0.1/hook", "events": ["*"]}, ADMIN_TOKEN, 422, "invalid_url"),
        (
            {"url": "http://127.0.0.1:9/hook", "events": ["stock.moved"]},
            ADMIN_TOKEN,
            422,
            "invalid_events",
        ),
        ({"url": "http://127.0.0.1:9/hook", "events": ["*"]}, READ_TOKEN, 403, "forbidden"),
    ],
)
def test_a_subscription_the_service_will_not_make(client, body, token, status, code):
    settings = client.app.state.services.settings
    assert settings.webhook_allowed_networks == ""
    client.app.state.services = replace_settings(
        client.app.state.services, webhook_allowed_networks="127.0.0.0/8"
    )
    r = client.post("/v1/webhooks", json=body, headers={"authorization": f"Bearer {token}"})
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == code


def replace_settings(services: Any, **changes: Any) -> Any:
    return dataclasses.replace(services, settings=services.settings.model_copy(update=changes))
