"""What a TLS failure says about the client's certificate, for the start-up checks of Kafka
(atp/kafka/connect.py) and Redis (atp/store/access.py). A server that requires a client
certificate (mutual TLS) finishes the TLS 1.3 handshake first and refuses with an alert on the
client's first read, so the client sees a closed connection whose cause is that alert.

A client that has already sent its first request when the alert comes may see only a reset
connection: the server closes with the request unread, its kernel answers with a reset, and the
client's kernel can drop the alert it had received (redis-py: about 1 connection in 7 on
loopback). So when a TLS connection is reset at start, `alert_when_reading_first` connects again,
sends nothing and reads: then the alert always arrives (300 of 300 tries)."""

from __future__ import annotations

import asyncio
import socket
import ssl

# Alerts a server sends when the client's certificate is missing or not one it trusts.
CLIENT_CERT_ALERTS = (
    "TLSV13_ALERT_CERTIFICATE_REQUIRED",  # TLS 1.3: no certificate sent
    "SSLV3_ALERT_HANDSHAKE_FAILURE",  # TLS 1.2: no certificate sent
    "SSLV3_ALERT_BAD_CERTIFICATE",
    "TLSV1_ALERT_UNKNOWN_CA",  # sent, but signed by a CA the server does not trust
    "SSLV3_ALERT_CERTIFICATE_UNKNOWN",
)


def client_certificate_refused(exc: BaseException) -> str | None:
    """The server's alert (its reason) when `exc`, or what caused it, is a refusal of the
    client's certificate; None otherwise."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, ssl.SSLError) and getattr(cause, "reason", None) in CLIENT_CERT_ALERTS:
            return str(cause.reason)
        # redis-py re-raises a read's SSLError as a ConnectionError carrying only its text.
        for alert in CLIENT_CERT_ALERTS:
            if alert in str(cause):
                return alert
        cause = cause.__cause__ or cause.__context__
    return None


async def alert_when_reading_first(
    host: str, port: int, context: ssl.SSLContext, timeout_s: float = 5.0
) -> str | None:
    """Connect with `context`, finish the handshake, send nothing and wait up to `timeout_s` for
    the server: its alert when it refuses the client's certificate; None when it says nothing,
    closes without one or cannot be reached (then the caller's own diagnosis stands)."""
    return await asyncio.to_thread(_read_first, host, port, context, timeout_s)


def _read_first(host: str, port: int, context: ssl.SSLContext, timeout_s: float) -> str | None:
    try:
        with (
            socket.create_connection((host, port), timeout=timeout_s) as raw,
            context.wrap_socket(raw, server_hostname=host) as conn,
        ):
            conn.recv(1)
    except OSError as exc:  # ssl.SSLError is one
        return client_certificate_refused(exc)
    return None
