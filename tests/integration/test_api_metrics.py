"""The API's /metrics: request latency by route template, lookups, reservations per outcome,
Redis call latency; and the totals of several API worker processes."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from tests.integration.conftest import RESERVE_TOKEN, wait_http_ok
from tests.integration.test_reservations import seed

pytestmark = pytest.mark.integration


def value(text: str, name: str, labels: str = "") -> float:
    pattern = re.escape(name) + (r"\{" + labels + r"\}" if labels else "") + r" ([0-9.e+-]+)"
    found = re.search(pattern, text)
    return float(found.group(1)) if found else 0.0


def test_metrics_count_what_happened(settings, demo_network):
    sku = f"M-{uuid.uuid4().hex[:8]}"
    seed(settings.redis_url, sku, {"WH-NJ": 1})
    auth = {"Authorization": f"Bearer {RESERVE_TOKEN}"}
    with TestClient(create_app(settings, demo_network)) as c:
        c.get(f"/v1/availability/{sku}")
        c.post("/v1/availability/query", json={"skus": [sku, "OTHER"]})
        c.get("/v1/availability/bad%01")
        line = {"sku": sku, "quantity": 1, "location_id": "WH-NJ"}
        c.post(
            "/v1/reservations", json={"reservation_id": f"m1-{sku}", "lines": [line]}, headers=auth
        )
        c.post(
            "/v1/reservations", json={"reservation_id": f"m2-{sku}", "lines": [line]}, headers=auth
        )
        text = c.get("/metrics").text
    assert value(text, "atp_availability_lookups_total", 'kind="single"') == 1
    assert value(text, "atp_availability_lookups_total", 'kind="batch"') == 2
    assert value(text, "atp_reservations_total", 'outcome="held"') == 1
    assert value(text, "atp_reservations_total", 'outcome="short"') == 1
    route = 'method="GET",route="/v1/availability/{sku}",status="200"'
    assert value(text, "atp_api_request_duration_seconds_count", route) == 1
    bad = 'method="GET",route="/v1/availability/{sku}",status="422"'
    assert value(text, "atp_api_request_duration_seconds_count", bad) == 1


def test_redis_calls_are_timed(settings, demo_network):
    with TestClient(create_app(settings, demo_network)) as c:
        c.get("/v1/availability/ANY-SKU")  # one script call
        c.get("/v1/availability/ANY-SKU/explain")  # one pipeline: the counts and the ledger
        text = c.get("/metrics").text
    assert value(text, "atp_api_redis_seconds_count", 'call="command"') >= 1
    assert value(text, "atp_api_redis_seconds_count", 'call="pipeline"') >= 1


def children(pid: int) -> set[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return {int(p) for p in path.read_text().split()} if path.exists() else set()


def is_worker(pid: int) -> bool:
    """A uvicorn worker (multiprocessing's spawn_main), not its resource tracker."""
    with contextlib.suppress(OSError):
        return b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
    return False


def alive(pid: int) -> bool:
    """Running (a zombie waiting for whoever inherited it to reap it is not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_several_api_processes_export_the_totals_of_all(settings, processes):
    """ATP_API_WORKERS=2: requests spread over both uvicorn workers, and every scrape, whichever
    worker answers it, counts all of them (prometheus_client multiprocess mode)."""
    processes.settings = settings.model_copy(update={"api_workers": 2})
    api = processes.start("api")
    base = f"http://127.0.0.1:{settings.api_port}"
    metrics_dir = settings.data_dir / "api-metrics"
    started: set[int] = set()
    try:
        wait_http_ok(f"{base}/readyz", api)

        def get(path: str) -> str:
            with urllib.request.urlopen(f"{base}{path}", timeout=5) as r:  # a new connection
                return str(r.read().decode())

        def served_by() -> set[int]:
            """Worker processes that timed a request (each writes its own histogram file)."""
            return {int(p.stem.rsplit("_", 1)[1]) for p in metrics_dir.glob("histogram_*.db")}

        sent = 0
        with ThreadPoolExecutor(8) as pool:
            for _ in range(100):  # until both workers have served some (usually the first round)
                list(pool.map(get, ["/healthz"] * 16))
                sent += 16
                if len(served_by()) == 2:
                    break
        started = children(api.pid)
        workers = {pid for pid in started if is_worker(pid)}
        assert len(workers) == 2, f"uvicorn runs {started}"
        assert served_by() == workers

        route = 'method="GET",route="/healthz",status="200"'
        # A worker times a request once its response is sent, so the client may read the answer
        # a moment before the count is written: wait (bounded) for the last one to land.
        deadline = time.monotonic() + 5
        while value(get("/metrics"), "atp_api_request_duration_seconds_count", route) < sent:
            assert time.monotonic() < deadline, "a request's count never reached the metrics"
            time.sleep(0.05)
        for _ in range(6):  # scrapes land on either worker; each must give the total
            text = get("/metrics")
            assert value(text, "atp_api_request_duration_seconds_count", route) == sent
    finally:
        processes.stop_all()
        # uvicorn stops its workers before it exits. Its other child, multiprocessing's
        # resource tracker, exits by itself when it reads end-of-file from the parent it has
        # lost, a moment later: give it a bounded while (seen still alive right after the
        # parent exited on a loaded machine).
        workers_left = {pid for pid in started if is_worker(pid) and alive(pid)}
        deadline = time.monotonic() + 10
        while any(alive(pid) for pid in started) and time.monotonic() < deadline:
            time.sleep(0.05)
        left = {pid for pid in started if alive(pid)}
        for pid in left | workers_left:  # make sure, by PID
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    assert started and not workers_left, f"workers still running after the API: {workers_left}"
    assert not left, f"still running 10 s after the API stopped: {left}"
