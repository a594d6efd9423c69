"""Redis clients: bounded pools and timeouts, no silent re-sends, Redis Cluster's changes, and
the errors that mean Redis cannot answer now."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any, cast

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterPipeline, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import (
    ClusterDownError,
    MaxConnectionsError,
    OutOfMemoryError,
    SlotNotCoveredError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from atp.core.errors import StoreFull, StoreUnavailable
from atp.settings import Settings

# Redis (or, on a cluster, the master of a key's slot) cannot take this now; worth trying later.
# Out of memory (maxmemory, noeviction) too: writes wait until memory is freed, reads go on.
REDIS_DOWN = (
    RedisConnectionError,
    RedisTimeoutError,
    OSError,
    ClusterDownError,
    SlotNotCoveredError,
    OutOfMemoryError,
)


def unavailable(exc: BaseException) -> StoreUnavailable:
    """The error callers see when Redis cannot take the call (503 in the API)."""
    if isinstance(exc, OutOfMemoryError):
        return StoreFull(
            "Redis is out of memory (maxmemory reached): reads go on, new holds and stock "
            "updates wait until memory is freed or maxmemory is raised"
        )
    return StoreUnavailable(f"Redis is unavailable: {exc}")


@contextlib.contextmanager
def unavailable_as_error() -> Iterator[None]:
    """Redis trouble inside the block becomes `StoreUnavailable`."""
    try:
        yield
    except REDIS_DOWN as exc:
        raise unavailable(exc) from exc


# Told how long each Redis call took: ("command" or "pipeline", seconds).
CallObserver = Callable[[str, float], None]


# A connection that failed (not an error answer): the others to the same server likely did too.
_DEAD = (RedisConnectionError, RedisTimeoutError, OSError)


class _Pipeline(aioredis.client.Pipeline):
    """A pipeline of `_Redis`: timed when the client is, and dropping idle connections when
    its own one fails."""

    observe: CallObserver | None = None
    client: _Redis

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        started = time.perf_counter()
        try:
            return await super().execute(raise_on_error)
        except _DEAD:
            await self.client.drop_idle()
            raise
        finally:
            if self.observe is not None:
                self.observe("pipeline", time.perf_counter() - started)


class _Redis(aioredis.Redis):
    """The single-node client. When a connection fails it also closes the pool's idle ones:
    they were opened to the same server and are likely dead too (after a restart, every one
    of them), and each would fail the next request that took it, long after Redis was back.
    With `observe`, it reports the time of every call (one command, or one pipeline from
    `execute` to the last reply; a pipeline's script-loading check included)."""

    observe: CallObserver | None = None

    async def drop_idle(self) -> None:
        await self.connection_pool.disconnect(inuse_connections=False)

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        started = time.perf_counter()
        try:
            return await super().execute_command(*args, **options)
        except _DEAD:
            await self.drop_idle()
            raise
        finally:
            if self.observe is not None:
                self.observe("command", time.perf_counter() - started)

    def pipeline(
        self, transaction: bool = True, shard_hint: str | None = None
    ) -> aioredis.client.Pipeline:
        pipe = _Pipeline(self.connection_pool, self.response_callbacks, transaction, shard_hint)
        pipe.observe = self.observe
        pipe.client = self
        return pipe


class _TimedCommands:
    """Reports the time of every single command to `observe` (mixed into the cluster client)."""

    observe: CallObserver

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        started = time.perf_counter()
        try:
            return await super().execute_command(*args, **options)  # type: ignore[misc]
        finally:
            self.observe("command", time.perf_counter() - started)


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
        # Not asyncio.wait_for: on Python 3.11 it returns the acquired slot, and drops the
        # cancellation, when its caller is cancelled as the semaphore is granted; a cancelled
        # task (the API's live streams at shutdown) then ran on. asyncio.timeout keeps it.
        try:
            async with asyncio.timeout(self._gate_timeout_s):
                await self._gate.acquire()
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

    async def _determine_slot(self, command: str, *args: Any) -> int:
        # redis-py asks the server (COMMAND GETKEYS, a round trip) for the keys of FCALL, whose
        # keys follow numkeys as EVALSHA's do; it reads EVALSHA's itself. The ledger's
        # function touches one slot, so its first key names it.
        if command.upper() == "FCALL" and len(args) > 2 and int(args[1]) > 0:
            return self.keyslot(args[2])
        return await super()._determine_slot(command, *args)  # type: ignore[no-any-return]

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


def connection_options(settings: Settings) -> dict[str, Any]:
    """The ACL user and TLS of the settings, as redis-py takes them (over what the URL says)."""
    options: dict[str, Any] = {}
    if settings.redis_username:
        options["username"] = settings.redis_username
    if settings.redis_password.get_secret_value():
        options["password"] = settings.redis_password.get_secret_value()
    if settings.redis_url.startswith(("rediss://", "rediss+cluster://")):
        options["ssl_check_hostname"] = settings.redis_ssl_check_hostname
        if settings.redis_ssl_cafile is not None:
            options["ssl_ca_certs"] = str(settings.redis_ssl_cafile)
        if settings.redis_ssl_certfile is not None:
            options["ssl_certfile"] = str(settings.redis_ssl_certfile)
            options["ssl_keyfile"] = str(settings.redis_ssl_keyfile)
    return options


def client_for(settings: Settings, **kwargs: Any) -> aioredis.Redis:
    """`client_from_url` for ATP_REDIS_URL, with the settings' ACL user and TLS."""
    return client_from_url(settings.redis_url, **kwargs, **connection_options(settings))


def client_from_url(
    url: str,
    timeout_s: float = 2.0,
    max_connections: int = 64,
    observe: CallObserver | None = None,
    **connection: Any,
) -> aioredis.Redis:
    """A pooled asyncio client with bounded timeouts, so nothing hangs on a lost Redis.

    `redis+cluster://host:port` (or `rediss+cluster://`) names any node of a Redis Cluster: the
    client learns the others and sends each command to the master of its keys' slot: a
    `RedisCluster` (typed as `Redis` for the callers), with the changes of `_GatedCluster`.

    The pool is bounded and blocking: a burst of requests waits (up to `timeout_s`) for one of
    `max_connections` connections instead of opening hundreds (on a busy event loop connects
    then timed out); Redis runs commands one at a time anyway.

    With `observe`, the client reports the duration of every command and pipeline it runs
    (the API's Redis latency histogram); `connection` goes to each connection (TLS, user).
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
                **connection,
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
        **connection,
    )
    client = _Redis(connection_pool=pool)
    client.auto_close_connection_pool = True  # closing the client closes the pool, as from_pool
    client.observe = observe
    return client
