"""Reservations in Redis: every change through one Lua script, return codes mapped to errors."""

from __future__ import annotations

from typing import Any

import orjson
import redis.asyncio as aioredis

from atp import keys
from atp.errors import (
    IdempotencyConflict,
    InsufficientStock,
    InvalidTransition,
    ReservationExpired,
    ReservationNotFound,
    StoreUnavailable,
)
from atp.network import Network
from atp.reservations import ReservationLine, ReservationRequest, candidates, view
from atp.store import REDIS_DOWN, load_script

ACTIONS = {"confirm": "confirmed", "extend": "extended", "release": "released"}


def script_keys(reservation_id: str, skus: list[str]) -> list[str]:
    """KEYS of reserve.lua and transition.lua: the record, the index, the outbox, then per SKU."""
    out = [keys.reservation(reservation_id), keys.EXPIRING, keys.OUTBOX]
    for sku in skus:
        out += keys.sku_keys(sku)
    return out


class ReservationStore:
    def __init__(self, client: aioredis.Redis, replay_ttl_ms: int) -> None:
        self._redis = client
        self._replay_ttl_ms = replay_ttl_ms
        self._reserve = client.register_script(load_script("reserve.lua"))
        self._transition = client.register_script(load_script("transition.lua"))
        self._restore = client.register_script(load_script("restore_reservation.lua"))

    async def reserve(
        self, req: ReservationRequest, network: Network, now_ms: int
    ) -> tuple[bool, dict[str, Any]]:
        """Hold every line or nothing. Returns (created, view); a replay returns (False, view)."""
        key_list, args = self.reserve_call(req, network, now_ms)
        try:
            reply = await self._reserve(keys=key_list, args=args)
        except REDIS_DOWN as exc:
            raise StoreUnavailable(f"Redis is unavailable: {exc}") from exc
        code = reply[0].decode()
        if code == "short":
            raise InsufficientStock(
                [
                    {
                        "line": line,
                        "sku": req.lines[line].sku,
                        "location_id": req.lines[line].location_id,
                        "requested": requested,
                        "available": available,
                    }
                    for line, requested, available in orjson.loads(reply[1])
                ]
            )
        if code == "replay":
            if reply[1] != b"1":
                raise IdempotencyConflict(req.reservation_id)
            return False, await self.get(req.reservation_id, now_ms)
        return True, await self.get(req.reservation_id, now_ms)

    def reserve_call(
        self, req: ReservationRequest, network: Network, now_ms: int
    ) -> tuple[list[str], list[Any]]:
        """The KEYS and ARGV of `reserve.lua` for a request (also used by the benchmark)."""
        network.channel(req.channel)
        skus = req.skus()
        index = {sku: i + 1 for i, sku in enumerate(skus)}
        args: list[Any] = [
            req.reservation_id,
            req.fingerprint(),
            now_ms,
            now_ms + req.ttl_seconds * 1000,
            req.ttl_seconds * 1000 + self._replay_ttl_ms,
            orjson.dumps(req.canonical()),
            len(req.lines),
        ]
        for line in req.lines:
            cands = candidates(network, req.channel, line)
            args += [index[line.sku], line.quantity, len(cands)]
            for loc, safety in cands:
                args += [loc, safety]
        return script_keys(req.reservation_id, skus), args

    async def get(self, reservation_id: str, now_ms: int) -> dict[str, Any]:
        try:
            raw = await self._redis.hgetall(keys.reservation(reservation_id))
        except REDIS_DOWN as exc:
            raise StoreUnavailable(f"Redis is unavailable: {exc}") from exc
        if not raw:
            raise ReservationNotFound(reservation_id)
        return view(reservation_id, {k.decode(): v.decode() for k, v in raw.items()}, now_ms)

    async def transition(
        self, reservation_id: str, op: str, now_ms: int, ttl_seconds: int | None = None
    ) -> dict[str, Any]:
        """confirm, extend or release; returns the reservation as it is afterwards."""
        current = await self.get(reservation_id, now_ms)
        skus = list(dict.fromkeys(line["sku"] for line in current["lines"]))
        index = {sku: i + 1 for i, sku in enumerate(skus)}
        new_expiry = now_ms + ttl_seconds * 1000 if ttl_seconds else 0
        args = [reservation_id, now_ms, op, new_expiry, self._replay_ttl_ms, len(current["lines"])]
        args += [index[line["sku"]] for line in current["lines"]]
        try:
            reply = await self._transition(keys=script_keys(reservation_id, skus), args=args)
        except REDIS_DOWN as exc:
            raise StoreUnavailable(f"Redis is unavailable: {exc}") from exc
        code = reply[0].decode()
        if code == "not_found":
            raise ReservationNotFound(reservation_id)
        if code == "expired":
            raise ReservationExpired(reservation_id)
        if code == "invalid":
            raise InvalidTransition(reservation_id, reply[1].decode(), ACTIONS.get(op, op))
        return await self.get(reservation_id, now_ms)

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
        exists already (then it is left alone: it is newer than the events).
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
        skus = req.skus()
        index = {sku: i + 1 for i, sku in enumerate(skus)}
        args: list[Any] = [
            reservation_id,
            state,
            req.fingerprint(),
            orjson.dumps(request),
            orjson.dumps(allocations),
            *times,
            "" if record_expires_ms is None else record_expires_ms,
            len(req.lines),
            *(index[line.sku] for line in req.lines),
        ]
        try:
            reply = await self._restore(keys=script_keys(reservation_id, skus), args=args)
        except REDIS_DOWN as exc:
            raise StoreUnavailable(f"Redis is unavailable: {exc}") from exc
        return bool(reply == b"restored")

    async def expire_due(self, now_ms: int, limit: int = 200) -> int:
        """The sweeper's step: close held reservations whose expiry has passed."""
        try:
            due = await self._redis.zrangebyscore(keys.EXPIRING, "-inf", now_ms, 0, limit)
        except REDIS_DOWN:
            return 0
        closed = 0
        for rid in due:
            try:
                await self.transition(rid.decode(), "expire", now_ms)
                closed += 1
            except ReservationNotFound:
                await self._redis.zrem(keys.EXPIRING, rid)  # the record itself is gone
            except StoreUnavailable:
                break
        return closed
