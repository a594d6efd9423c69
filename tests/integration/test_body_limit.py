"""A request body over ATP_API_MAX_BODY_BYTES is refused with 413 problem+json before it is
read: at once when its Content-Length says so, and once the limit is passed when it is sent
in chunks; a body within the limit is answered as before, chunked or not."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import orjson
import pytest

from tests.integration.conftest import wait_http_ok

pytestmark = pytest.mark.integration

QUERY = "/v1/availability/query"
LIMIT = 1_048_576  # the default


def big_query(size: int) -> bytes:
    """A syntactically valid query of about `size` bytes (too many SKUs, were it parsed)."""
    skus = [f"SKU-{i:09d}" for i in range(size // 16 + 1)]
    return orjson.dumps({"skus": skus, "channel": "online"})


def chunks(body: bytes, size: int = 65_536) -> Iterator[bytes]:
    for i in range(0, len(body), size):
        yield body[i : i + size]


def assert_too_large(r) -> None:
    assert r.status_code == 413
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert (body["code"], body["max_bytes"]) == ("body_too_large", LIMIT)
    assert "ATP_API_MAX_BODY_BYTES" in body["detail"]


def test_a_body_over_the_limit_is_refused_with_its_length_or_chunked(client):
    body = big_query(2 * LIMIT)
    assert_too_large(client.post(QUERY, content=body, headers={"content-type": "application/json"}))
    assert_too_large(
        client.post(QUERY, content=chunks(body), headers={"content-type": "application/json"})
    )


def test_a_body_within_the_limit_is_answered_chunked_or_not(client):
    body = orjson.dumps({"skus": ["LIMIT-A", "LIMIT-B"], "channel": "online"})
    headers = {"content-type": "application/json"}
    for content in (body, chunks(body, 7)):
        r = client.post(QUERY, content=content, headers=headers)
        assert r.status_code == 200, r.text
        assert [a["sku"] for a in r.json()["results"]] == ["LIMIT-A", "LIMIT-B"]


def test_the_server_refuses_a_50_mb_body_without_waiting_for_it(settings, processes):
    api = processes.start("api")
    wait_http_ok(f"http://127.0.0.1:{settings.api_port}/readyz", api)
    head = (
        f"POST {QUERY} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {50 * 1024 * 1024}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", settings.api_port), timeout=10) as conn:
        conn.sendall(head + b'{"skus": [')  # and not one byte more
        reply = b""
        while b"\r\n\r\n" not in reply:
            # A server waiting for the rest of the body answers nothing: socket.timeout.
            got = conn.recv(65_536)
            assert got, "connection closed without an answer"
            reply += got
    status_line = reply.split(b"\r\n", 1)[0]
    assert status_line.split(b" ")[1] == b"413", status_line
