"""docker-compose.yml and its override docker-compose.secure.yml, read as YAML (no Docker engine
here runs them): every ATP_* variable they name is a setting, every secret the override mounts
is a file `atp compose-secrets` makes, each app service's settings load from what it is given,
and no password is written in them."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from atp.settings import ENV_PREFIX, SECRETS, Settings, load_settings
from atp.tools.compose_secrets import DIRECTORY, MOUNT, make_compose_secrets
from tests.conftest import DEMO_NETWORK, ROOT

BASE = ROOT / "docker-compose.yml"
SECURE = ROOT / "docker-compose.secure.yml"
ATP_NAME = re.compile(r"\bATP_[A-Z0-9_]*[A-Z0-9]")
MOUNTED = re.compile(re.escape(MOUNT) + r"/([\w.-]+)")
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|API_KEYS")


def load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # the KEY=value form
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


@pytest.fixture(scope="module")
def secrets_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("compose") / "secrets"
    make_compose_secrets(d)
    return d


@pytest.mark.parametrize("path", [BASE, SECURE, ROOT / "Dockerfile"], ids=lambda p: p.name)
def test_every_atp_variable_named_is_a_setting(path):
    known = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
    known |= {ENV_PREFIX + name.upper() + "_FILE" for name in SECRETS}
    assert set(ATP_NAME.findall(path.read_text(encoding="utf-8"))) - known == set()


def test_every_secret_mounted_is_a_file_the_command_makes(secrets_dir):
    secure = load(SECURE)
    made = {p.name for p in secrets_dir.iterdir()}
    files = {name: spec["file"] for name, spec in secure["secrets"].items()}
    assert set(files) == made  # nothing missing, nothing made for nothing
    assert all(f == f"./{DIRECTORY.as_posix()}/{name}" for name, f in files.items())
    for name, service in secure["services"].items():
        mounted = set(service.get("secrets", []))
        named = set(MOUNTED.findall(json.dumps(service)))
        assert named <= mounted, f"{name} reads secrets it does not mount"
    # the health check's client settings name files of the broker's own mounts
    properties = (secrets_dir / "kafka-client.properties").read_text()
    assert set(MOUNTED.findall(properties)) <= set(secure["services"]["kafka"]["secrets"])


@pytest.mark.parametrize(
    ("service", "kafka", "redis_user"),
    [
        ("worker", "SASL_SSL", "atp-worker"),
        ("api", "PLAINTEXT", "atp-api"),
        ("simulator", "SASL_SSL", ""),
    ],
)
def test_each_app_service_s_settings_load(service, kafka, redis_user, secrets_dir):
    env = {
        **environment(load(BASE)["services"][service]),
        **environment(load(SECURE)["services"][service]),
    }
    env = {k: v.replace(MOUNT, str(secrets_dir)) for k, v in env.items()}
    env["ATP_NETWORK_FILE"] = str(DEMO_NETWORK)
    settings = load_settings(env)
    assert settings.redis_url.startswith("rediss://")
    assert settings.kafka_security_protocol == kafka
    assert settings.redis_username == redis_user
    if redis_user:
        password = (secrets_dir / f"redis-{redis_user}.password").read_text().strip()
        assert settings.redis_password.get_secret_value() == password
        assert settings.redis_ssl_certfile is not None  # mutual TLS


def test_secure_redis_keeps_the_base_settings_and_adds_tls_and_users():
    base = load(BASE)["services"]["redis"]["command"]
    secure = [str(arg) for arg in load(SECURE)["services"]["redis"]["command"]]
    assert secure[: len(base)] == [str(arg) for arg in base]
    pairs = dict(zip(secure[len(base) :: 2], secure[len(base) + 1 :: 2], strict=True))
    assert pairs["--port"] == "0"
    assert pairs["--tls-auth-clients"] == "yes"
    assert "--aclfile" in pairs


def test_kafka_variables_are_ones_the_image_passes_on():
    env = environment(load(SECURE)["services"]["kafka"])
    # The image's scripts leave out a KAFKA_* variable whose value holds "=" (KAFKA_OPTS goes to
    # the JVM, not to server.properties), and an advertised "...SSL://" listener makes them
    # demand JKS stores.
    assert [k for k, v in env.items() if "=" in v and k != "KAFKA_OPTS"] == []
    assert "SSL://" not in env["KAFKA_ADVERTISED_LISTENERS"]


def test_no_password_is_written_in_the_compose_files():
    for path in (BASE, SECURE):
        for name, service in load(path)["services"].items():
            for key, value in environment(service).items():
                if SECRET_NAME.search(key) and not key.endswith("FILE"):
                    # only from the operator's environment (base: Grafana's admin password)
                    assert value.startswith("${"), f"{path.name}: {name}: {key}"
    text = SECURE.read_text(encoding="utf-8")
    assert not re.search(r"password\s*=|user_\w+\s*=|\s>\S", text, re.IGNORECASE)
