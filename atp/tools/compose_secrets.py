"""The files `docker-compose.secure.yml` mounts as secrets, made by `atp compose-secrets`:
certificates (atp/tools/pki.py) whose server certificate also names the compose hosts `kafka`
and `redis`, a password per Kafka and Redis user, the Redis ACL file and the broker's JAAS file
that hold those passwords, and the client settings of the broker's health check."""

from __future__ import annotations

import secrets
import tempfile
from pathlib import Path

from atp.core.errors import ATPError
from atp.tools.pki import make_pki
from atp.tools.redis_users import REDIS_USERS, acl_with_passwords

# Where docker-compose.secure.yml expects them, from the repository (its `secrets:` section).
DIRECTORY = Path(".atp/compose")
# Where compose mounts a secret in a container: /run/secrets/<name>. Each file below is the
# secret of the same name in docker-compose.secure.yml.
MOUNT = "/run/secrets"
HOSTS = ("kafka", "redis")  # the compose services the clients connect to
KAFKA_USER = "atp"
# A compose stack outlives `atp up`'s two days; run the command again (with --replace) to renew.
DAYS = 365
_PLAIN = "org.apache.kafka.common.security.plain.PlainLoginModule required"


class ComposeSecretsError(ATPError):
    code = "compose_secrets"


def make_compose_secrets(d: Path, *, days: int = DAYS, replace: bool = False) -> list[Path]:
    """Write the files into `d` (made 0700) and return their paths. The files are 0644 inside it:
    compose bind-mounts a file secret with its owner and mode (the uid/gid/mode of a secret are
    for Swarm only), and Kafka, Redis and the app each run as their own user."""
    if d.is_dir() and any(d.iterdir()) and not replace:
        raise ComposeSecretsError(
            f"{d} already holds secrets; pass --replace to make new ones (new passwords and "
            "certificates: recreate the containers after, `up -d --force-recreate`)"
        )
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    d.chmod(0o700)
    with tempfile.TemporaryDirectory() as tmp:
        pki = make_pki(Path(tmp), days=days, server_names=HOSTS)
        pem = {
            p.name: p.read_text(encoding="ascii")
            for p in (pki.ca, pki.server_cert, pki.server_key, pki.client_cert, pki.client_key)
        }
    kafka_password = secrets.token_urlsafe(24)
    redis_passwords = {role: secrets.token_urlsafe(24) for role in REDIS_USERS}
    files = {
        **pem,
        # Kafka's PEM key stores: the key (unencrypted PKCS#8, which Kafka reads without
        # ssl.key.password since 3.3) followed by its certificate, in one file.
        "kafka-server.pem": pem["server.key"] + pem["server.crt"],
        "kafka-client.pem": pem["client.key"] + pem["client.crt"],
        f"kafka-{KAFKA_USER}.password": kafka_password + "\n",
        "kafka-server-jaas.conf": (
            f'KafkaServer {{\n    {_PLAIN}\n    user_{KAFKA_USER}="{kafka_password}";\n}};\n'
        ),
        "kafka-client.properties": _kafka_client_properties(kafka_password),
        **{f"redis-{REDIS_USERS[r]}.password": p + "\n" for r, p in redis_passwords.items()},
        "redis-users.acl": acl_with_passwords(redis_passwords),
    }
    paths = []
    for name, text in files.items():
        path = d / name
        path.write_text(text, encoding="utf-8")
        path.chmod(0o644)
        paths.append(path)
    return paths


def _kafka_client_properties(password: str) -> str:
    """For the broker's health check: kafka-broker-api-versions.sh --command-config."""
    return (
        "security.protocol=SASL_SSL\nsasl.mechanism=PLAIN\n"
        f'sasl.jaas.config={_PLAIN} username="{KAFKA_USER}" password="{password}";\n'
        f"ssl.truststore.type=PEM\nssl.truststore.location={MOUNT}/ca.crt\n"
        f"ssl.keystore.type=PEM\nssl.keystore.location={MOUNT}/kafka-client.pem\n"
    )
