"""Every Kafka client the service makes connects as the settings say (TLS, SASL): aiokafka's
options from one place, and faust's credentials that faust turns back into the same options."""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import pytest
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

from atp.kafka import reader, topics
from atp.kafka.security import TokenFile, client_options
from atp.settings import Settings, load_settings
from atp.tools import rejected, simulator
from atp.tools.pki import Pki
from stream.app import faust_credentials
from stream.consumer import BatchConsumer
from stream.forward import Forwarder

SECURITY = ("security_protocol", "ssl_context", "sasl_mechanism", "sasl_plain_username")


def settings_for(pki: Pki, tmp_path: Any, protocol: str, mechanism: str = "PLAIN") -> Settings:
    token = tmp_path / "token"
    token.write_text("tok-1\n")
    env = {
        "ATP_KAFKA_BOOTSTRAP": "127.0.0.1:1,127.0.0.1:2",
        "ATP_KAFKA_SECURITY_PROTOCOL": protocol,
        "ATP_KAFKA_SASL_MECHANISM": mechanism,
        "ATP_KAFKA_SASL_USERNAME": "svc",
        "ATP_KAFKA_SASL_PASSWORD": "pw",
        "ATP_KAFKA_SASL_OAUTH_TOKEN_FILE": str(token),
    }
    if protocol.endswith("SSL"):
        env |= {
            "ATP_KAFKA_SSL_CAFILE": str(pki.ca),
            "ATP_KAFKA_SSL_CERTFILE": str(pki.client_cert),
            "ATP_KAFKA_SSL_KEYFILE": str(pki.client_key),
        }
    return load_settings(env)


CASES = [
    ("PLAINTEXT", "PLAIN"),
    ("SSL", "PLAIN"),
    ("SASL_PLAINTEXT", "PLAIN"),
    ("SASL_PLAINTEXT", "SCRAM-SHA-256"),
    ("SASL_SSL", "SCRAM-SHA-512"),
    ("SASL_SSL", "OAUTHBEARER"),
]


def shape(options: dict[str, Any]) -> dict[str, Any]:
    """The security options, with a TLS context as what it checks."""
    out = {k: options.get(k) for k in SECURITY}
    out["sasl_plain_password"] = options.get("sasl_plain_password")
    out["token"] = type(options.get("sasl_oauth_token_provider")).__name__
    context = out.pop("ssl_context")
    out["tls"] = None if context is None else (context.verify_mode, context.check_hostname)
    return out


@pytest.mark.parametrize(("protocol", "mechanism"), CASES)
def test_aiokafka_options_follow_the_settings(pki, tmp_path, protocol, mechanism):
    options = client_options(settings_for(pki, tmp_path, protocol, mechanism))
    assert options["bootstrap_servers"] == ["127.0.0.1:1", "127.0.0.1:2"]
    assert options["security_protocol"] == protocol
    tls = options.get("ssl_context")
    assert (tls is not None) == protocol.endswith("SSL")
    if tls is not None:
        assert tls.verify_mode == ssl.CERT_REQUIRED and tls.check_hostname
    sasl = protocol.startswith("SASL_")
    assert options.get("sasl_mechanism") == (mechanism if sasl else None)
    if sasl and mechanism == "OAUTHBEARER":
        assert isinstance(options["sasl_oauth_token_provider"], TokenFile)
        assert "sasl_plain_password" not in options
    elif sasl:
        assert (options["sasl_plain_username"], options["sasl_plain_password"]) == ("svc", "pw")


@pytest.mark.parametrize(("protocol", "mechanism"), CASES)
def test_faust_connects_with_the_same_options(pki, tmp_path, protocol, mechanism):
    settings = settings_for(pki, tmp_path, protocol, mechanism)
    faust_options = credentials_to_aiokafka_auth(faust_credentials(settings))
    assert shape(faust_options) == shape(client_options(settings))


def test_hostname_verification_can_be_turned_off(pki, tmp_path):
    settings = settings_for(pki, tmp_path, "SSL").model_copy(
        update={"kafka_ssl_check_hostname": False}
    )
    assert client_options(settings)["ssl_context"].check_hostname is False


def test_the_oauth_token_is_read_again_for_every_token(tmp_path):
    path = tmp_path / "token"
    path.write_text("first\n")
    provider = TokenFile(path)
    assert asyncio.run(provider.token()) == "first"
    path.write_text("renewed\n")
    assert asyncio.run(provider.token()) == "renewed"


def test_every_client_the_service_makes_gets_the_options(pki, tmp_path, monkeypatch, demo_network):
    settings = settings_for(pki, tmp_path, "SASL_SSL", "SCRAM-SHA-256")
    want = shape(client_options(settings))
    made: list[tuple[str, dict[str, Any]]] = []

    def recorder(name: str) -> Any:
        def make(*args: Any, **kwargs: Any) -> Any:
            made.append((name, kwargs))
            raise _Stop

        return make

    class _Stop(Exception):
        pass

    async def connected(*args: Any, **kwargs: Any) -> None:
        return None

    monkeypatch.setattr(topics, "check_connection", connected)
    monkeypatch.setattr(rejected, "check_connection", connected)
    monkeypatch.setattr(topics, "AIOKafkaAdminClient", recorder("admin"))
    monkeypatch.setattr(reader, "AIOKafkaConsumer", recorder("reader"))
    monkeypatch.setattr(rejected, "AIOKafkaProducer", recorder("replay"))
    monkeypatch.setattr(simulator, "AIOKafkaProducer", recorder("simulator"))

    async def each() -> None:
        for start in (
            lambda: topics.ensure_topics(settings),
            lambda: rejected.read(settings),
            lambda: rejected.replay(settings, []),
        ):
            with pytest.raises(_Stop):
                await start()

    asyncio.run(each())
    monkeypatch.setattr(topics, "ensure_topics", connected)
    with pytest.raises(_Stop):
        asyncio.run(simulator.run(settings, demo_network, simulator.SimConfig()))
    consumer = BatchConsumer.for_hop(settings, ["t"], "ledger", handle=None)  # type: ignore[arg-type]
    made.append(("hop consumer", consumer._config))
    forwarder = Forwarder(client_options(settings), client_id="f")
    made.append(("forwarder", forwarder._config))
    names = ["admin", "reader", "replay", "simulator", "hop consumer", "forwarder"]
    assert [name for name, _ in made] == names
    for name, kwargs in made:
        assert shape(kwargs) == want, name
