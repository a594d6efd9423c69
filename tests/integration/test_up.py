"""`atp up` starts the whole stack, answers /readyz, and leaves nothing behind after Ctrl-C."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import orjson
import pytest
import redis
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from atp.tools.embedded import free_port
from tests.conftest import ROOT

pytestmark = pytest.mark.integration


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def up_env(tmp_path, api_port: int) -> dict[str, str]:
    return {
        **os.environ,
        "ATP_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}",
        "ATP_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
        "ATP_API_PORT": str(api_port),
        "ATP_WORKER_WEB_PORT": str(free_port()),
        "ATP_DATA_DIR": str(tmp_path / "data"),
        "ATP_NETWORK_FILE": str(ROOT / "config" / "network.yaml"),
        "ATP_SESSION_TIMEOUT_S": "6",
    }


def start_up(
    tmp_path, env: dict[str, str], rate: int, *options: str
) -> tuple[subprocess.Popen[bytes], Path]:
    out = tmp_path / "up.out"
    with out.open("wb") as fh:
        up = subprocess.Popen(
            [sys.executable, "-m", "atp", "up", "--rate", str(rate), *options],
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=tmp_path,
        )
    return up, out


STACK = {"broker", "redis", "worker", "api", "simulator"}


def banner_pids(
    up: subprocess.Popen[bytes], out: Path, deadline: float, names: set[str] = STACK
) -> dict[str, int]:
    """The PIDs `atp up` prints once the stack is ready."""
    pids: dict[str, int] = {}
    while not pids and time.monotonic() < deadline and up.poll() is None:
        found = re.search(r"processes\s+(.+)", out.read_text())
        if found:
            pids = {k: int(v) for k, v in re.findall(r"([\w-]+)=(\d+)", found.group(1))}
        time.sleep(0.2)
    assert set(pids) == names, out.read_text()
    return pids


def end(up: subprocess.Popen[bytes], pids: dict[str, int]) -> None:
    if up.poll() is None:
        up.kill()
        up.wait()
    for pid in pids.values():  # only what this test's `atp up` started, by PID
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def test_up_serves_and_stops_everything_on_sigint(tmp_path):
    api_port = free_port()
    up, out = start_up(tmp_path, up_env(tmp_path, api_port), rate=20)
    pids: dict[str, int] = {}
    try:
        deadline = time.monotonic() + 90
        pids = banner_pids(up, out, deadline)
        text = out.read_text()
        assert f"http://127.0.0.1:{api_port}/docs" in text and "Ctrl-C" in text

        with urllib.request.urlopen(f"http://127.0.0.1:{api_port}/readyz", timeout=5) as r:
            assert r.status == 200
        assert simulated_stock_is_served(api_port, deadline), out.read_text()[-4000:]

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
        try:
            code = up.wait(60)
        except subprocess.TimeoutExpired:
            code = None
        assert code == 0, f"atp up ended with {code}:\n{out.read_text()[-4000:]}"
        for name, pid in pids.items():
            assert gone(pid), f"{name} (pid {pid}) is still running"
    finally:
        end(up, pids)


def simulated_stock_is_served(api_port: int, deadline: float) -> bool:
    """The simulator's traffic reaches the API through broker, worker and Redis."""
    seen = 0
    while not seen and time.monotonic() < deadline:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{api_port}/v1/availability/SKU-000001", timeout=5
        ) as r:
            seen = sum(loc["on_hand"] for loc in orjson.loads(r.read())["locations"])
        time.sleep(0.5)
    return seen > 0


def test_up_secure_runs_the_stack_over_mutual_tls_as_acl_users(tmp_path):
    """`atp up --secure`: broker and Redis only behind TLS terminators that want the stack's
    client certificate, Redis with the documented ACL users and no default user; the pipeline
    and the API work, and no log or banner holds a password."""
    api_port = free_port()
    env = up_env(tmp_path, api_port)
    up, out = start_up(tmp_path, env, 20, "--secure")
    pids: dict[str, int] = {}
    try:
        deadline = time.monotonic() + 90
        pids = banner_pids(up, out, deadline, STACK | {"broker-tls", "redis-tls"})
        text = out.read_text()
        redis_port = int(env["ATP_REDIS_URL"].rsplit(":", 1)[1].split("/")[0])
        assert f"rediss://127.0.0.1:{redis_port}/0" in text and "atp-worker and atp-api" in text
        assert simulated_stock_is_served(api_port, deadline)

        secrets_dir = tmp_path / "data" / "up" / "secrets"
        passwords = [(secrets_dir / u).read_text().strip() for u in ("atp-worker", "atp-api")]
        assert oct((secrets_dir / "atp-worker").stat().st_mode & 0o777) == "0o600"
        pki = tmp_path / "data" / "up" / "pki"
        plain = redis.Redis(port=redis_port, socket_timeout=2)
        with pytest.raises(redis.ConnectionError):  # TLS only
            plain.ping()
        plain.close()
        no_cert = redis.Redis(
            port=redis_port, ssl=True, ssl_ca_certs=str(pki / "ca.crt"), socket_timeout=2
        )
        with pytest.raises(redis.ConnectionError):  # mutual TLS
            no_cert.ping()
        no_cert.close()
        as_user = {
            "port": redis_port,
            "ssl": True,
            "ssl_ca_certs": str(pki / "ca.crt"),
            "ssl_certfile": str(pki / "client.crt"),
            "ssl_keyfile": str(pki / "client.key"),
        }
        anonymous = redis.Redis(**as_user)
        with pytest.raises(redis.AuthenticationError):  # no default user
            anonymous.ping()
        anonymous.close()
        api_user = redis.Redis(**as_user, username="atp-api", password=passwords[1])
        assert api_user.ping()
        with pytest.raises(redis.exceptions.NoPermissionError):
            api_user.flushall()
        api_user.close()

        up.send_signal(signal.SIGINT)
        assert up.wait(60) == 0
        for name, pid in pids.items():
            assert wait_gone(pid, 10), f"{name} (pid {pid}) is still running"
    finally:
        end(up, pids)
    logs = out.read_text() + "".join(
        p.read_text(errors="replace") for p in (tmp_path / "data" / "up" / "logs").glob("*.log")
    )
    for password in passwords:
        assert password not in logs


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        line = next(line for line in fh if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def test_up_keeps_the_embedded_broker_within_its_memory_limit(tmp_path):
    """Tansu's memory storage never deletes a record: at 80 % of ATP_UP_BROKER_MAX_MB the
    simulator is stopped and the rest serves on; at the limit the stack stops, saying why."""
    api_port = free_port()
    env = {**up_env(tmp_path, api_port), "ATP_UP_BROKER_MAX_MB": "64"}
    up, out = start_up(tmp_path, env, rate=600)
    pids: dict[str, int] = {}
    try:
        deadline = time.monotonic() + 120
        pids = banner_pids(up, out, deadline)
        while "the simulator is stopped" not in out.read_text() and time.monotonic() < deadline:
            time.sleep(0.5)
        text = out.read_text()
        assert "the simulator is stopped" in text and "ATP_UP_BROKER_MAX_MB" in text, text
        held = float(re.findall(r"the embedded broker holds ([\d,]+) MB", text)[0].replace(",", ""))
        assert 0.8 * 64 <= held < 64
        assert wait_gone(pids["simulator"], 20)
        at_pause = rss_mb(pids["broker"])
        time.sleep(6)  # a guard round later: nothing restarted it, the rest serves on
        assert "started simulator" not in out.read_text().split("the simulator is stopped")[1]
        assert rss_mb(pids["broker"]) < at_pause + 1, "the broker still grows"
        with urllib.request.urlopen(f"http://127.0.0.1:{api_port}/readyz", timeout=5) as r:
            assert r.status == 200

        # Traffic from elsewhere fills the broker to its limit: the whole stack stops.
        asyncio.run(fill(env["ATP_KAFKA_BOOTSTRAP"], pids["broker"], 64))
        assert up.wait(30) == 1
        text = out.read_text()
        assert "stopping the stack before the machine runs out of memory" in text, text
        for name, pid in pids.items():
            assert wait_gone(pid, 10), f"{name} (pid {pid}) is still running"
    finally:
        end(up, pids)


def wait_gone(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not gone(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    return gone(pid)


async def fill(bootstrap: str, broker_pid: int, limit_mb: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        while not gone(broker_pid) and rss_mb(broker_pid) < limit_mb + 4:
            await asyncio.gather(*(producer.send("test.fill", b"x" * 10_000) for _ in range(100)))
    except (OSError, KafkaError, StopIteration):
        pass  # the broker was stopped under us
    finally:
        with contextlib.suppress(KafkaError):
            await producer.stop()
