"""Redis: the ledger's home and the serving store. All Redis commands of the service live here.

The worker applies a batch of movements in three steps: one pipelined read of every SKU the
batch touches, the pure fold (`atp.core.ledger.fold`), and one pipelined round of `apply_ledger.lua`
calls, each writing one SKU atomically and only if its version is still the one that was read.
A SKU whose version moved (another worker wrote it, for instance right after a rebalance) is read
and folded again; replays are harmless because applied event ids are skipped.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, cast

import orjson
import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterPipeline, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import (
    ClusterDownError,
    MaxConnectionsError,
    NoScriptError,
    SlotNotCoveredError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from atp import keys
from atp.core.availability import IN_STOCK, LOW_STOCK, OUT_OF_STOCK, LocationCounts
from atp.core.errors import ATPError, StoreUnavailable
from atp.core.ledger import LedgerState, Outcome, Policy, fold, next_inbound
from atp.core.movements import Movement
from atp.core.reservations import hold_member, use_holds

# Redis (or, on a cluster, the master of a key's slot) cannot answer now; worth trying later.
REDIS_DOWN = (
    RedisConnectionError,
    RedisTimeoutError,
    OSError,
    ClusterDownError,
    SlotNotCoveredError,
)


class StoreConflict(ATPError):
    """A SKU kept changing under us; the batch is not acknowledged and will be redelivered."""

    code = "store_conflict"


def load_script(name: str) -> str:
    """A Lua script shipped in `atp/lua/`."""
    return resources.files("atp").joinpath("lua", name).read_text(encoding="utf-8")


FULFILLING_KINDS = frozenset({"SHIPPED", "PICKUP"})

# The ledger's counters, kept by apply_ledger.lua in the write that changes them (see there):
# `skus`, `pairs` and `<channel>:<status code>`. One hash per hash slot (`keys.stats`), so the
# script stays in its SKU's slot on Redis Cluster; reading the ledger's size or how many SKUs are
# out of stock sums at most 16,384 small hashes in one pipelined round, never a scan.
STATUS_CODES = {IN_STOCK: "i", LOW_STOCK: "l", OUT_OF_STOCK: "o"}
STATUS_NAMES = {code: name for name, code in STATUS_CODES.items()}

# A SKU's status per channel from its counts: [(channel, status), ...] (atp.core.availability).
StatusFn = Callable[[str, Mapping[str, LocationCounts]], Sequence[tuple[str, str]]]


@dataclass(frozen=True, slots=True)
class SkuChange:
    """Served counts of one SKU before and after a write (for availability change events)."""

    sku: str
    before: dict[str, LocationCounts]
    after: dict[str, LocationCounts]


@dataclass(slots=True)
class BatchResult:
    outcomes: list[tuple[Movement, Outcome]] = field(default_factory=list)
    skus_written: int = 0
    conflicts: int = 0
    changes: list[SkuChange] = field(default_factory=list)
    # Holds used up by shipments: (reservation id, location, units)
    consumed: list[tuple[str, str, int]] = field(default_factory=list)
    # Shipments naming a reservation that holds nothing there: (reservation id, sku, location)
    unmatched: list[tuple[str, str, str]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class LedgerStats:
    """The ledger's counters: its size, and SKUs per recorded status per channel."""

    skus: int
    pairs: int
    statuses: dict[tuple[str, str], int]  # (channel, status) -> SKUs


STATS_CHUNK = 256  # stats hashes per pipeline (LedgerStore.stats)


class LedgerStore:
    """The worker's view: read, fold and write ledger state for batches of movements.

    With `statuses`, every write that moves a SKU's counts also records the SKU's status per
    channel, and the SKUs-per-status counters move with it in the same atomic step. A write
    whose shipments use up reservations' holds computes what they use from the holds read with
    the ledger (`atp.core.reservations.use_holds`), and the script refuses it, as it refuses a moved
    version, if the holds changed since: so the status it records is that of its counts.
    """

    def __init__(
        self,
        client: aioredis.Redis,
        policy: Policy = Policy(),
        max_attempts: int = 16,
        statuses: StatusFn | None = None,
    ):
        self._redis = client
        self._policy = policy
        self._max_attempts = max_attempts
        self._statuses = statuses
        self._apply_script = client.register_script(load_script("apply_ledger.lua"))

    def _status_args(self, sku: str, counts: Mapping[str, LocationCounts]) -> list[str | int]:
        if self._statuses is None:
            return [0]
        pairs = self._statuses(sku, counts)
        return [len(pairs), *(x for ch, st in pairs for x in (ch, STATUS_CODES[st]))]

    async def stats(self) -> LedgerStats:
        """The counters apply_ledger.lua keeps, summed over the slots: 16,384 small hashes
        whatever the ledger's size, read in pipelines of STATS_CHUNK. One pipeline of all of
        them held the event loop for up to 124 ms while redis-py packed and parsed it, every
        `ATP_GAUGE_REFRESH_S`, and every movement in flight waited (the worker's freshness
        tail); a chunk holds it for a few milliseconds."""
        rows: list[Any] = []
        stats_keys = keys.stats_keys()
        try:
            for start in range(0, len(stats_keys), STATS_CHUNK):
                async with self._redis.pipeline(transaction=False) as pipe:
                    for key in stats_keys[start : start + STATS_CHUNK]:
                        pipe.hgetall(key)
                    rows += await pipe.execute()
        except REDIS_DOWN as exc:
            raise StoreUnavailable(f"Redis is unavailable: {exc}") from exc
        return sum_stats(rows)

    async def _write(self, calls: list[tuple[str, list[bytes | str | int]]]) -> list[Any]:
        return await eval_pipelined(
            self._redis, self._apply_script, [(keys.ledger_keys(sku), args) for sku, args in calls]
        )

    async def apply(self, movements: Sequence[Movement], now_ms: int) -> BatchResult:
        """Apply a batch; raises StoreUnavailable when Redis is away, StoreConflict on livelock."""
        by_sku: dict[str, list[Movement]] = defaultdict(list)
        for m in movements:
            by_sku[m.sku].append(m)
        result = BatchResult()
        pending = list(by_sku)
        try:
            for attempt in range(self._max_attempts):
                conflicted = await self._attempt(pending, by_sku, now_ms, result)
                if not conflicted:
                    return result
                result.conflicts += len(conflicted)
                pending = conflicted
                # Jittered backoff, so writers racing for one SKU do not collide in lockstep.
                await asyncio.sleep(random.uniform(0, 0.001 * 2 ** min(attempt, 8)))
        except REDIS_DOWN as exc:
            raise StoreUnavailable(f"Redis is unavailable: {exc}") from exc
        raise StoreConflict(
            f"{len(pending)} SKUs kept changing during {self._max_attempts} attempts"
        )

    async def _attempt(
        self,
        skus: list[str],
        by_sku: dict[str, list[Movement]],
        now_ms: int,
        result: BatchResult,
    ) -> list[str]:
        """One read-fold-write round; adds what was written to `result`, returns conflicts."""
        # 1. One pipelined read: version and touched locations of every SKU, its counts, and
        # the holds its shipments may use up.
        locs_of = {sku: sorted({m.location_id for m in by_sku[sku]}) for sku in skus}
        members_of = {
            sku: sorted(
                {
                    hold_member(m.order_ref, m.location_id)
                    for m in by_sku[sku]
                    if m.order_ref and m.kind in FULFILLING_KINDS
                }
            )
            for sku in skus
        }
        async with self._redis.pipeline(transaction=False) as pipe:
            for sku in skus:
                fields = [keys.VERSION_FIELD] + [keys.LEDGER_PREFIX + loc for loc in locs_of[sku]]
                pipe.hmget(keys.ledger(sku), fields)
                pipe.hgetall(keys.stock(sku))
                if members_of[sku]:
                    pipe.hmget(keys.holds(sku), members_of[sku])
            rows = iter(await pipe.execute())

        # 2. The pure fold, per (SKU, location); only what changed is written.
        planned: list[tuple[str, list[bytes | str | int], Any]] = []
        for sku in skus:
            row, stock = next(rows), parse_stock(next(rows))
            held = {}
            if members_of[sku]:
                held = {
                    m: int(units)
                    for m, units in zip(members_of[sku], next(rows), strict=True)
                    if units is not None
                }
            version = row[0] or b"0"
            groups: list[bytes | str | int] = []
            shipments: list[tuple[str, str, int]] = []
            outcomes: list[tuple[Movement, Outcome]] = []
            on_hand_after: dict[str, int] = {}
            for loc, raw in zip(locs_of[sku], row[1:], strict=True):
                state = LedgerState.from_list(orjson.loads(raw)) if raw else LedgerState()
                moves = [m for m in by_sku[sku] if m.location_id == loc]
                new, outs = fold(state, moves, now_ms, self._policy)
                outcomes.extend(zip(moves, outs, strict=True))
                for m, out in zip(moves, outs, strict=True):
                    if out is Outcome.APPLIED and m.order_ref and m.kind in FULFILLING_KINDS:
                        shipments.append((loc, m.order_ref, -m.qty))
                blob = orjson.dumps(new.to_list())
                if blob != raw:
                    inbound = next_inbound(new)
                    ib = "" if inbound is None else f"{inbound[0]}:{inbound[1]}"
                    groups += [loc, blob, new.on_hand, ib]
                    on_hand_after[loc] = new.on_hand
            if groups or shipments:
                # The counts after the write: on-hand from the fold, reserved less the holds the
                # shipments use up. The script writes only if the holds are still those read
                # here, so the status recorded with the write is the one of its counts.
                used = use_holds(held, shipments)
                before = stock.counts
                after = dict(before)
                for loc, oh in on_hand_after.items():
                    after[loc] = LocationCounts(oh, before.get(loc, LocationCounts()).reserved)
                for (loc, _, _), units in zip(shipments, used, strict=True):
                    c = after.get(loc, LocationCounts())
                    after[loc] = LocationCounts(c.on_hand, c.reserved - units)
                status = self._status_args(sku, after) if after != before else [0]
                fulfil = [x for s, u in zip(shipments, used, strict=True) for x in (*s, u)]
                args = [
                    version,
                    now_ms,
                    len(groups) // 4,
                    *groups,
                    len(shipments),
                    *fulfil,
                    *status,
                ]
                planned.append((sku, args, (outcomes, before, after)))
            else:
                result.outcomes.extend(outcomes)  # nothing to write: repeats, all of them

        # 3. One pipelined round of atomic, version-guarded writes.
        if not planned:
            return []
        replies = await self._write([(sku, args) for sku, args, _ in planned])
        conflicted = []
        for (sku, _, (outcomes, before, after)), reply in zip(planned, replies, strict=True):
            if not reply[0]:
                conflicted.append(sku)  # its outcomes are recomputed by the next attempt
                continue
            result.skus_written += 1
            result.outcomes.extend(outcomes)
            result.consumed.extend((r, loc, int(u)) for r, loc, u in orjson.loads(reply[2]))
            result.unmatched.extend((r, sku, loc) for r, loc in orjson.loads(reply[3]))
            result.changes.append(SkuChange(sku, before, after))
        return conflicted

    async def ledger_state(self, sku: str, location_id: str) -> LedgerState | None:
        raw = await self._redis.hget(keys.ledger(sku), keys.LEDGER_PREFIX + location_id)
        return None if raw is None else LedgerState.from_list(orjson.loads(raw))


@dataclass(frozen=True, slots=True)
class StockRecord:
    counts: dict[str, LocationCounts]
    inbound: dict[str, tuple[int, int]]
    updated_ms: int | None


class StockReader:
    """The API's view: what is served for a SKU, in one round trip.

    Reads go through `read_stock.lua`, which also names the units of holds past their expiry,
    so a held reservation stops counting at expires_at even before the sweeper closes it.
    """

    def __init__(self, client: aioredis.Redis):
        self._redis = client
        self._read = client.register_script(load_script("read_stock.lua"))
        self._waiting: list[tuple[str, asyncio.Future[StockRecord]]] = []
        self._batches: set[asyncio.Task[None]] = set()

    async def read(self, sku: str) -> StockRecord:
        """One SKU. Reads asked for in the same turn of the event loop go to Redis together:
        a single EVALSHA when alone, one pipeline when several. Under load, concurrent product
        pages share a round trip instead of each paying redis-py's per-call cost; alone, a
        read waits one loop turn (microseconds) longer."""
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[StockRecord] = loop.create_future()
        self._waiting.append((sku, answer))
        if len(self._waiting) == 1:
            loop.call_soon(self._send_waiting)
        return await answer

    def _send_waiting(self) -> None:
        batch, self._waiting = self._waiting, []
        task = asyncio.ensure_future(self._read_batch(batch))
        self._batches.add(task)
        task.add_done_callback(self._batches.discard)

    async def _read_batch(self, batch: list[tuple[str, asyncio.Future[StockRecord]]]) -> None:
        now = time.time_ns() // 1_000_000
        try:
            if len(batch) == 1:
                # Called directly, redis-py loads the script only after NOSCRIPT; in a
                # pipeline it would first send SCRIPT EXISTS.
                replies: list[Any] = [await self._read(keys=keys.sku_keys(batch[0][0]), args=[now])]
            else:
                calls = [(keys.sku_keys(sku), [now]) for sku, _ in batch]
                replies = await eval_replies(self._redis, self._read, calls)
        except Exception as exc:  # every waiter gets the failure
            for _, answer in batch:
                if not answer.done():
                    answer.set_exception(_read_error(exc))
            return
        except BaseException:  # cancelled (shutdown): so are the waiters
            for _, answer in batch:
                answer.cancel()
            raise
        for (_, answer), reply in zip(batch, replies, strict=True):
            if answer.done():  # its request was cancelled meanwhile
                continue
            if isinstance(reply, Exception):
                answer.set_exception(_read_error(reply))
            else:
                flat, overdue = reply
                answer.set_result(parse_stock(_pairs(flat), _pairs(overdue)))

    async def read_many(self, skus: Sequence[str]) -> list[StockRecord]:
        """Several SKUs in one pipelined round trip."""
        now = time.time_ns() // 1_000_000
        try:
            rows = await eval_pipelined(
                self._redis, self._read, [(keys.sku_keys(sku), [now]) for sku in skus]
            )
        except REDIS_DOWN as exc:
            raise StoreUnavailable(f"Redis is unavailable: {exc}") from exc
        return [parse_stock(_pairs(flat), _pairs(overdue)) for flat, overdue in rows]

    async def read_with_ledger(self, sku: str) -> tuple[StockRecord, dict[str, LedgerState]]:
        """Served counts and every location's ledger state, in one round trip (for /explain)."""
        now = time.time_ns() // 1_000_000
        try:
            (flat, overdue), ledger = await eval_pipelined(
                self._redis,
                self._read,
                [(keys.sku_keys(sku), [now])],
                then=[("HGETALL", keys.ledger(sku))],
            )
        except REDIS_DOWN as exc:
            raise StoreUnavailable(f"Redis is unavailable: {exc}") from exc
        states = {
            k.decode()[len(keys.LEDGER_PREFIX) :]: LedgerState.from_list(orjson.loads(v))
            for k, v in ledger.items()
            if k.decode().startswith(keys.LEDGER_PREFIX)
        }
        return parse_stock(_pairs(flat), _pairs(overdue)), states

    async def ping(self) -> bool:
        try:
            return bool(await self._redis.ping())
        except REDIS_DOWN:
            return False


def sum_stats(rows: Sequence[Mapping[bytes | str, bytes | str]]) -> LedgerStats:
    """The counters of every slot's stats hash, added up."""
    skus = pairs = 0
    statuses: dict[tuple[str, str], int] = defaultdict(int)
    for raw in rows:
        for k, v in raw.items():
            name = k.decode() if isinstance(k, bytes) else k
            if name == "skus":
                skus += int(v)
            elif name == "pairs":
                pairs += int(v)
            else:
                channel, _, code = name.rpartition(":")
                if code in STATUS_NAMES:
                    statuses[(channel, STATUS_NAMES[code])] += int(v)
    return LedgerStats(skus, pairs, dict(statuses))


def _read_error(exc: Exception) -> Exception:
    if isinstance(exc, REDIS_DOWN):
        return StoreUnavailable(f"Redis is unavailable: {exc}")
    return exc


async def eval_pipelined(
    client: aioredis.Redis | RedisCluster,
    script: AsyncScript,
    calls: Sequence[tuple[Sequence[Any], Sequence[Any]]],
    then: Sequence[tuple[Any, ...]] = (),
) -> list[Any]:
    """Run `script` once per (keys, args), then the plain commands `then`, in one pipeline;
    raises the first error any of them got."""
    replies = await eval_replies(client, script, calls, then)
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    return replies


async def eval_replies(
    client: aioredis.Redis | RedisCluster,
    script: AsyncScript,
    calls: Sequence[tuple[Sequence[Any], Sequence[Any]]],
    then: Sequence[tuple[Any, ...]] = (),
) -> list[Any]:
    """Run `script` once per (keys, args), then the plain commands `then`, in one pipeline;
    returns each reply, or the error the server gave that one call.

    EVALSHA straight away; only calls the server answered NOSCRIPT (it restarted, or on Redis
    Cluster a master never saw the script) are run again after loading it, so nothing runs
    twice. Works alike on one Redis and on a cluster, whose pipelines group commands by master.
    """
    async with client.pipeline(transaction=False) as pipe:
        for k, a in calls:
            pipe.execute_command("EVALSHA", script.sha, len(k), *k, *a)
        for command in then:
            pipe.execute_command(*command)
        replies = await pipe.execute(raise_on_error=False)
    missing = [i for i, r in enumerate(replies[: len(calls)]) if isinstance(r, NoScriptError)]
    if missing:
        await client.script_load(script.script)  # on a cluster: every master
        async with client.pipeline(transaction=False) as pipe:
            for i in missing:
                k, a = calls[i]
                pipe.execute_command("EVALSHA", script.sha, len(k), *k, *a)
            for i, reply in zip(missing, await pipe.execute(raise_on_error=False), strict=True):
                replies[i] = reply
    return list(replies)


def _pairs(flat: list[bytes]) -> list[tuple[bytes, bytes]]:
    return list(zip(flat[::2], flat[1::2], strict=True))


def parse_stock(
    raw: dict[bytes, bytes] | list[tuple[bytes, bytes]],
    overdue: list[tuple[bytes, bytes]] = (),  # type: ignore[assignment]
) -> StockRecord:
    """The served hash, minus the units of overdue holds (location, units) per location."""
    on_hand: dict[str, int] = {}
    reserved: dict[str, int] = {}
    inbound: dict[str, tuple[int, int]] = {}
    updated_ms = None
    items = raw.items() if isinstance(raw, dict) else raw
    for k, v in items:
        name = k.decode()
        if name.startswith(keys.ON_HAND_PREFIX):
            on_hand[name[len(keys.ON_HAND_PREFIX) :]] = int(v)
        elif name.startswith(keys.RESERVED_PREFIX):
            reserved[name[len(keys.RESERVED_PREFIX) :]] = int(v)
        elif name.startswith(keys.INBOUND_PREFIX):
            eta, qty = v.split(b":")
            inbound[name[len(keys.INBOUND_PREFIX) :]] = (int(eta), int(qty))
        elif name == keys.UPDATED_FIELD:
            updated_ms = int(v)
    for loc, units in overdue:
        name = loc.decode()
        reserved[name] = max(0, reserved.get(name, 0) - int(units))
    counts = {
        loc: LocationCounts(on_hand.get(loc, 0), reserved.get(loc, 0))
        for loc in on_hand.keys() | reserved.keys()
    }
    return StockRecord(counts, inbound, updated_ms)


# Told how long each Redis call took: ("command" or "pipeline", seconds).
CallObserver = Callable[[str, float], None]


class _TimedPipeline(aioredis.client.Pipeline):
    observe: CallObserver

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        started = time.perf_counter()
        try:
            return await super().execute(raise_on_error)
        finally:
            self.observe("pipeline", time.perf_counter() - started)


class _TimedCommands:
    """Reports the time of every single command to `observe` (mixed into a client class)."""

    observe: CallObserver

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        started = time.perf_counter()
        try:
            return await super().execute_command(*args, **options)  # type: ignore[misc]
        finally:
            self.observe("command", time.perf_counter() - started)


class _TimedRedis(_TimedCommands, aioredis.Redis):
    """A client that reports the time of every call it makes (one command, or one pipeline
    from `execute` to the last reply; a pipeline's script-loading check included)."""

    def pipeline(
        self, transaction: bool = True, shard_hint: str | None = None
    ) -> aioredis.client.Pipeline:
        pipe = _TimedPipeline(
            self.connection_pool, self.response_callbacks, transaction, shard_hint
        )
        pipe.observe = self.observe
        return pipe


class _GatedCluster(RedisCluster):
    """A cluster client with at most `in_flight` commands and pipelines running at once, each
    sent only once the client knows the slots (see `execute_command`).

    The single-node client gets the bound from its BlockingConnectionPool. redis-py's cluster
    client opens a connection per concurrent command on a master, without bound (or, bounded,
    fails at once instead of waiting). Waiting here, up to the timeout, keeps the connections
    few and reused; a request that waits longer gets MaxConnectionsError, which callers treat
    as Redis being unavailable (503). README "Redis Cluster" has what each change fixed.
    """

    _gate: asyncio.Semaphore
    _gate_timeout_s: float

    def set_gate(self, in_flight: int, timeout_s: float) -> None:
        self._gate = asyncio.Semaphore(in_flight)
        self._gate_timeout_s = timeout_s

    async def _enter_gate(self) -> None:
        try:
            await asyncio.wait_for(self._gate.acquire(), self._gate_timeout_s)
        except TimeoutError:
            raise MaxConnectionsError(
                f"no Redis connection free within {self._gate_timeout_s} s"
            ) from None

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        await self._enter_gate()
        try:
            if self._initialize:
                # redis-py picks a command's node before it learns the slots: a command sent
                # while the client is new (or re-learning) goes to a default node and is
                # MOVED. Learning the slots first sends every command where its key lives.
                await self.initialize()
            return await super().execute_command(*args, **options)
        finally:
            self._gate.release()

    def pipeline(self, transaction: Any = None, shard_hint: Any = None) -> ClusterPipeline:
        if shard_hint:
            return super().pipeline(transaction, shard_hint)  # raises, as redis-py does
        return _GatedPipeline(self, transaction)  # type: ignore[abstract]


class _GatedPipeline(ClusterPipeline):
    """A cluster pipeline that runs inside its client's gate (one slot for the whole batch)."""

    _client: _GatedCluster

    def __init__(self, client: _GatedCluster, transaction: Any = None) -> None:
        super().__init__(client, transaction)
        self._client = client

    async def execute(self, raise_on_error: bool = True, allow_redirections: bool = True) -> Any:
        await self._client._enter_gate()
        try:
            return await super().execute(raise_on_error, allow_redirections)
        finally:
            self._client._gate.release()


class _TimedCluster(_TimedCommands, _GatedCluster):
    """A cluster client that reports the time of every single command (not of pipelines)."""


CLUSTER_SCHEMES = ("redis+cluster://", "rediss+cluster://")


def is_cluster_url(url: str) -> bool:
    return url.startswith(CLUSTER_SCHEMES)


def client_from_url(
    url: str,
    timeout_s: float = 2.0,
    max_connections: int = 64,
    observe: CallObserver | None = None,
) -> aioredis.Redis:
    """A pooled asyncio client with bounded timeouts, so nothing hangs on a lost Redis.

    `redis+cluster://host:port` (or `rediss+cluster://`) names any node of a Redis Cluster: the
    client learns the others and sends each command to the master of its keys' slot. It returns
    a `RedisCluster`, which answers the same commands (typed as `Redis` for the callers), with
    the changes described in `_GatedCluster` and README "Redis Cluster".

    The pool is bounded and blocking: a burst of requests waits (up to `timeout_s`) for one of
    `max_connections` connections instead of opening hundreds, which on a busy event loop
    made connects time out. Redis runs commands one at a time anyway.

    With `observe`, the client reports the duration of every command and pipeline it runs
    (the API's Redis latency histogram).
    """
    if is_cluster_url(url):
        cls: type[_GatedCluster] = _GatedCluster if observe is None else _TimedCluster
        cluster = cast(
            _GatedCluster,
            cls.from_url(
                url.replace("+cluster", "", 1),
                socket_timeout=timeout_s,
                socket_connect_timeout=timeout_s,
                # As below: never re-send a command after a lost reply (a `take` would hold twice).
                # A command that meets a moved slot still follows the redirect.
                retry=Retry(NoBackoff(), 0),
                # A MOVED reply updates that slot's owner. redis-py would also, on every fifth,
                # close every connection, including those other requests are using (they then
                # fail with "Connection closed" or an AttributeError). Slots move seldom.
                reinitialize_steps=0,
            ),
        )
        cluster.set_gate(max_connections, timeout_s)
        if observe is not None:
            cluster.observe = observe  # type: ignore[attr-defined]
        return cluster  # type: ignore[return-value]
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=timeout_s,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        health_check_interval=30,
        # No silent re-sends: redis-py would send a command again after a dropped connection
        # (10 times by default), and a script that ran before the connection dropped would run
        # twice (a reservation's `take` would hold twice). Callers see the error instead: the
        # worker retries a whole batch (the ledger is idempotent), the API answers 503.
        retry=Retry(NoBackoff(), 0),
    )
    if observe is None:
        return aioredis.Redis.from_pool(pool)  # closing the client closes the pool too
    client = _TimedRedis(connection_pool=pool)
    client.auto_close_connection_pool = True  # as from_pool does
    client.observe = observe
    return client
