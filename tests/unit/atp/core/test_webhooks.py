"""Webhook rules: event types from topic records, the CloudEvents envelope, signatures that the
`standardwebhooks` package (the specification's reference library) verifies, the retry
schedule, and which targets may be called."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from atp.core import webhooks as wh

STATUSES = ("in_stock", "low_stock", "out_of_stock")
LOOPBACK = [ipaddress.ip_network("127.0.0.0/8")]


def change(before: str, after: str) -> dict[str, object]:
    return {"sku": "S1", "channel": "online", "atp": 3, "status": after,
            "previous_atp": 9, "previous_status": before, "at_ms": 1}  # fmt: skip


@given(st.sampled_from(STATUSES), st.sampled_from(STATUSES))
def test_every_change_is_changed_and_a_new_status_is_named(before, after):
    types = [e.type for e in wh.availability_events(change(before, after))]
    assert types[0] == wh.CHANGED
    assert (wh.LOW in types) == (after == "low_stock" != before)
    assert (wh.OUT in types) == (after == "out_of_stock" != before)
    assert (wh.BACK in types) == (before == "out_of_stock" != after)
    assert all(e.subject == "S1" for e in wh.availability_events(change(before, after)))


def test_an_exposure_and_reservation_events():
    exposure = {"type": "oversell_exposure", "sku": "S2", "exposure": 1}
    assert [(e.type, e.subject) for e in wh.availability_events(exposure)] == [(wh.EXPOSURE, "S2")]
    held = {"type": "held", "reservation_id": "r-1", "event_id": "1-0"}
    assert [(e.type, e.subject) for e in wh.reservation_events(held)] == [
        ("reservation.held", "r-1")
    ]
    assert wh.reservation_events({"type": "something-new"}) == []


@pytest.mark.parametrize(
    ("names", "event_type", "wanted"),
    [
        (["availability.changed"], "availability.changed", True),
        (["availability.changed"], "availability.low_stock", False),
        (["availability.*"], "availability.back_in_stock", True),
        (["reservation.*"], "reservation.expired", True),
        (["reservation.*"], "oversell.exposure", False),
        (["*"], "oversell.exposure", True),
    ],
)
def test_what_a_subscription_wants(names, event_type, wanted):
    assert wh.wants(names, event_type) is wanted


def test_unknown_event_names_are_refused_with_the_known_ones():
    with pytest.raises(wh.InvalidSubscription, match=r"availability\.changed"):
        wh.check_event_names(["availability.chnaged"])
    with pytest.raises(wh.InvalidSubscription):
        wh.check_event_names([])
    assert wh.check_event_names(["*", "*"]) == ["*"]


@given(
    random=st.binary(min_size=24, max_size=64),
    message_id=st.text(st.characters(codec="ascii", exclude_characters="."), min_size=1),
    body=st.binary(max_size=2000),
)
def test_the_reference_library_verifies_our_signatures(random, message_id, body):
    secret = wh.new_secret(random)
    now = int(datetime.now(UTC).timestamp())
    headers = {
        "webhook-id": message_id,
        "webhook-timestamp": str(now),
        "webhook-signature": wh.sign(secret, message_id, now, body),
    }
    Webhook(secret).verify(body, headers, json_parse=False)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body + b"x", headers, json_parse=False)
    with pytest.raises(WebhookVerificationError):
        other = bytes([random[0] ^ 1]) + random[1:]  # one bit off
        Webhook(wh.new_secret(other)).verify(body, headers, json_parse=False)


def test_a_cloud_event_in_both_modes():
    event = wh.Event(wh.LOW, "S1", change("in_stock", "low_stock"))
    envelope = wh.cloud_event(event, "m-1", "/inventory-availability", 1_700_000_000_000)
    assert envelope["specversion"] == "1.0" and envelope["type"] == "availability.low_stock"
    assert envelope["subject"] == "S1" and envelope["time"] == "2023-11-14T22:13:20.000+00:00"
    assert orjson.loads(orjson.dumps(envelope))["data"]["status"] == "low_stock"
    headers = wh.binary_headers(envelope)
    assert headers["ce-id"] == "m-1" and headers["ce-specversion"] == "1.0"
    assert headers["content-type"] == "application/json" and "ce-data" not in headers


def test_retries_follow_the_schedule_then_stop():
    schedule = (5.0, 300.0, 1800.0)
    assert [wh.retry_delay_s(n, schedule) for n in range(1, 5)] == [5.0, 300.0, 1800.0, None]


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("ftp://example.com/x", "invalid_url"),
        ("https:///path", "invalid_url"),
        ("https://user:pw@example.com/hook", "invalid_url"),
        ("https://example.com:99999/", "invalid_url"),
        ("https://example.com/hook#frag", "invalid_url"),
    ],
)
def test_urls_refused(url, code):
    with pytest.raises(wh.InvalidSubscription) as caught:
        wh.check_url(url)
    assert caught.value.code == code


def test_urls_accepted():
    assert wh.check_url("https://example.com/hook?t=1") == ("https", "example.com", 443)
    assert wh.check_url("http://127.0.0.1:8080/h") == ("http", "127.0.0.1", 8080)


@pytest.mark.parametrize(
    ("address", "allowed", "refused"),
    [
        ("93.184.215.14", [], False),
        ("127.0.0.1", [], True),
        ("10.1.2.3", [], True),
        ("169.254.169.254", [], True),  # cloud metadata
        ("::1", [], True),
        ("::ffff:127.0.0.1", [], True),
        ("fd00::1", [], True),
        ("224.0.0.1", [], True),
        ("127.0.0.1", LOOPBACK, False),
        ("::ffff:127.0.0.1", LOOPBACK, False),
        ("10.1.2.3", LOOPBACK, True),
    ],
)
def test_which_addresses_may_be_called(address, allowed, refused):
    assert (wh.refused_address(address, allowed) is not None) is refused


def test_plain_http_only_inside_allowed_networks():
    assert wh.refused_scheme("https", "93.184.215.14", []) is None
    assert wh.refused_scheme("http", "93.184.215.14", []) is not None
    assert wh.refused_scheme("http", "127.0.0.1", LOOPBACK) is None


def test_logs_show_no_query():
    assert wh.redact("https://h.example:8443/p?token=abc") == "https://h.example:8443/p?…"
    assert wh.redact("https://h.example/p") == "https://h.example/p"


def test_networks_setting():
    assert wh.parse_networks(" 127.0.0.0/8, ::1/128 ,") == [
        ipaddress.ip_network("127.0.0.0/8"),
        ipaddress.ip_network("::1/128"),
    ]
    with pytest.raises(ValueError, match="not-a-network"):
        wh.parse_networks("not-a-network")
