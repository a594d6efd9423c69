"""A refused client certificate is found however deep the TLS alert sits under the error a
client library raises; other TLS failures and plain closes are not taken for it. Reading first
from a real TLS server on loopback gets its alert, and nothing from one that takes the client."""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from atp.tls import CLIENT_CERT_ALERTS, alert_when_reading_first, client_certificate_refused


def alert(reason: str) -> ssl.SSLError:
    exc = ssl.SSLError(1, f"[SSL: {reason}] {reason.lower()}")
    exc.reason = reason
    return exc


def wrapped(cause: BaseException, depth: int, *, implicit: bool) -> BaseException:
    exc = cause
    for i in range(depth):
        outer = ConnectionError(f"closed ({i})")
        if implicit:
            outer.__context__ = exc
        else:
            outer.__cause__ = exc
        exc = outer
    return exc


@pytest.mark.parametrize("reason", CLIENT_CERT_ALERTS)
@pytest.mark.parametrize("depth", [0, 1, 3])
@pytest.mark.parametrize("implicit", [False, True])
def test_the_alert_is_found_under_the_library_error(reason, depth, implicit):
    assert client_certificate_refused(wrapped(alert(reason), depth, implicit=implicit)) == reason


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionError("Connection at 127.0.0.1:9093 closed"),
        wrapped(alert("WRONG_VERSION_NUMBER"), 2, implicit=False),
        wrapped(ssl.SSLCertVerificationError(1, "certificate verify failed"), 1, implicit=True),
    ],
    ids=["plain-close", "plaintext-port", "untrusted-server"],
)
def test_other_failures_are_not_a_refused_certificate(exc):
    assert client_certificate_refused(exc) is None


def test_a_cycle_in_the_chain_ends():
    a, b = ConnectionError("a"), ConnectionError("b")
    a.__context__, b.__context__ = b, a
    assert client_certificate_refused(a) is None


@contextmanager
def tls_server(pki, *, close_at_once: bool = False) -> Iterator[int]:
    """A loopback TLS 1.3 server that wants a client certificate its CA signed; it accepts one
    connection at a time, says nothing, and holds it until the client goes (or closes at once)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki.ca))
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_cert_chain(pki.server_cert, pki.server_key)
    listener = socket.create_server(("127.0.0.1", 0))
    done = threading.Event()

    def serve() -> None:
        while not done.is_set():
            try:
                raw, _ = listener.accept()
            except OSError:
                return
            with raw:
                try:
                    with context.wrap_socket(raw, server_side=True) as conn:
                        if not close_at_once:
                            conn.recv(1)
                except OSError:
                    pass  # the refused client: the alert is sent

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        done.set()
        listener.shutdown(socket.SHUT_RDWR)  # wakes the accept()
        listener.close()
        thread.join(5)


def client_context(pki, cert: tuple[Path, Path] | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca))
    context.check_hostname = False
    if cert is not None:
        context.load_cert_chain(*cert)
    return context


def test_reading_first_gets_the_alert_of_a_refused_certificate(pki):
    with tls_server(pki) as port:
        for cert in (None, (pki.other_ca, pki.other_ca_key)):
            alert = asyncio.run(
                alert_when_reading_first("127.0.0.1", port, client_context(pki, cert))
            )
            assert alert in ("TLSV13_ALERT_CERTIFICATE_REQUIRED", "TLSV1_ALERT_UNKNOWN_CA")


def test_reading_first_finds_nothing_when_the_certificate_is_taken(pki):
    good = client_context(pki, (pki.client_cert, pki.client_key))
    with tls_server(pki) as port:
        assert asyncio.run(alert_when_reading_first("127.0.0.1", port, good, 0.3)) is None
    with tls_server(pki, close_at_once=True) as port:
        assert asyncio.run(alert_when_reading_first("127.0.0.1", port, good)) is None


def test_reading_first_from_nothing_listening_is_no_alert(pki):
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()
    assert (
        asyncio.run(alert_when_reading_first("127.0.0.1", port, client_context(pki, None))) is None
    )
