"""A traffic simulator that plays warehouses: receipts, shipments, counts, ASNs, with disorder.

It keeps its own truth (the exact on-hand it meant) so tests can compare the service against it.
Event times are strictly increasing (at least 1 ms apart), so "at or before a count" never
depends on clock resolution.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from atp import topics
from atp.network import Network
from atp.settings import Settings


@dataclass
class SimConfig:
    rate: float = 200.0  # messages per second
    duration_s: float = 0.0  # 0 = until stopped
    skus: int = 50
    locations: int = 3
    seed: int | None = None
    duplicate_rate: float = 0.01
    malformed_rate: float = 0.001
    run_id: str = field(default_factory=lambda: f"{int(time.time()):x}")


class WarehouseSimulator:
    """Generates WMS messages (bytes) and tracks the on-hand they imply."""

    def __init__(self, network: Network, config: SimConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        warehouses = [loc.id for loc in network.locations.values() if loc.type == "warehouse"]
        if not warehouses:
            raise ValueError("the network has no warehouse for the simulator to play")
        self.locations = warehouses[: max(1, config.locations)]
        self.skus = [f"SKU-{i:06d}" for i in range(config.skus)]
        self.truth: dict[tuple[str, str], int] = {}
        self.open_asns: list[tuple[str, str, str, int]] = []
        self._seq = 0
        self._last_ms = 0
        self._sent: list[tuple[bytes, bytes]] = []

    def _next(self) -> tuple[str, str]:
        self._seq += 1
        now = time.time_ns() // 1_000_000
        self._last_ms = max(now, self._last_ms + 1)
        at = datetime.fromtimestamp(self._last_ms / 1000, UTC).isoformat(timespec="milliseconds")
        return f"SIM-{self.config.run_id}-{self._seq:09d}", at.replace("+00:00", "Z")

    def message(self) -> tuple[bytes, bytes]:
        """The next (key, value) to send to the WMS topic."""
        rng = self.rng
        if self._sent and rng.random() < self.config.duplicate_rate:
            return rng.choice(self._sent[-1000:])
        if rng.random() < self.config.malformed_rate:
            return b"garbage", rng.choice([b"{not json", b"[]", b'{"event_id": 1}', b"\xff\xfe"])
        sku, loc = rng.choice(self.skus), rng.choice(self.locations)
        event_id, at = self._next()
        body: dict[str, Any] = {
            "event_id": event_id,
            "warehouse_id": loc,
            "sku": sku,
            "occurred_at": at,
            "order_ref": None,
            "eta": None,
        }
        on_hand = self.truth.get((sku, loc))
        roll = rng.random()
        if on_hand is None or roll < 0.04:
            counted = (
                rng.randint(20, 200) if on_hand is None else max(0, on_hand - rng.randint(0, 2))
            )
            body.update(kind="CYCLE_COUNT", qty=counted)
            self.truth[(sku, loc)] = counted
        elif roll < 0.09:
            qty = rng.randint(10, 100)
            eta = datetime.now(UTC) + timedelta(days=rng.randint(1, 10))
            body.update(kind="ASN", qty=qty, eta=eta.isoformat(timespec="seconds"))
            self.open_asns.append((event_id, sku, loc, qty))
        elif roll < 0.30:
            if self.open_asns and rng.random() < 0.5:
                asn_id, sku, loc, qty = self.open_asns.pop(rng.randrange(len(self.open_asns)))
                body.update(sku=sku, warehouse_id=loc, order_ref=asn_id)
            else:
                qty = rng.randint(1, 50)
            body.update(kind="RECEIVED", qty=qty)
            self.truth[(sku, loc)] = self.truth.get((sku, loc), 0) + qty
        elif roll < 0.34:
            delta = rng.randint(-3, 3) or 1
            body.update(kind="ADJUSTED", qty=delta)
            self.truth[(sku, loc)] += delta
        else:
            qty = rng.randint(1, 3)
            kind = rng.choices(["SHIPPED", "DAMAGED", "TRANSFER_OUT"], [90, 3, 7])[0]
            if qty > on_hand:
                kind = "RECEIVED"
                qty = rng.randint(20, 60)
                self.truth[(sku, loc)] = on_hand + qty
            else:
                self.truth[(sku, loc)] = on_hand - qty
            body.update(kind=kind, qty=qty)
        pair = (loc.encode(), orjson.dumps(body))
        self._sent.append(pair)
        if len(self._sent) > 5000:
            del self._sent[:1000]
        return pair

    def truth_json(self) -> bytes:
        return orjson.dumps({f"{s}|{loc}": q for (s, loc), q in sorted(self.truth.items())})


def paced(rate: float, duration_s: float, tick_s: float = 0.05) -> Iterator[float]:
    """Yields how long to sleep before each tick's share of messages; ends after duration."""
    started = time.monotonic()
    tick = 0
    while duration_s <= 0 or time.monotonic() - started < duration_s:
        tick += 1
        yield max(0.0, started + tick * tick_s - time.monotonic())


async def run(
    settings: Settings, network: Network, config: SimConfig, truth_path: str | None = None
) -> int:
    """Produce to the WMS topic at `config.rate`; returns the number of messages sent."""
    sim = WarehouseSimulator(network, config)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, linger_ms=5, acks=1)
    await producer.start()
    topic = settings.topic(topics.WMS)
    sent = 0
    tick_s = 0.05
    carry = 0.0
    try:
        for pause in paced(config.rate, config.duration_s, tick_s):
            await asyncio.sleep(pause)
            carry += config.rate * tick_s
            n, carry = int(carry), carry - int(carry)
            for _ in range(n):
                key, value = sim.message()
                await producer.send(topic, value=value, key=key)
                sent += 1
        await producer.flush()
    finally:
        await producer.stop()
        if truth_path:
            with open(truth_path, "wb") as fh:
                fh.write(sim.truth_json())
    return sent
