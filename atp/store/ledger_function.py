"""The ledger's Redis Function: atp/store/lua/ledger/apply.lua with the network filled in.

A SKU's status per channel is recorded in the same atomic call that moves its counts, so the
function must know each channel's locations, low-stock threshold and safety stock. They are
compiled into the library as a Lua table (built once, when the library loads; an EVAL script
would build it on every call). The library and its function are named after a digest of the
code, so workers with different network files (during a rolling change) call their own, and a
changed file loads a new one. FUNCTION LOAD goes to every master; a master that answers
"Function not found" (restarted from an old AOF, a new node, `FUNCTION FLUSH`) gets it loaded
again and the calls are sent again, so nothing runs twice.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from importlib import resources
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from atp.core.network import Network, SafetyRules


def _first(*values: int | None) -> int | None:
    return next((v for v in values if v is not None), None)


def channel_spec(network: Network | None) -> list[dict[str, Any]]:
    """Per channel: id, low-stock threshold, and the safety stock by level, resolved as
    `Network.safety_rule` resolves it (a channel's rule beats the network-wide one at each
    level): `base` per member location (its location or type rule, else 0), `sku` per SKU
    with a SKU rule, `pair` per SKU and location with a (SKU, location) rule."""
    if network is None:
        return []
    spec = []
    for channel_id, channel in network.channels.items():
        scoped = network.channel_safety.get(channel_id, SafetyRules())
        common = network.safety
        base = {}
        for loc in network.channel_locations(channel_id):
            units = _first(
                scoped.by_location.get(loc.id),
                common.by_location.get(loc.id),
                scoped.by_type.get(loc.type),
                common.by_type.get(loc.type),
            )
            base[loc.id] = units or 0
        skus = {
            sku: units
            for sku in {*common.by_sku, *scoped.by_sku}
            if (units := _first(scoped.by_sku.get(sku), common.by_sku.get(sku))) is not None
        }
        pairs: dict[str, dict[str, int]] = {}
        for sku, loc_id in {*common.by_sku_location, *scoped.by_sku_location}:
            units = _first(
                scoped.by_sku_location.get((sku, loc_id)), common.by_sku_location.get((sku, loc_id))
            )
            if units is not None:
                pairs.setdefault(sku, {})[loc_id] = units
        spec.append(
            {
                "id": channel_id,
                "low": channel.low_stock_threshold,
                "base": base,
                "sku": skus,
                "pair": pairs,
            }
        )
    return spec


def lua_literal(value: Any) -> str:
    """A Lua constructor for JSON-like data: dicts, lists, str, int."""
    if isinstance(value, bool):
        raise TypeError("no booleans in the spec")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return _lua_string(value)
    if isinstance(value, Mapping):
        items = sorted(value.items())
        return "{" + ",".join(f"[{lua_literal(k)}]={lua_literal(v)}" for k, v in items) + "}"
    if isinstance(value, list):
        return "{" + ",".join(lua_literal(v) for v in value) + "}"
    raise TypeError(f"cannot write {value!r} as Lua")


def _lua_string(text: str) -> str:
    out = []
    for byte in text.encode("utf-8"):
        if byte in (0x22, 0x5C) or byte < 0x20 or byte == 0x7F:  # " \ and control bytes
            out.append(f"\\{byte:03d}")
        else:
            out.append(chr(byte) if byte < 0x80 else f"\\{byte:03d}")
    return '"' + "".join(out) + '"'


class LedgerFunction:
    """The library for one network: its code, its function's name, and loading it."""

    def __init__(self, network: Network | None) -> None:
        template = (
            resources.files("atp.store")
            .joinpath("lua", "ledger", "apply.lua")
            .read_text(encoding="utf-8")
        )
        body = template.replace("__CHANNELS__", lua_literal(channel_spec(network)))
        digest = hashlib.sha1(body.encode()).hexdigest()[:16]
        self.library = f"atp_ledger_{digest}"
        self.name = f"atp_ledger_apply_{digest}"
        self.code = body.replace("__LIBRARY__", self.library).replace("__FUNCTION__", self.name)

    async def load(self, client: aioredis.Redis) -> None:
        """Load (or replace) the library on every master."""
        await client.function_load(self.code, replace=True)


def is_missing_function(reply: object) -> bool:
    return isinstance(reply, ResponseError) and "function not found" in str(reply).lower()
