"""`atp compose-secrets`: the files docker-compose.secure.yml mounts, with passwords that agree."""

from __future__ import annotations

import inspect
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from atp.tools.cli import app, compose_secrets_cmd
from atp.tools.compose_secrets import DIRECTORY, ComposeSecretsError, make_compose_secrets


@pytest.fixture(scope="module")
def secrets_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("compose") / "secrets"
    make_compose_secrets(d)
    return d


@pytest.fixture(scope="module")
def made(secrets_dir: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in secrets_dir.iterdir()}


def test_the_server_certificate_names_the_compose_hosts(secrets_dir):
    sans = subprocess.run(
        [
            "openssl",
            "x509",
            "-in",
            str(secrets_dir / "server.crt"),
            "-noout",
            "-ext",
            "subjectAltName",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert {"DNS:kafka", "DNS:redis", "DNS:localhost"} <= set(sans.replace(",", " ").split())


def test_the_directory_is_private_and_its_files_readable_by_the_containers(secrets_dir):
    # compose mounts file secrets with their host mode; the containers run as other users
    assert secrets_dir.stat().st_mode & 0o777 == 0o700
    assert {p.stat().st_mode & 0o777 for p in secrets_dir.iterdir()} == {0o644}


def test_kafka_key_stores_hold_an_unencrypted_pkcs8_key_then_the_certificate(made):
    for name in ("kafka-server.pem", "kafka-client.pem"):
        text = made[name]
        assert text.startswith("-----BEGIN PRIVATE KEY-----")  # Kafka reads PKCS#8 only
        assert "-----BEGIN CERTIFICATE-----" in text


def test_each_password_is_where_its_server_and_its_client_read_it(made):
    kafka = made["kafka-atp.password"].strip()
    assert f'user_atp="{kafka}";' in made["kafka-server-jaas.conf"]
    assert f'username="atp" password="{kafka}";' in made["kafka-client.properties"]
    acl = made["redis-users.acl"]
    for user in ("atp-worker", "atp-api"):
        assert f"user {user} on >{made[f'redis-{user}.password'].strip()} " in acl
    assert "CHANGE-ME" not in acl
    assert acl.endswith("user default off\n")
    passwords = [made[n].strip() for n in made if n.endswith(".password")]
    assert len(set(passwords)) == len(passwords) == 3


def test_a_second_run_keeps_the_first_unless_told_to_replace(tmp_path):
    make_compose_secrets(tmp_path)
    before = (tmp_path / "kafka-atp.password").read_text()
    with pytest.raises(ComposeSecretsError, match="--replace"):
        make_compose_secrets(tmp_path)
    make_compose_secrets(tmp_path, replace=True)
    assert (tmp_path / "kafka-atp.password").read_text() != before


def test_the_command_writes_the_files_and_says_how_to_start(tmp_path: Path):
    result = CliRunner().invoke(app, ["compose-secrets", str(tmp_path / "s")])
    assert result.exit_code == 0, result.output
    assert "docker-compose.secure.yml up" in result.output
    assert (tmp_path / "s" / "redis-users.acl").is_file()
    again = CliRunner().invoke(app, ["compose-secrets", str(tmp_path / "s")])
    assert again.exit_code == 1


def test_the_command_writes_where_the_compose_file_looks_by_default():
    default = inspect.signature(compose_secrets_cmd).parameters["directory"].default
    assert default == DIRECTORY
