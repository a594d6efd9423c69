"""A refused client certificate is found however deep the TLS alert sits under the error a
client library raises; other TLS failures and plain closes are not taken for it."""

from __future__ import annotations

import ssl

import pytest

from atp.tls import CLIENT_CERT_ALERTS, client_certificate_refused


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
