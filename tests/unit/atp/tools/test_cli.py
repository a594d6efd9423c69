"""The command line refuses bad settings at start, naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"ATP_API_PORT": "eighty"}, "ATP_API_PORT"),
        ({"ATP_KAFKA_BOOTSTRAP": "nohostport"}, "ATP_KAFKA_BOOTSTRAP"),
        ({"ATP_NETWORK_FILE": "/nonexistent/network.yaml"}, "/nonexistent/network.yaml"),
    ],
)
def test_bad_settings_fail_at_start(env, needle):
    result = subprocess.run(
        [sys.executable, "-m", "atp", "worker"],
        env={**os.environ, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert needle in result.stderr


def test_rebuild_without_redis_says_so_and_fails():
    from atp.tools.embedded import free_port

    env = {**os.environ, "ATP_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    result = subprocess.run(
        [sys.executable, "-m", "atp", "rebuild"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "atp rebuild: Redis at redis://127.0.0.1:" in result.stderr
    assert "is unavailable" in result.stderr
