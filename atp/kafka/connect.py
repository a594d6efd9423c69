"""The first connection to Kafka, checked before any client starts: a wrong password, an
untrusted certificate or TLS on one side only stop the process with a message that names the
setting to look at. (aiokafka's clients log the cause and raise only "Unable to bootstrap", or,
for a TLS client at a plaintext port, wait out their request timeout.)"""

from __future__ import annotations

import asyncio
import ssl

from aiokafka import errors
from aiokafka.conn import create_conn
from aiokafka.protocol.metadata import MetadataRequest

from atp.core.errors import ATPError
from atp.kafka.security import client_options
from atp.settings import Settings
from atp.tls import alert_when_reading_first, client_certificate_refused


class KafkaSetupError(ATPError):
    """The broker answered, but not to these settings."""

    code = "kafka_setup"


class KafkaUnreachable(ATPError):
    code = "kafka_unreachable"


async def check_connection(settings: Settings, timeout_s: float = 30.0) -> None:
    """Connect to a bootstrap broker as every client will, ask for the cluster's brokers and
    connect to each. Waits up to `timeout_s` for a broker that is not up yet (refused, closed);
    raises KafkaSetupError at once when one refuses the security settings."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        try:
            await _check_once(settings, min(10.0, timeout_s))
            return
        except _RETRY as exc:
            if loop.time() > deadline:
                raise KafkaUnreachable(_unreachable(settings, exc)) from None
            await asyncio.sleep(0.5)


_RETRY = (OSError, errors.KafkaConnectionError, errors.NodeNotReadyError)


async def _check_once(settings: Settings, timeout_s: float) -> None:
    options = client_options(settings)
    bootstrap = options.pop("bootstrap_servers")
    options["request_timeout_ms"] = int(timeout_s * 1000)
    last: BaseException | None = None
    for address in bootstrap:
        host, _, port = address.rpartition(":")
        try:
            brokers = await _metadata(host, int(port), options, settings)
        except _RETRY as exc:
            last = exc
            continue
        for _, broker_host, broker_port, *_ in brokers:
            if (broker_host, broker_port) != (host, int(port)):
                try:
                    await _metadata(broker_host, broker_port, options, settings)
                except _RETRY as exc:
                    raise errors.NodeNotReadyError(
                        f"the broker advertises {broker_host}:{broker_port} and this client "
                        f"cannot use it ({_cause(exc)}): check the broker's advertised listener"
                    ) from exc
        return
    assert last is not None
    raise last


async def _metadata(
    host: str, port: int, options: dict[str, object], settings: Settings
) -> list[tuple[int, str, int]]:
    """Connect (TCP, TLS, SASL) and ask for the brokers; a refusal of the security settings
    becomes a KafkaSetupError that names them."""
    protocol = settings.kafka_security_protocol
    where = f"{host}:{port}"
    try:
        conn = await create_conn(host, port, **options)  # type: ignore[arg-type]
        try:
            reply = await conn.send(MetadataRequest([]))
        finally:
            conn.close()
    except ssl.SSLCertVerificationError as exc:
        raise KafkaSetupError(
            f"Kafka at {where}: its TLS certificate is not trusted ({exc.verify_message}); "
            f"ATP_KAFKA_SSL_CAFILE={settings.kafka_ssl_cafile or '(the system CAs)'}"
        ) from None
    except ssl.SSLError as exc:
        raise KafkaSetupError(
            f"Kafka at {where}: TLS failed ({exc.reason or exc}); is it a TLS listener? "
            f"(ATP_KAFKA_SECURITY_PROTOCOL={protocol})"
        ) from None
    except errors.KafkaConnectionError as exc:
        context = options.get("ssl_context")
        alert = client_certificate_refused(exc)
        if alert is None and isinstance(context, ssl.SSLContext):
            alert = await alert_when_reading_first(host, port, context)  # lost to a reset?
        if alert is None:
            raise
        raise KafkaSetupError(
            f"Kafka at {where} refused this client's TLS certificate ({alert}): set "
            f"ATP_KAFKA_SSL_CERTFILE and ATP_KAFKA_SSL_KEYFILE to a certificate its CA signed "
            f"(now {settings.kafka_ssl_certfile or 'none'})"
        ) from None
    except (TimeoutError, ConnectionAbortedError) as exc:
        if protocol in ("SSL", "SASL_SSL"):
            raise KafkaSetupError(
                f"Kafka at {where}: no TLS handshake ({_cause(exc)}); is it a plaintext "
                f"listener? (ATP_KAFKA_SECURITY_PROTOCOL={protocol})"
            ) from None
        raise
    except (errors.SaslAuthenticationFailed, errors.AuthenticationFailedError) as exc:
        raise KafkaSetupError(
            f"Kafka at {where} refused the SASL credentials of ATP_KAFKA_SASL_USERNAME="
            f"{settings.kafka_sasl_username!r} (ATP_KAFKA_SASL_MECHANISM="
            f"{settings.kafka_sasl_mechanism}): {_cause(exc)}"
        ) from None
    except errors.UnsupportedSaslMechanismError as exc:
        raise KafkaSetupError(
            f"Kafka at {where} does not take ATP_KAFKA_SASL_MECHANISM="
            f"{settings.kafka_sasl_mechanism} (or no SASL at all: ATP_KAFKA_SECURITY_PROTOCOL="
            f"{protocol}): {_cause(exc)}"
        ) from None
    except (KeyError, ValueError) as exc:  # aiokafka's SCRAM, on a server's error reply
        raise KafkaSetupError(
            f"Kafka at {where}: the SCRAM exchange failed ({exc!r}), most likely a wrong "
            f"ATP_KAFKA_SASL_USERNAME ({settings.kafka_sasl_username!r}) or password"
        ) from None
    return [(b[0], b[1], b[2]) for b in reply.brokers]


def _cause(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def _unreachable(settings: Settings, exc: BaseException) -> str:
    protocol = settings.kafka_security_protocol
    hint = ""
    if isinstance(exc, errors.KafkaConnectionError):
        hint = "; the broker closes the connection: " + {
            "PLAINTEXT": "if it expects TLS set ATP_KAFKA_SECURITY_PROTOCOL=SSL (or SASL_SSL), "
            "if a SASL login, SASL_PLAINTEXT",
            "SASL_PLAINTEXT": "if it expects TLS set ATP_KAFKA_SECURITY_PROTOCOL=SASL_SSL; "
            "check that it takes ATP_KAFKA_SASL_MECHANISM=",
            "SASL_SSL": "check that it takes ATP_KAFKA_SASL_MECHANISM=",
            "SSL": "if it expects a SASL login set ATP_KAFKA_SECURITY_PROTOCOL=SASL_SSL",
        }.get(protocol, "")
        if hint.endswith("="):
            hint += settings.kafka_sasl_mechanism
    return (
        f"Kafka at ATP_KAFKA_BOOTSTRAP={settings.kafka_bootstrap} cannot be reached: "
        f"{_cause(exc)}{hint}"
    )
