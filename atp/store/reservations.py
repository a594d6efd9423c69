"""Reservations in Redis: a saga of single-slot scripts, their reply codes turned into typed
errors in one table (`atp.store.replies.RECORD_ERRORS`).

A reservation's record, its shard's expiring index and outbox share one slot (`{r<n>}`); each
SKU's stock, holds and expiry share the SKU's slot. So no script touches two slots, and the same
code runs on one Redis and on Redis Cluster. A reservation is made in steps:

1. `record/begin.lua` marks the id as taken (state `pending`, until the hold's expiry), so a
   repeated request is answered, not run twice.
2. `hold/take.lua`, SKU by SKU in sorted order: each SKU's check-and-hold is atomic, so two
   customers never get the last unit. When a SKU is short, the rest are only checked
   (`hold/check.lua`: every shortfall is reported) and what was held is given back
   (`hold/release.lua`), then the mark dropped (`record/abort.lua`).
3. `record/commit.lua`: pending -> held, indexed for the sweeper, and its event in the outbox,
   in one step.

Where every key is on one server (one Redis, not a cluster), `reserve/make.lua` does all three
in one atomic call instead, with the same replies and the same state afterwards; a repeat of a
request a saga left pending takes over from it as a saga's repeat would.

Holds carry the reservation's expiry, like the pending mark, so if the process dies between
steps both vanish at the TTL (reads and the next take already discount overdue holds). The
price of the steps: while a request holds its first SKUs it may make a concurrent request for
the same SKUs fail although, once it gives them back, there would have been enough. Taking SKUs
in one order keeps that rare (with two SKUs it cannot change who wins; docs/operations.md).

State changes run the SKU side first, then the record: a release gives the holds back, then
closes the record, so a crash in between leaves a record that a retry or the sweeper closes, never
a confirmed hold that nothing would give back.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from atp.core.amendments import Change, Move
from atp.core.errors import (
    InsufficientStock,
    ReservationExpired,
    ReservationInProgress,
)
from atp.core.network import Network
from atp.core.reservations import (
    CONFIRMED,
    HELD,
    ReservationRequest,
    Stored,
    candidates,
    is_overdue,
    view,
)
from atp.store import changes, keys, pending, shipments, transfers
from atp.store.client import unavailable_as_error
from atp.store.replies import RECORD_ERRORS, ReservationLost, short_lines, stored_from, text
from atp.store.scripts import Scripts

log = logging.getLogger(__name__)


def _partial_arg(req: ReservationRequest) -> str:
    """allow_partial as the hold scripts read it (place_lines in hold/_prelude.lua)."""
    return "1" if req.allow_partial else "0"


class ReservationStore:
    def __init__(
        self,
        client: aioredis.Redis,
        replay_ttl_ms: int,
        takeover_ms: int = 3000,
        atomic: bool | None = None,
        feed_entries: int | None = None,
    ) -> None:
        """`takeover_ms`: how long an attempt at a pending reservation owns it; after that the
        same request again takes over (its earlier attempt's answer was lost); as long as a
        pending transfer or change owns its reservation (atp/store/pending.py). `atomic`: make
        a reservation in one call (`reserve/make.lua`); by default on one Redis, not a cluster.
        `feed_entries`: that call also adds the SKUs of a reservation it makes to the live
        streams' change feed (of that length), saving the caller a round trip to publish them;
        `publishes_made` says whether it does."""
        self.client = self._redis = client
        self.replay_ttl_ms = replay_ttl_ms
        self.takeover_ms = takeover_ms
        self._atomic = not isinstance(client, RedisCluster) if atomic is None else atomic
        self._feed_entries = feed_entries if self._atomic else None
        self.publishes_made = self._feed_entries is not None
        self._scripts = Scripts(client)

    async def run_record(self, op: str, rid: str, now_ms: int, *args: Any) -> list[str]:
        """Run `record/<op>.lua`; a reply code of RECORD_ERRORS is raised as its error."""
        script = self._scripts[f"record/{op}.lua"]
        reply = [
            text(x) for x in await script(keys=keys.record_keys(rid), args=[rid, now_ms, *args])
        ]
        error = RECORD_ERRORS.get(reply[0])
        if error is not None:
            raise error(rid, op, reply[1:])
        return reply

    async def run_hold(
        self, op: str, sku: str, rid: str, now_ms: int, *args: Any, extra_keys: Sequence[str] = ()
    ) -> list[Any]:
        """Run `hold/<op>.lua` on the SKU's keys (and `extra_keys` of its slot); its reply
        with the code as text."""
        script = self._scripts[f"hold/{op}.lua"]
        sku_keys = [*keys.sku_keys(sku), *extra_keys]
        reply = await script(keys=sku_keys, args=[rid, now_ms, *args])
        return [text(reply[0]), *reply[1:]]

    async def reserve(
        self, req: ReservationRequest, network: Network, now_ms: int
    ) -> tuple[bool, dict[str, Any]]:
        """Hold every line or nothing; with `allow_partial`, what fits of each line, nothing only
        when no line fits. Returns (created, view); a replay returns (False, view).

        A request whose earlier attempt got no answer (Redis stalled, a reply lost) and is still
        pending answers 409 reservation_in_progress until `takeover_ms` after that attempt
        began, then takes over: the earlier attempt's holds are given back and taken again
        (hold/take.lua), so each unit is held once, and the earlier attempt, should it resume,
        can neither commit nor give back what the new one holds (both are fenced by the new
        attempt's expires_at)."""
        if self._atomic:
            return await self._make(req, network, now_ms)
        rid, fingerprint = req.reservation_id, req.fingerprint()
        per_sku, locs = self.plan(req, network)
        with unavailable_as_error():
            begun = await self.run_record(
                "begin",
                rid,
                now_ms,
                fingerprint,
                orjson.dumps(req.canonical()),
                now_ms + req.ttl_seconds * 1000,
                self.takeover_ms,
            )
            if begun[0] == "replay":
                return False, await self.get(rid, now_ms)
            attempt = int(begun[1])  # this attempt's expires_at
            partial = _partial_arg(req)
            parts: dict[int, list[list[Any]]] = {}
            shortages: list[list[int]] = []
            for sku, args in per_sku.items():
                op = "check" if shortages and not req.allow_partial else "take"
                reply = await self.run_hold(op, sku, rid, now_ms, attempt, partial, *args)
                if reply[0] == "lost":  # a newer attempt took over: it answers
                    await self.give_back(rid, now_ms, locs, attempt)
                    raise ReservationInProgress(rid, 1.0)
                if reply[0] == "short":
                    shortages += orjson.loads(reply[1])
                elif op == "take":
                    # A line that holds nothing comes back as {} (cjson's empty table).
                    parts.update((line, ps or []) for line, ps in orjson.loads(reply[1]))
                    if req.allow_partial:
                        shortages += orjson.loads(reply[2])
            nothing = not any(ps for ps in parts.values())
            if shortages and (not req.allow_partial or nothing):
                await self.give_back(rid, now_ms, locs, attempt)
                await self.run_record("abort", rid, now_ms, fingerprint, attempt)
                raise InsufficientStock(short_lines(req, shortages))
            allocations = orjson.dumps([parts[i] for i in range(len(req.lines))])
            record_until = attempt + self.replay_ttl_ms
            try:
                done = await self.run_record(
                    "commit", rid, now_ms, fingerprint, allocations, record_until, attempt
                )
            except ReservationLost:
                await self.give_back(rid, now_ms, locs, attempt)
                raise
        return done[0] == "held", await self.get(rid, now_ms, shipped=done[0] != "held")

    async def _make(
        self, req: ReservationRequest, network: Network, now_ms: int
    ) -> tuple[bool, dict[str, Any]]:
        """reserve() in one call of `reserve/make.lua`."""
        rid = req.reservation_id
        key_list, args = self.make_call(req, network, now_ms)
        with unavailable_as_error():
            reply = await self._scripts["reserve/make.lua"](keys=key_list, args=args)
        code = text(reply[0])
        if code in ("held", "replay"):
            fields = iter(text(x) for x in reply[1:])
            stored = stored_from(rid, dict(zip(fields, fields, strict=True)))
            return code == "held", view(rid, stored, now_ms)
        if code == "short":
            raise InsufficientStock(short_lines(req, orjson.loads(reply[1])))
        if code == "lost":  # a newer attempt took over: it answers
            raise ReservationInProgress(rid, 1.0)
        raise RECORD_ERRORS[code](rid, "begin", [text(x) for x in reply[1:]])

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

    def make_call(
        self, req: ReservationRequest, network: Network, now_ms: int
    ) -> tuple[list[str], list[Any]]:
        """KEYS and ARGV of `reserve/make.lua` for this request."""
        rid = req.reservation_id
        per_sku, _ = self.plan(req, network)
        key_list = keys.record_keys(rid)
        args: list[Any] = [
            rid,
            now_ms,
            req.fingerprint(),
            orjson.dumps(req.canonical()),
            now_ms + req.ttl_seconds * 1000,
            self.takeover_ms,
            self.replay_ttl_ms,
            len(per_sku),
            _partial_arg(req),
            "" if self._feed_entries is None else self._feed_entries,
        ]
        for sku, lines in per_sku.items():
            key_list += keys.sku_keys(sku)
            args += [sku, *lines]
        if self._feed_entries is not None:
            key_list.append(keys.feed())
        return key_list, args

    def plan(
        self, req: ReservationRequest, network: Network
    ) -> tuple[dict[str, list[Any]], dict[str, list[str]]]:
        """Per SKU, in the order they are taken: the lines as `hold/take.lua` reads them, and
        every location they may be held at. Validates the lines before anything is written."""
        network.channel(req.channel)
        lines: dict[str, list[Any]] = defaultdict(list)
        counts: dict[str, int] = defaultdict(int)
        locs: dict[str, list[str]] = defaultdict(list)
        for i, line in enumerate(req.lines):
            cands = candidates(network, req.channel, line)
            lines[line.sku] += [i, line.quantity, len(cands)]
            for loc, safety in cands:
                lines[line.sku] += [loc, safety]
                if loc not in locs[line.sku]:
                    locs[line.sku].append(loc)
            counts[line.sku] += 1
        # One order for everybody: see the module docstring.
        order = sorted(lines)
        return {sku: [counts[sku], *lines[sku]] for sku in order}, {sku: locs[sku] for sku in order}

    async def give_back(
        self, rid: str, now_ms: int, held: dict[str, list[str]], attempt: int | str = ""
    ) -> None:
        """Give back the reservation's holds at these locations: all of them (a reservation
        that is made), or those of attempt `attempt` and older ones at a pending one."""
        for sku, locs in held.items():
            if locs:
                await self.run_hold("release", sku, rid, now_ms, attempt, *locs)

    async def stored(self, reservation_id: str) -> Stored:
        with unavailable_as_error():
            raw = await self._redis.hgetall(keys.reservation(reservation_id))
        return stored_from(reservation_id, {k.decode(): v.decode() for k, v in raw.items()})

    async def get(self, reservation_id: str, now_ms: int, shipped: bool = True) -> dict[str, Any]:
        """Its view; `shipped=False`: one just made (nothing can have shipped yet)."""
        stored = await self.stored(reservation_id)
        return await self.view(reservation_id, stored, now_ms, shipped)

    async def view(
        self, rid: str, stored: Stored, now_ms: int, shipped: bool = True
    ) -> dict[str, Any]:
        """The reservation's view; an open one's with what shipments used up so far."""
        if not shipped or stored.state not in (HELD, CONFIRMED):
            return view(rid, stored, now_ms)  # its record has it
        used = await shipments.used_up(self._redis, rid, stored.hold_locations())
        return view(rid, stored, now_ms, used)

    async def transition(
        self, reservation_id: str, op: str, now_ms: int, ttl_seconds: int | None = None
    ) -> dict[str, Any]:
        """confirm, extend, release, expire or fulfil; returns the reservation afterwards."""
        rid = reservation_id
        stored = await self.stored(rid)
        locs = stored.hold_locations()
        state = stored.state
        overdue = state == HELD and is_overdue(stored.expires_ms, now_ms)
        with unavailable_as_error():
            used = ""
            if op in ("release", "expire") and (
                (op == "release" and state in (HELD, CONFIRMED)) or overdue
            ):
                await self.give_back(rid, now_ms, locs)
                used = shipments.as_arg(await shipments.used_up(self._redis, rid, locs))
            elif op in ("confirm", "extend") and state == HELD:
                new_expiry = now_ms + (ttl_seconds or 0) * 1000
                if overdue or not await self.persist_or_extend(rid, op, now_ms, new_expiry, locs):
                    await self._expire(rid, now_ms, locs)
                    raise ReservationExpired(rid)
            elif op == "fulfil":
                for sku, sku_locs in locs.items():
                    reply = await self.run_hold("left", sku, rid, now_ms, *sku_locs)
                    if int(reply[1]):  # not all used up yet; the caller (the worker after a
                        # shipment, or a change) reads no shipped counts: none in the view
                        return view(rid, stored, now_ms)
            try:
                args = self._change_args(op, now_ms, ttl_seconds)
                await self.run_record(op, rid, now_ms, *args, *([used] if used else []))
            except ReservationExpired:  # went overdue since we looked
                await self._expire(rid, now_ms, locs)
                raise
            after = await self._covered(rid, op, now_ms, ttl_seconds, stored, locs)
        return await self.view(rid, after, now_ms)

    async def _covered(
        self,
        rid: str,
        op: str,
        now_ms: int,
        ttl_seconds: int | None,
        stored: Stored,
        locs: dict[str, list[str]],
    ) -> Stored:
        """After a change of state: what a transfer or change running meanwhile did follows
        it, and a closed reservation leaves nothing behind in the SKUs' slots. Returns it."""
        after = await self.stored(rid)
        meanwhile = after.changes != stored.changes or stored.pending() is not None
        if op in ("confirm", "extend") and meanwhile:
            locs = {}  # a change may have put new holds on the expiry it read: cover all
        await transfers.cover(self, rid, op, now_ms, ttl_seconds, locs, after)
        await changes.cover(self, rid, op, now_ms, ttl_seconds, after)
        if after.state not in (HELD, CONFIRMED):
            await changes.fence(self, rid, now_ms, after)
            await shipments.drop(self._redis, rid, after.hold_locations())
        return after

    async def transfer(
        self, rid: str, move: Move, network: Network, now_ms: int
    ) -> tuple[bool, dict[str, Any]]:
        """Move held units between locations (atp/store/transfers.py): (moved now, view)."""
        return await pending.finishing(transfers.transfer, self, rid, move, network, now_ms)

    async def change(
        self, rid: str, asked: Change, network: Network, now_ms: int
    ) -> tuple[bool, dict[str, Any]]:
        """New quantities for lines (atp/store/changes.py): (changed now, view)."""
        return await pending.finishing(changes.change, self, rid, asked, network, now_ms)

    def _change_args(self, op: str, now_ms: int, ttl_seconds: int | None) -> list[int]:
        """ARGV of `record/<op>.lua` after the id and the time."""
        if op == "confirm":
            return []
        if op == "extend":
            return [now_ms + (ttl_seconds or 0) * 1000, self.replay_ttl_ms]
        return [self.replay_ttl_ms]

    async def persist_or_extend(
        self, rid: str, op: str, now_ms: int, new_expiry: int, locs: dict[str, list[str]]
    ) -> bool:
        """Take the holds off their expiry (confirm) or move it (extend); False if overdue."""
        for sku, sku_locs in locs.items():
            if op == "confirm":
                reply = await self.run_hold("persist", sku, rid, now_ms, *sku_locs)
            else:
                reply = await self.run_hold("extend", sku, rid, now_ms, new_expiry, *sku_locs)
            if reply[0] == "expired":
                return False
        return True

    async def _expire(self, rid: str, now_ms: int, locs: dict[str, list[str]]) -> None:
        await self.give_back(rid, now_ms, locs)
        used = shipments.as_arg(await shipments.used_up(self._redis, rid, locs))
        await self.run_record("expire", rid, now_ms, self.replay_ttl_ms, used)
        closed = await self.stored(rid)
        await changes.fence(self, rid, now_ms, closed)
        if closed.state not in (HELD, CONFIRMED):  # not extended meanwhile
            await shipments.drop(self._redis, rid, closed.hold_locations())
