"""Server-side scripts: loaded from atp/store/lua/, run by SHA, loaded on NOSCRIPT only."""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

# The preludes a group's scripts are given, in order: their own group's, except reserve/, which
# does in one step what record/ and hold/ do in several.
PRELUDES = {"reserve": ("record", "hold")}


def load_script(name: str) -> str:
    """A script shipped in atp/store/lua/, e.g. `hold/take.lua`: its first line (the shebang
    that declares what it may do: `#!lua`, or `#!lua flags=no-writes` for a read), then its
    group's `_prelude.lua` (the helpers and KEYS/ARGV its scripts share; PRELUDES), then the
    rest.

    The shebang matters when Redis is out of memory: a script that may write is refused before
    it runs (nothing half done), a read goes on."""
    root = resources.files("atp.store").joinpath("lua")
    source = root.joinpath(name).read_text(encoding="utf-8")
    shebang, _, body = source.partition("\n")
    if not shebang.startswith("#!lua"):
        raise ValueError(f"{name}: the first line must be #!lua (with its flags)")
    group, _, _ = name.rpartition("/")
    if group:
        preludes = [
            root.joinpath(part, "_prelude.lua").read_text(encoding="utf-8")
            for part in PRELUDES.get(group, (group,))
        ]
        body = "\n".join([*preludes, body])
    return shebang + "\n" + body


class Scripts:
    """The service's scripts on one client, each registered once (redis-py keeps its SHA and
    loads it on NOSCRIPT)."""

    def __init__(self, client: aioredis.Redis | RedisCluster) -> None:
        self._client = client
        self._registered: dict[str, AsyncScript] = {}

    def __getitem__(self, name: str) -> AsyncScript:
        script = self._registered.get(name)
        if script is None:
            script = self._registered[name] = self._client.register_script(load_script(name))
        return script


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
