"""What a TLS failure says about the client's certificate, for the start-up checks of Kafka
(atp/kafka/connect.py) and Redis (atp/store/access.py). A server that requires a client
certificate (mutual TLS) finishes the TLS 1.3 handshake first and refuses with an alert on the
client's first read, so the client sees a closed connection whose cause is that alert."""

from __future__ import annotations

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
