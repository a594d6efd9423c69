"""`atp up` starts the whole stack, answers /readyz, and leaves nothing behind after Ctrl-C."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request

import orjson
import pytest

from atp.tools.embedded import free_port
from tests.conftest import ROOT

pytestmark = pytest.mark.integration


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_up_serves_and_stops_everything_on_sigint(tmp_path):
    api_port = free_port()
    env = {
        **os.environ,
        "ATP_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}",
        "ATP_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
        "ATP_API_PORT": str(api_port),
        "ATP_WORKER_WEB_PORT": str(free_port()),
        "ATP_DATA_DIR": str(tmp_path / "data"),
        "ATP_NETWORK_FILE": str(ROOT / "config" / "network.yaml"),
        "ATP_SESSION_TIMEOUT_S": "6",
    }
    out = tmp_path / "up.out"
    with out.open("wb") as fh:
        up = subprocess.Popen(
            [sys.executable, "-m", "atp", "up", "--rate", "20"],
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=tmp_path,
        )
    pids: dict[str, int] = {}
    try:
        deadline = time.monotonic() + 90
        while not pids and time.monotonic() < deadline and up.poll() is None:
            found = re.search(r"processes\s+(.+)", out.read_text())
            if found:
                pids = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", found.group(1))}
            time.sleep(0.2)
        assert set(pids) == {"broker", "redis", "worker", "api", "simulator"}, out.read_text()
        text = out.read_text()
        assert f"http://127.0.0.1:{api_port}/docs" in text and "Ctrl-C" in text

        with urllib.request.urlopen(f"http://127.0.0.1:{api_port}/readyz", timeout=5) as r:
            assert r.status == 200
        # The simulator's traffic reaches the API through broker, worker and Redis.
        seen = 0
        while not seen and time.monotonic() < deadline:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{api_port}/v1/availability/SKU-000001", timeout=5
            ) as r:
                seen = sum(loc["on_hand"] for loc in orjson.loads(r.read())["locations"])
            time.sleep(0.5)
        assert seen > 0

        # A child that dies is restarted with backoff, and the restart is logged.
        os.kill(pids["api"], signal.SIGKILL)
        restarted = False
        while not restarted and time.monotonic() < deadline + 60:
            time.sleep(0.5)
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"http://127.0.0.1:{api_port}/readyz", timeout=2) as r,
            ):
                restarted = r.status == 200 and "restarting in" in out.read_text()
        assert restarted, out.read_text()
        new_api = re.findall(r"started api \(pid (\d+)\)", out.read_text())[-1]
        pids["api-restarted"] = int(new_api)

        up.send_signal(signal.SIGINT)
        assert up.wait(60) == 0
        for name, pid in pids.items():
            assert gone(pid), f"{name} (pid {pid}) is still running"
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
        for pid in pids.values():  # only what this test's `atp up` started, by PID
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
