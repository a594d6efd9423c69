from __future__ import annotations

import re

import pytest

from atp.settings import SettingsError, load_settings


def test_defaults_bind_to_loopback():
    s = load_settings({})
    assert s.kafka_bootstrap == "127.0.0.1:9092"
    assert s.redis_url == "redis://127.0.0.1:6379/0"
    assert (s.api_host, s.api_port) == ("127.0.0.1", 8000)
    assert s.worker_web_host == "127.0.0.1"


def test_environment_overrides():
    s = load_settings({"ATP_API_PORT": "9000", "ATP_TOPIC_PREFIX": "t1.", "OTHER": "x"})
    assert s.api_port == 9000 and s.topic("stock.wms") == "t1.stock.wms"


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"ATP_API_PORT": "eighty"}, "ATP_API_PORT"),
        ({"ATP_API_PORT": "70000"}, "ATP_API_PORT"),
        ({"ATP_KAFKA_BOOTSTRAP": "localhost"}, "ATP_KAFKA_BOOTSTRAP"),
        ({"ATP_REDIS_URL": "http://x"}, "ATP_REDIS_URL"),
        ({"ATP_SESSION_TIMEOUT_S": "1"}, "ATP_SESSION_TIMEOUT_S"),
    ],
)
def test_invalid_values_name_the_variable(env, name):
    with pytest.raises(SettingsError, match=name):
        load_settings(env)


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"ATP_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, "SASL_SSL needs ATP_KAFKA_SASL_USERNAME"),
        (
            {"ATP_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "ATP_KAFKA_SASL_USERNAME": "u"},
            "ATP_KAFKA_SASL_PASSWORD",
        ),
        (
            {"ATP_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "ATP_KAFKA_SASL_MECHANISM": "OAUTHBEARER"},
            "OAUTHBEARER needs ATP_KAFKA_SASL_OAUTH_TOKEN_FILE",
        ),
        ({"ATP_KAFKA_SSL_CAFILE": "/etc/hostname"}, "ATP_KAFKA_SECURITY_PROTOCOL is not SSL"),
        ({"ATP_REDIS_SSL_CAFILE": "/etc/hostname"}, "ATP_REDIS_URL is not rediss://"),
        (
            {"ATP_KAFKA_SECURITY_PROTOCOL": "SSL", "ATP_KAFKA_SSL_CAFILE": "/no/such/ca.pem"},
            "ATP_KAFKA_SSL_CAFILE: no file at /no/such/ca.pem",
        ),
        (
            {"ATP_KAFKA_SECURITY_PROTOCOL": "SSL", "ATP_KAFKA_SSL_CERTFILE": "/etc/hostname"},
            "ATP_KAFKA_SSL_CERTFILE and ATP_KAFKA_SSL_KEYFILE go together",
        ),
        ({"ATP_KAFKA_SECURITY_PROTOCOL": "TLS"}, "ATP_KAFKA_SECURITY_PROTOCOL"),
    ],
)
def test_connection_settings_that_cannot_work_are_named(env, needle):
    with pytest.raises(SettingsError, match=re.escape(needle)):
        load_settings(env)


def test_a_secret_comes_from_its_file_and_is_passed_on_as_the_file(tmp_path):
    secret = tmp_path / "password"
    secret.write_text("s3cret-pw\n")
    s = load_settings(
        {
            "ATP_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "ATP_KAFKA_SASL_USERNAME": "svc",
            "ATP_KAFKA_SASL_PASSWORD_FILE": str(secret),
            "ATP_REDIS_PASSWORD_FILE": str(secret),
        }
    )
    assert s.kafka_sasl_password.get_secret_value() == "s3cret-pw"  # the newline is not in it
    assert s.redis_password.get_secret_value() == "s3cret-pw"
    env = s.to_env()
    assert env["ATP_KAFKA_SASL_PASSWORD_FILE"] == str(secret)
    assert "ATP_KAFKA_SASL_PASSWORD" not in env
    assert "s3cret-pw" not in repr(s) and "s3cret-pw" not in str(env)
    again = load_settings(env)  # a child process reads the same
    assert again.kafka_sasl_password == s.kafka_sasl_password


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        (
            {"ATP_REDIS_PASSWORD": "a", "ATP_REDIS_PASSWORD_FILE": "/etc/hostname"},
            "set ATP_REDIS_PASSWORD or ATP_REDIS_PASSWORD_FILE, not both",
        ),
        (
            {"ATP_API_KEYS_FILE": "/no/such/keys"},
            "ATP_API_KEYS_FILE: cannot read /no/such/keys",
        ),
    ],
)
def test_secret_files_that_cannot_be_used_are_named(env, needle):
    with pytest.raises(SettingsError, match=re.escape(needle)):
        load_settings(env)


def test_an_invalid_secret_is_never_echoed():
    with pytest.raises(SettingsError) as caught:
        load_settings({"ATP_REDIS_PASSWORD": ["not", "text"]})  # type: ignore[dict-item]
    assert "not" not in caught.value.message.replace("ATP_REDIS_PASSWORD", "")
