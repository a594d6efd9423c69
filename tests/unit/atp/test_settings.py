from __future__ import annotations

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
