"""Reservations in Redis: a saga of single-slot Lua scripts, return codes mapped to errors.

A reservation's record, its shard's expiring index and outbox share one slot (`{r<n>}`); each
SKU's stock, holds and expiry share the SKU's slot. So no script touches two slots, and the same
code runs on one Redis and on Redis Cluster. A reservation is made in steps:

1. `reservation.lua begin` marks the id as taken (state `pending`, until the hold's expiry), so
   a repeated request is answered, not run twice.
2. `holds.lua take`, SKU by SKU in sorted order: each SKU's check-and-hold is atomic, so two
   customers never get the last unit. When a SKU is short, the rest are only checked (every
   shortfall is reported) and what was held is given back (`release`), then the mark dropped.
3. `reservation.lua commit`: pending -> held, indexed for the sweeper, and its event in the
   outbox, in one step.

Holds carry the reservation's expiry, like the pending mark, so if the process dies between
steps both vanish at the TTL (reads and the next `take` already discount overdue holds). The
price of the steps: while a request holds its first SKUs it may make a concurrent request for
the same SKUs fail although, once it gives them back, there would have been enough. Taking SKUs
in one order keeps that rare (with two SKUs it cannot change who wins; README "Redis Cluster").

State changes run the SKU side first, then the record: a release gives the holds back, then
closes the record, so a crash in between leaves a record that a retry or the sweeper closes, never
a confirmed hold that nothing would give back.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import orjson
import redis.asyncio as aioredis

from atp.core.errors import (
    IdempotencyConflict,
    InsufficientStock,
    InvalidTransition,
    ReservationExpired,
    ReservationInProgress,
    ReservationNotFound,
    StoreUnavailable,
)
from atp.core.network import Network
from atp.core.reservations import DONE, ReservationLine, ReservationRequest, candidates, view
from atp.store import keys
from atp.store.client import REDIS_DOWN
from atp.store.scripts import load_script


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def hold_locations(record: dict[str, str]) -> dict[str, list[str]]:
    """The locations a stored reservation holds stock at, per SKU (from its allocations)."""
    request = orjson.loads(record["request"])
    allocations = orjson.loads(record.get("allocations") or "[]")
    out: dict[str, list[str]] = defaultdict(list)
    for line, parts in zip(request["lines"], allocations, strict=False):
        for loc, _ in parts:
            if loc not in out[line["sku"]]:
                out[line["sku"]].append(loc)
    return dict(out)


class ReservationStore:
    def __init__(self, client: aioredis.Redis, replay_ttl_ms: int) -> None:
        self._redis = client
        self._replay_ttl_ms = replay_ttl_ms
        self._record_script = client.register_script(load_script("reservation.lua"))
        self._holds_script = client.register_script(load_script("holds.lua"))

    async def _rec(self, rid: str, *args: Any) -> list[str]:
        reply = await self._record_script(
            keys=keys.record_keys(rid), args=[args[0], rid, *args[1:]]
        )
        return [_text(x) for x in reply]

    async def _sku(self, sku: str, op: str, rid: str, now_ms: int, *args: Any) -> list[Any]:
        reply = await self._holds_script(keys=keys.sku_keys(sku), args=[op, rid, now_ms, *args])
        return [_text(reply[0]), *reply[1:]]

    async def reserve(
        self, req: ReservationRequest, network: Network, now_ms: int
    ) -> tuple[bool, dict[str, Any]]:
        """Hold every line or nothing. Returns (created, view); a replay returns (False, view)."""
        rid, fingerprint = req.reservation_id, req.fingerprint()
        per_sku = self.take_args(req, network)  # validates the lines before anything is written
        expires = now_ms + req.ttl_seconds * 1000
        try:
            begun = await self._rec(
                rid, "begin", now_ms, fingerprint, orjson.dumps(req.canonical()), expires
            )
            if begun[0] != "begun":
                if begun[1] != "1":
                    raise IdempotencyConflict(rid)
                if begun[0] == "pending":
                    raise ReservationInProgress(rid)
                return False, await self.get(rid, now_ms)
            held: dict[str, list[str]] = {}
            parts: dict[int, list[list[Any]]] = {}
            shortages: list[list[int]] = []
            for sku, args in per_sku.items():
                op = "check" if shortages else "take"
                reply = await self._sku(sku, op, rid, now_ms, expires, *args)
                if reply[0] == "short":
                    shortages += orjson.loads(reply[1])
                elif op == "take":
                    lines = orjson.loads(reply[1])
                    held[sku] = sorted({loc for _, ps in lines for loc, _ in ps})
                    parts.update((line, ps) for line, ps in lines)
            if shortages:
                await self._give_back(rid, now_ms, held)
                await self._rec(rid, "abort", now_ms, fingerprint)
                raise InsufficientStock(
                    [
                        {
                            "line": line,
                            "sku": req.lines[line].sku,
                            "location_id": req.lines[line].location_id,
                            "requested": requested,
                            "available": available,
                        }
                        for line, requested, available in sorted(shortages)
                    ]
                )
            allocations = orjson.dumps([parts[i] for i in range(len(req.lines))])
            record_until = expires + self._replay_ttl_ms
            done = await self._rec(rid, "commit", now_ms, fingerprint, allocations, record_until)
            if done[0] != "held":
                # Our mark expired before we finished (a stall longer than the TTL).
                await self._give_back(rid, now_ms, held)
                raise StoreUnavailable(f"reservation {rid!r} took longer than its TTL to make")
        except REDIS_DOWN as exc:
            # What was held stays until its expiry, like the pending mark: both then vanish.
            raise StoreUnavailable(f"Redis is unavailable: {exc}") from exc
        return True, await self.get(rid, now_ms)

    async def reserve_first(
        self, requests: list[ReservationRequest], network: Network, now_ms: int
    ) -> tuple[int, bool, dict[str, Any]]:
        """Hold the first of `requests` (alternatives under one reservation id, best first)
        that fits now: (its index, created, view). When none fits, InsufficientStock lists the
        short lines of every one, each with the `plan` number it belongs to (1-based)."""
        shortfalls: list[dict[str, object]] = []
        for i, req in enumerate(requests):
            try:
                created, held = await self.reserve(req, network, now_ms)
            except InsufficientStock as exc:
                shortfalls += [{**line, "plan": i + 1} for line in exc.lines]
                continue
            return i, created, held
        raise InsufficientStock(shortfalls)

    def take_args(self, req: ReservationRequest, network: Network) -> dict[str, list[Any]]:
        """ARGV of `holds.lua take` after expires_at, per SKU in the order they are taken."""
        network.channel(req.channel)
        lines: dict[str, list[Any]] = defaultdict(list)
        for i, line in enumerate(req.lines):
            cands = candidates(network, req.channel, line)
            lines[line.sku] += [i, line.quantity, len(cands)]
            for loc, safety in cands:
                lines[line.sku] += [loc, safety]
        # One order for everybody: see the module docstring.
        return {sku: [len(_lines_of(req, sku)), *lines[sku]] for sku in sorted(lines)}

    async def _give_back(self, rid: str, now_ms: int, held: dict[str, list[str]]) -> None:
        for sku, locs in held.items():
            if locs:
                await self._sku(sku, "release", rid, now_ms, *locs)

    async def _record(self, reservation_id: str) -> dict[str, str]:
        try:
            raw = await self._redis.hgetall(keys.reservation(reservation_id))
        except REDIS_DOWN as exc:
            raise StoreUnavailable(f"Redis is unavailable: {exc}") from exc
        record = {k.decode(): v.decode() for k, v in raw.items()}
        if not record or record.get("state") == "pending":
            raise ReservationNotFound(reservation_id)
        return record

    async def get(self, reservation_id: str, now_ms: int) -> dict[str, Any]:
        return view(reservation_id, await self._record(reservation_id), now_ms)

    async def transition(
        self, reservation_id: str, op: str, now_ms: int, ttl_seconds: int | None = None
    ) -> dict[str, Any]:
        """confirm, extend, release, expire or fulfil; returns the reservation afterwards."""
        rid = reservation_id
        record = await self._record(rid)
        locs = hold_locations(record)
        state = record["state"]
        overdue = state == "held" and now_ms >= int(record["expires_ms"])
        new_expiry = now_ms + ttl_seconds * 1000 if ttl_seconds else 0
        try:
            if op in ("release", "expire") and (
                (op == "release" and state in ("held", "confirmed")) or overdue
            ):
                await self._give_back(rid, now_ms, locs)
            elif op in ("confirm", "extend") and state == "held":
                if overdue or not await self._persist_or_extend(rid, op, now_ms, new_expiry, locs):
                    await self._expire(rid, now_ms, locs)
                    raise ReservationExpired(rid)
            elif op == "fulfil":
                for sku, sku_locs in locs.items():
                    reply = await self._sku(sku, "left", rid, now_ms, *sku_locs)
                    if int(reply[1]):
                        return view(rid, record, now_ms)  # shipments have not used it all up
            reply = await self._rec(rid, op, now_ms, new_expiry, self._replay_ttl_ms)
            if reply[0] == "expired":  # went overdue since we looked
                await self._expire(rid, now_ms, locs)
                raise ReservationExpired(rid)
        except REDIS_DOWN as exc:
            raise StoreUnavailable(f"Redis is unavailable: {exc}") from exc
        if reply[0] == "not_found":
            raise ReservationNotFound(rid)
        if reply[0] == "invalid":
            raise InvalidTransition(rid, reply[1], DONE.get(op, op))
        return await self.get(rid, now_ms)

    async def _persist_or_extend(
        self, rid: str, op: str, now_ms: int, new_expiry: int, locs: dict[str, list[str]]
    ) -> bool:
        """Take the holds off their expiry (confirm) or move it (extend); False if overdue."""
        for sku, sku_locs in locs.items():
            args = [*sku_locs] if op == "confirm" else [new_expiry, *sku_locs]
            reply = await self._sku(
                sku, "persist" if op == "confirm" else "extend", rid, now_ms, *args
            )
            if reply[0] == "expired":
                return False
        return True

    async def _expire(self, rid: str, now_ms: int, locs: dict[str, list[str]]) -> None:
        await self._give_back(rid, now_ms, locs)
        await self._rec(rid, "expire", now_ms, 0, self._replay_ttl_ms)

    async def restore(
        self,
        reservation_id: str,
        state: str,
        request: dict[str, Any],
        allocations: list[Any],
        times: tuple[int, int, int],
        record_expires_ms: int | None,
    ) -> bool:
        """Put a reservation back as its events left it, holds included (`atp rebuild`).

        `times` is (created_ms, updated_ms, expires_ms). Returns False when the reservation
        exists already (then it is left alone: it is newer than the events). Holds are set, not
        added, so a rebuild that is run again puts back the same units.
        """
        req = ReservationRequest(
            reservation_id,
            tuple(
                ReservationLine(ln["sku"], ln["quantity"], ln["location_id"])
                for ln in request["lines"]
            ),
            request["ttl_seconds"],
            request["channel"],
        )
        created, updated, expires = times
        try:
            if await self._redis.exists(keys.reservation(reservation_id)):
                return False
            if state in ("held", "confirmed"):
                units: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
                for line, parts in zip(request["lines"], allocations, strict=True):
                    for loc, qty in parts:
                        units[line["sku"]][loc] += qty
                for sku, by_loc in units.items():
                    pairs = [x for loc, qty in by_loc.items() for x in (loc, qty)]
                    await self._sku(sku, "restore", reservation_id, updated, state, expires, *pairs)
            reply = await self._rec(
                reservation_id,
                "restore",
                updated,
                state,
                req.fingerprint(),
                orjson.dumps(request),
                orjson.dumps(allocations),
                created,
                expires,
                "" if record_expires_ms is None else record_expires_ms,
            )
        except REDIS_DOWN as exc:
            raise StoreUnavailable(f"Redis is unavailable: {exc}") from exc
        return reply[0] == "restored"

    async def expire_due(self, now_ms: int, limit: int = 200) -> int:
        """The sweeper's step: close held reservations whose expiry has passed (every shard)."""
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for index in keys.EXPIRINGS:
                    pipe.zrangebyscore(index, "-inf", now_ms, 0, limit)
                due = await pipe.execute()
        except REDIS_DOWN:
            return 0
        closed = 0
        for index, rids in zip(keys.EXPIRINGS, due, strict=True):
            for rid in rids:
                try:
                    await self.transition(rid.decode(), "expire", now_ms)
                    closed += 1
                except ReservationNotFound:
                    await self._redis.zrem(index, rid)  # the record itself is gone
                except StoreUnavailable:
                    return closed
        return closed


def _lines_of(req: ReservationRequest, sku: str) -> list[ReservationLine]:
    return [line for line in req.lines if line.sku == sku]
