"""The simulator's truth agrees with the ledger for the disordered traffic it delivers."""

from __future__ import annotations

import time
from collections import defaultdict

import orjson
import pytest

from atp.core.errors import InvalidMovement
from atp.core.ledger import LedgerState, Policy, fold
from atp.core.sources import ADAPTERS
from atp.kafka import topics
from atp.tools.simulator import NetworkSimulator, SimConfig


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_folding_what_the_simulator_delivers_gives_its_truth(demo_network, seed):
    config = SimConfig(
        seed=seed, skus=8, duplicate_rate=0.05, late_rate=0.1, malformed_rate=0.01, report_every=50
    )
    sim = NetworkSimulator(demo_network, config)
    delivered = [m for _ in range(3000) for m in sim.messages()] + sim.drain()

    movements = defaultdict(list)
    rejected = 0
    for topic, _, raw in delivered:
        try:
            for m in ADAPTERS[topics.SOURCES[topic]](raw, demo_network):
                movements[(m.sku, m.location_id)].append(m)
        except InvalidMovement:
            rejected += 1
    now = time.time_ns() // 1_000_000 + 60_000
    on_hand = {
        key: fold(LedgerState(), ms, now, Policy())[0].on_hand for key, ms in movements.items()
    }
    truth = {tuple(k.split("|")): v for k, v in orjson.loads(sim.truth_json()).items()}
    assert on_hand == truth
    assert rejected > 0  # the malformed ones
    assert {t for t, _, _ in delivered} == set(topics.SOURCES)  # all three sources played


def test_a_seeded_run_with_a_fixed_clock_produces_the_same_messages_twice(demo_network):
    def run() -> list[tuple[str, bytes, bytes]]:
        t = iter(range(1_790_000_000_000, 1_800_000_000_000, 7))
        sim = NetworkSimulator(demo_network, SimConfig(seed=11, skus=5), clock=lambda: next(t))
        return [m for _ in range(500) for m in sim.messages()] + sim.drain()

    assert run() == run()
