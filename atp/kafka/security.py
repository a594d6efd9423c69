"""How every Kafka client of the service connects: the settings' TLS and SASL as the options
aiokafka's consumer, producer and admin client take (faust's are built from the same in
stream/app.py). docs/operations.md, "Managed Kafka and Redis"."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

from aiokafka.abc import AbstractTokenProvider
from aiokafka.helpers import create_ssl_context

from atp.settings import Settings


class TokenFile(AbstractTokenProvider):
    """OAUTHBEARER: the token in a file, read again for every token the client asks for (the
    platform that mounts it renews it)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    async def token(self) -> str:
        return self.path.read_text(encoding="utf-8").strip()


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context of SSL and SASL_SSL (None for the others): the CA file or the system's
    trusted CAs, the client certificate for mutual TLS, hostname verification unless turned off."""
    if settings.kafka_security_protocol not in ("SSL", "SASL_SSL"):
        return None
    context = create_ssl_context(
        cafile=settings.kafka_ssl_cafile,
        certfile=settings.kafka_ssl_certfile,
        keyfile=settings.kafka_ssl_keyfile,
        password=settings.kafka_ssl_key_password.get_secret_value() or None,
    )
    context.check_hostname = settings.kafka_ssl_check_hostname
    return context


def client_options(settings: Settings) -> dict[str, Any]:
    """`bootstrap_servers` and the security options, for any aiokafka client."""
    protocol = settings.kafka_security_protocol
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap.split(","),
        "security_protocol": protocol,
    }
    context = ssl_context(settings)
    if context is not None:
        options["ssl_context"] = context
    if protocol.startswith("SASL_"):
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism
        if settings.kafka_sasl_mechanism == "OAUTHBEARER":
            assert settings.kafka_sasl_oauth_token_file is not None  # the settings check it
            options["sasl_oauth_token_provider"] = TokenFile(settings.kafka_sasl_oauth_token_file)
        else:
            options["sasl_plain_username"] = settings.kafka_sasl_username
            options["sasl_plain_password"] = settings.kafka_sasl_password.get_secret_value()
    return options
