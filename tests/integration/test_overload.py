"""Offered load well past what one API process can answer (api/admission.py), on real
processes: health checks keep answering, admitted requests keep a bounded latency, the rest
are refused quickly with 503 overloaded and Retry-After, and it recovers by itself."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import urllib.request

import orjson
import pytest

from tests.conftest import ROOT
from tests.integration.conftest import wait_http_ok

pytestmark = pytest.mark.integration

SECONDS = 8.0


def run_load(url: str, mode: str, n: int, seconds: float, out) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.integration.load", url, mode, str(n), str(seconds), str(out)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def probe(url: str, until: threading.Event, seen: list[tuple[int, float]]) -> None:
    while not until.is_set():
        started = time.monotonic()
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                seen.append((r.status, time.monotonic() - started))
        except OSError as exc:
            seen.append((getattr(exc, "code", 0), time.monotonic() - started))
        time.sleep(0.2)


def test_past_its_capacity_the_api_refuses_quickly_keeps_its_health_and_recovers(
    settings, processes, tmp_path
):
    processes.settings = settings
    api = processes.start("api")
    base = f"http://127.0.0.1:{settings.api_port}"
    wait_http_ok(f"{base}/readyz", api)
    url = f"{base}/v1/availability/SKU-LOAD"
    capacity = tmp_path / "capacity.json"
    assert run_load(url, "closed", 32, 3.0, capacity).wait(60) == 0
    rate = len(orjson.loads(capacity.read_bytes())) / 3.0
    out = tmp_path / "answers.json"
    load = run_load(url, "open", int(2 * rate), SECONDS, out)
    health: list[tuple[int, float]] = []
    ready: list[tuple[int, float]] = []
    done = threading.Event()
    probes = [
        threading.Thread(target=probe, args=(f"{base}/healthz", done, health)),
        threading.Thread(target=probe, args=(f"{base}/readyz", done, ready)),
    ]
    try:
        for t in probes:
            t.start()
        assert load.wait(SECONDS + 60) == 0
    finally:
        done.set()
        for t in probes:
            t.join()
        if load.poll() is None:
            load.kill()
            load.wait()
    answers = orjson.loads(out.read_bytes())
    # Timed from when the generator sent each request: it shares two cores with the API and
    # Redis, and when the API is fast it falls behind its schedule (its lag reached ~0.3 s
    # by the end of the burst at a capacity of 1,581/s, and the refusals' time from when
    # they were due reached 3 s at 2,178/s in one CI run); that wait is the generator's.
    # It must still have offered the overload: well past the capacity it measured.
    sent = [a["lag"] for a in answers]
    offered = len(answers) / (SECONDS + max(sent))
    assert offered > 1.3 * rate, (offered, rate)
    admitted = [a["s"] - a["lag"] for a in answers if a["status"] == 200]
    refused = [{**a, "s": a["s"] - a["lag"]} for a in answers if a["status"] == 503]
    assert {a["status"] for a in answers} == {200, 503}, answers[:5]  # nothing failed
    # Admitted: a bounded wait (measured p50 0.6 s, p99 1.6-1.9 s; without admission control
    # p50 3.5 s and p99 7.3 s of this 8 s burst, growing with its length); refused quickly
    # (p50 0.25-0.4 s), with a problem a client can act on.
    assert quantile(admitted, 0.99) < SECONDS / 2
    assert quantile([a["s"] for a in refused], 0.5) < 1.0
    assert {(a["code"], a["retry_after"]) for a in refused} == {("overloaded", "1")}
    assert {status for status, _ in health + ready} == {200}  # never held back
    assert len(health) >= SECONDS / 2 and len(ready) >= SECONDS / 2
    # After the burst: answered again, and the refusals are counted by reason.
    with urllib.request.urlopen(url, timeout=5) as r:
        assert r.status == 200
    with urllib.request.urlopen(f"{base}/metrics", timeout=5) as r:
        text = r.read().decode()
    counted = sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("atp_api_overload_refusals_total{")
    )
    assert counted == len(refused)
