"""All three sources, disordered, against the real broker, Redis and worker: zero differences."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
import redis
import yaml

from atp.kafka import topics
from atp.network_file import load_network
from atp.store import keys
from tests.conftest import DEMO_NETWORK, ROOT
from tests.integration.wms_scenario import produce, stage_on_hand

pytestmark = pytest.mark.integration


def simulate(settings, truth: Path, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, **settings.to_env()}
    with (truth.parent / "simulator.log").open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "atp", "simulate", "--truth", str(truth), *args],
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def served(redis_url: str, keys_wanted: list[tuple[str, str]]) -> dict[tuple[str, str], int]:
    client = redis.Redis.from_url(redis_url)
    try:
        pipe = client.pipeline(transaction=False)
        for sku, loc in keys_wanted:
            pipe.hget(keys.stock(sku), keys.ON_HAND_PREFIX + loc)
        values = pipe.execute()
    finally:
        client.close()
    return {k: int(v) if v is not None else None for k, v in zip(keys_wanted, values, strict=True)}


def differences(settings, truth_path: Path, timeout_s: float = 120.0) -> dict:
    """Wait for Redis to reach the truth; return what still differs (empty when it matches).

    When something differs, the answer also says at which stage it first went wrong, folding
    what the source topics and the movements topic hold with the pure ledger code.
    """
    truth = {tuple(k.split("|")): v for k, v in orjson.loads(truth_path.read_bytes()).items()}
    assert len(truth) > 50
    deadline = time.monotonic() + timeout_s
    while True:
        seen = served(settings.redis_url, list(truth))
        diff = {k: (seen[k], v) for k, v in truth.items() if seen[k] != v}
        if not diff or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    if diff:
        stages = asyncio.run(stage_on_hand(settings, load_network(settings.network_file)))
        for key in diff:
            diff[key] += tuple(stage.get(key) for stage in stages)
        diff["columns"] = ("redis", "truth", "from source topics", "from stock.movements")
    return diff


def test_disordered_traffic_from_all_sources_matches_the_truth(settings, processes, tmp_path):
    processes.start("worker")
    truth = tmp_path / "truth.json"
    sim = simulate(
        settings,
        truth,
        "--rate",
        "400",
        "--duration",
        "8",
        "--skus",
        "30",
        "--seed",
        "11",
        "--duplicate-rate",
        "0.05",
        "--late-rate",
        "0.1",
        "--malformed-rate",
        "0.01",
    )
    assert sim.wait(60) == 0, (tmp_path / "simulator.log").read_text()
    assert differences(settings, truth) == {}


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_a_worker_restarted_mid_stream_still_matches_the_truth(settings, processes, tmp_path, sig):
    worker = processes.start("worker", name="worker-1")
    truth = tmp_path / "truth.json"
    sim = simulate(
        settings,
        truth,
        "--rate",
        "300",
        "--duration",
        "14",
        "--skus",
        "30",
        "--seed",
        str(int(sig)),
        "--duplicate-rate",
        "0.03",
        "--late-rate",
        "0.05",
    )
    try:
        # Let the worker join and apply for a while, then stop it in the middle of the stream.
        time.sleep(8)
        worker.stop(grace_s=15, sig=sig)
        time.sleep(1)
        processes.start("worker", name="worker-2")
        assert sim.wait(60) == 0
    finally:
        if sim.poll() is None:
            sim.kill()
            sim.wait()
    assert differences(settings, truth) == {}


def test_rejected_input_is_listed_and_replayed_once_the_cause_is_fixed(
    settings, processes, tmp_path
):
    sale = {
        "transaction_id": "NEW-STORE-1",
        "store_id": "S-1001",
        "type": "COUNT",
        "occurred_at": "2026-11-26T15:20:00-05:00",
        "order_ref": None,
        "lines": [{"sku": "REPLAY-SKU-1", "qty": 7}, {"sku": "REPLAY-SKU-2", "qty": 3}],
    }
    worker = processes.start("worker", name="worker-1")
    asyncio.run(
        produce(
            settings.kafka_bootstrap, settings.topic(topics.POS), [(b"S-1001", orjson.dumps(sale))]
        )
    )
    env = {**os.environ, **settings.to_env()}

    def atp(*args: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "atp", *args],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    deadline = time.monotonic() + 60
    listed: list[dict] = []
    while not listed and time.monotonic() < deadline:
        listed = [
            orjson.loads(line)
            for line in atp(
                "rejected", "list", "--json", "--reason", "unknown_location"
            ).splitlines()
        ]
        time.sleep(0.5)
    assert len(listed) == 1
    assert listed[0]["source_topic"] == settings.topic(topics.POS)
    assert orjson.loads(listed[0]["value"]) == sale
    assert atp("rejected", "list", "--reason", "schema").strip() == ""

    # Fix the cause: the store opens in the network file; restart the worker with it.
    network = yaml.safe_load(DEMO_NETWORK.read_text())
    network["locations"].append(
        {
            "id": "S-1001",
            "type": "store",
            "name": "New store",
            "postal_code": "10001",
            "timezone": "America/New_York",
            "capabilities": ["pickup", "ship"],
        }
    )
    fixed = tmp_path / "network.yaml"
    fixed.write_text(yaml.safe_dump(network))
    worker.stop()
    processes.settings = settings.model_copy(update={"network_file": fixed})
    env["ATP_NETWORK_FILE"] = str(fixed)
    processes.start("worker", name="worker-2")

    assert "replayed 1 messages" in atp("rejected", "replay", "--reason", "unknown_location")
    deadline = time.monotonic() + 60
    want = {("REPLAY-SKU-1", "S-1001"): 7, ("REPLAY-SKU-2", "S-1001"): 3}
    while served(settings.redis_url, list(want)) != want and time.monotonic() < deadline:
        time.sleep(0.5)
    assert served(settings.redis_url, list(want)) == want
