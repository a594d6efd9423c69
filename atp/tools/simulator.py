"""A traffic simulator that plays the whole network, with the disorder real feeds have.

Warehouses send movements (receipts, shipments, adjustments, cycle counts, ASNs), stores send
point-of-sale transactions with several lines (sales, returns, receipts, pickups, counts), and
3PLs send periodic absolute reports for some SKUs. Delivery is disordered on purpose: repeats,
messages held back and sent late (out of order), and the occasional malformed message.

The simulator keeps the truth: the exact on-hand per (SKU, location) that its events imply.
Event times are strictly increasing (at least 1 ms apart) and counts report the simulator's
own stock at their time, so the truth is what the ledger must reach for any arrival order.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from atp.clock import now_ms
from atp.core.network import Network
from atp.kafka import topics
from atp.kafka.security import client_options
from atp.settings import Settings

Message = tuple[str, bytes, bytes]  # (source topic, key, value)


@dataclass
class SimConfig:
    rate: float = 50.0  # source messages per second
    duration_s: float = 0.0  # 0 = until stopped
    skus: int = 50
    locations: int = 0  # at most this many locations of each type; 0 = all
    seed: int | None = None
    duplicate_rate: float = 0.01
    late_rate: float = 0.02  # share of messages held back and sent out of order
    malformed_rate: float = 0.001
    report_every: int = 200  # a 3PL report every this many messages
    mix: tuple[float, float] = (0.55, 0.40)  # warehouse and store shares; 3PL reports aside
    run_id: str | None = None  # in every event id; None: the clock's time at the start, in hex


class NetworkSimulator:
    """Generates source messages and tracks the on-hand they imply.

    `clock` gives the time in epoch milliseconds (the wall clock when the simulator runs); with
    a seed and a fixed clock, two simulators produce the same messages.
    """

    def __init__(
        self, network: Network, config: SimConfig, clock: Callable[[], int] = now_ms
    ) -> None:
        self.config = config
        self.clock = clock
        self.run_id = config.run_id or f"{clock():x}"
        self.rng = random.Random(config.seed)
        by_type: dict[str, list[str]] = {"warehouse": [], "store": [], "3pl": []}
        for loc in network.locations.values():
            if not config.locations or len(by_type[loc.type]) < config.locations:
                by_type[loc.type].append(loc.id)
        if not by_type["warehouse"]:
            raise ValueError("the simulator needs at least one warehouse in the network")
        self.warehouses, self.stores, self.tpls = (
            by_type["warehouse"],
            by_type["store"],
            by_type["3pl"],
        )
        self.skus = [f"SKU-{i:06d}" for i in range(config.skus)]
        self.truth: dict[tuple[str, str], int] = {}
        self._tpl_stock: dict[tuple[str, str], int] = {}
        self._open_asns: list[tuple[str, str, str, int]] = []
        self._seq = 0
        self._last_ms = 0
        self._recent: list[Message] = []
        self._held: list[tuple[int, Message]] = []  # (release at message number, message)
        self.produced = 0

    # Time and ids ---------------------------------------------------------------------------

    def _tick(self) -> tuple[int, str]:
        self._seq += 1
        self._last_ms = max(self.clock(), self._last_ms + 1)
        return self._seq, _iso(self._last_ms)

    def _id(self, prefix: str, seq: int) -> str:
        return f"{prefix}-{self.run_id}-{seq:09d}"

    def _add(self, sku: str, loc: str, qty: int) -> None:
        self.truth[(sku, loc)] = self.truth.get((sku, loc), 0) + qty

    # Sources ----------------------------------------------------------------------------------

    def _warehouse(self) -> Message:
        rng = self.rng
        sku, loc = rng.choice(self.skus), rng.choice(self.warehouses)
        seq, at = self._tick()
        event_id = self._id("WMS", seq)
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
            eta = _utc(self.clock()) + timedelta(days=rng.randint(1, 10))
            body.update(kind="ASN", qty=qty, eta=eta.isoformat(timespec="seconds"))
            self._open_asns.append((event_id, sku, loc, qty))
        elif roll < 0.30:
            qty = rng.randint(1, 50)
            if self._open_asns and rng.random() < 0.5:
                asn_id, sku, loc, qty = self._open_asns.pop(rng.randrange(len(self._open_asns)))
                body.update(sku=sku, warehouse_id=loc, order_ref=asn_id)
            body.update(kind=rng.choice(["RECEIVED", "RECEIVED", "TRANSFER_IN"]), qty=qty)
            self._add(sku, loc, qty)
        elif roll < 0.34:
            delta = rng.randint(-3, 3) or 1
            body.update(kind="ADJUSTED", qty=delta)
            self._add(sku, loc, delta)
        else:
            qty = rng.randint(1, 3)
            kind = rng.choices(["SHIPPED", "DAMAGED", "TRANSFER_OUT"], [90, 3, 7])[0]
            if qty > on_hand:
                kind, qty = "RECEIVED", rng.randint(20, 60)
                self._add(sku, loc, qty)
            else:
                self._add(sku, loc, -qty)
            body.update(kind=kind, qty=qty)
        return topics.WMS, loc.encode(), orjson.dumps(body)

    def _store(self) -> Message:
        rng = self.rng
        store = rng.choice(self.stores)
        seq, at = self._tick()
        skus = rng.sample(self.skus, k=min(len(self.skus), rng.randint(1, 3)))
        unknown = [s for s in skus if (s, store) not in self.truth]
        kind = (
            "COUNT"
            if unknown or rng.random() < 0.03
            else rng.choices(["SALE", "RETURN", "RECEIPT", "PICKUP"], [75, 8, 12, 5])[0]
        )
        lines = []
        for sku in skus:
            on_hand = self.truth.get((sku, store), 0)
            if kind == "COUNT":
                qty = rng.randint(0, 30) if sku in unknown else max(0, on_hand - rng.randint(0, 1))
                self.truth[(sku, store)] = qty
            elif kind in ("SALE", "PICKUP"):
                qty = rng.randint(1, 2)
                self._add(sku, store, -qty)  # stores can sell what the system thinks is gone
            else:
                qty = rng.randint(1, 12) if kind == "RECEIPT" else 1
                self._add(sku, store, qty)
            lines.append({"sku": sku, "qty": qty})
        body = {
            "transaction_id": self._id(store, seq),
            "store_id": store,
            "type": kind,
            "occurred_at": at,
            "order_ref": f"R-{seq}" if kind == "PICKUP" else None,
            "lines": lines,
        }
        return topics.POS, store.encode(), orjson.dumps(body)

    def _tpl_report(self) -> Message:
        rng = self.rng
        facility = rng.choice(self.tpls)
        seq, at = self._tick()
        items = []
        for sku in rng.sample(self.skus, k=max(1, len(self.skus) // 3)):
            # The 3PL ships and receives without telling us; only its reports show the result.
            before = self._tpl_stock.get((sku, facility), rng.randint(50, 300))
            now = max(0, before + rng.randint(-15, 10))
            self._tpl_stock[(sku, facility)] = now
            self.truth[(sku, facility)] = now
            items.append({"sku": sku, "on_hand": now})
        body = {
            "report_id": self._id(facility, seq),
            "provider": facility.split("-")[1].lower(),
            "facility_id": facility,
            "as_of": at,
            "items": items,
        }
        return topics.TPL, facility.encode(), orjson.dumps(body)

    # Delivery with disorder ----------------------------------------------------------------

    def messages(self) -> list[Message]:
        """What to send now: usually one message; held-back ones when their time comes."""
        rng, cfg = self.rng, self.config
        self.produced += 1
        out = [m for due, m in self._held if due <= self.produced]
        self._held = [(due, m) for due, m in self._held if due > self.produced]
        if self._recent and rng.random() < cfg.duplicate_rate:
            out.append(rng.choice(self._recent))
            return out
        if rng.random() < cfg.malformed_rate:
            bad = rng.choice([b"{not json", b"[]", b'{"event_id": 1}', b"\xff\xfe"])
            out.append((rng.choice(tuple(topics.SOURCES)), b"garbage", bad))
            return out
        if self.tpls and self.produced % cfg.report_every == 0:
            msg = self._tpl_report()
        elif not self.stores or rng.random() < cfg.mix[0] / (cfg.mix[0] + cfg.mix[1]):
            msg = self._warehouse()
        else:
            msg = self._store()
        self._recent.append(msg)
        if len(self._recent) > 2000:
            del self._recent[:500]
        if rng.random() < cfg.late_rate:
            self._held.append((self.produced + rng.randint(10, 500), msg))
        else:
            out.append(msg)
        return out

    def drain(self) -> list[Message]:
        """Everything still held back, at the end of a run."""
        held, self._held = [m for _, m in self._held], []
        return held

    def truth_json(self) -> bytes:
        return orjson.dumps({f"{s}|{loc}": q for (s, loc), q in sorted(self.truth.items())})


def _utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def _iso(ms: int) -> str:
    at = _utc(ms).isoformat(timespec="milliseconds")
    return at.replace("+00:00", "Z")


def paced(duration_s: float, tick_s: float) -> Iterator[float]:
    """Yields how long to sleep before each tick; ends after `duration_s` (0: never)."""
    started = time.monotonic()
    tick = 0
    while duration_s <= 0 or time.monotonic() - started < duration_s:
        tick += 1
        yield max(0.0, started + tick * tick_s - time.monotonic())


async def run(
    settings: Settings, network: Network, config: SimConfig, truth_path: str | None = None
) -> int:
    """Produce at `config.rate` source messages per second; returns the number of sends.

    Every send is confirmed by the broker before the next tick, so a failed delivery stops the
    run with an error instead of leaving a truth that includes messages nobody received. The
    truth file is written only after a run that delivered everything.
    """
    await topics.ensure_topics(settings)  # the right partition count, no auto-create race
    sim = NetworkSimulator(network, config)
    producer = AIOKafkaProducer(**client_options(settings), linger_ms=5, acks=1)
    await producer.start()
    sent = 0
    tick_s = 0.05
    carry = 0.0

    async def send(batch: list[Message]) -> None:
        nonlocal sent
        pending = [
            await producer.send(settings.topic(topic), value=value, key=key)
            for topic, key, value in batch
        ]
        await asyncio.gather(*pending)
        sent += len(pending)

    try:
        try:
            for pause in paced(config.duration_s, tick_s):
                await asyncio.sleep(pause)
                carry += config.rate * tick_s
                n, carry = int(carry), carry - int(carry)
                await send([m for _ in range(n) for m in sim.messages()])
        except asyncio.CancelledError:
            pass  # Ctrl-C: still deliver what was held back, and write the truth
        await send(sim.drain())
    finally:
        await producer.stop()
    if truth_path:
        with open(truth_path, "wb") as fh:
            fh.write(sim.truth_json())
    return sent
