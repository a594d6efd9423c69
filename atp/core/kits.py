"""Kits and bundles: the catalogue that defines them, and what a kit's availability is. Pure.

A kit is sold as one SKU and made of components held as stock of their own. Its availability
at a location is the minimum over its components of floor(component ATP / quantity), each
component's ATP with its own safety stock for the channel; a channel's is the sum over the
channel's locations, as for any SKU (atp.core.availability).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from atp.core.availability import (
    NO_COUNTS,
    ChannelAvailability,
    LocationAvailability,
    LocationCounts,
    location_atp,
    summed,
)
from atp.core.errors import CatalogConfigError
from atp.core.movements import is_valid_identifier
from atp.core.network import Location, Network

MAX_COMPONENTS = 50  # a kit is checked component by component on every read


@dataclass(frozen=True, slots=True)
class Component:
    sku: str
    quantity: int  # units of the component in one kit


@dataclass(frozen=True, slots=True)
class Catalog:
    """What the catalogue file defines: kits by SKU, each with its components in file order."""

    kits: Mapping[str, tuple[Component, ...]]

    def components(self, sku: str) -> tuple[Component, ...] | None:
        """The kit's components; None when `sku` is not a kit."""
        return self.kits.get(sku)

    @classmethod
    def from_dict(cls, data: Any) -> Catalog:
        """Validate what a YAML loader produced; every error names the entry it is about."""
        if data is None:
            return EMPTY_CATALOG
        if not isinstance(data, Mapping):
            raise CatalogConfigError("<root>", "expected a mapping (with `kits`)")
        unknown = sorted(str(k) for k in data if k != "kits")
        if unknown:
            raise CatalogConfigError(unknown[0], "unknown key (the catalogue has `kits`)")
        raw_kits = data.get("kits")
        raw_kits = {} if raw_kits is None else raw_kits
        if not isinstance(raw_kits, Mapping):
            raise CatalogConfigError("kits", "expected a mapping of kit SKU to its components")
        kits = {str(sku): _components(f"kits.{sku}", raw) for sku, raw in raw_kits.items()}
        for sku, parts in kits.items():
            if not is_valid_identifier(sku):
                raise CatalogConfigError(f"kits.{sku}", "a SKU is 1 to 128 printable characters")
            for i, part in enumerate(parts):
                if part.sku in kits:
                    why = "is itself a kit" if part.sku != sku else "is the kit itself"
                    raise CatalogConfigError(
                        f"kits.{sku}[{i}].sku", f"{part.sku!r} {why}: components are plain SKUs"
                    )
        return cls(kits)


EMPTY_CATALOG = Catalog({})


def _components(where: str, raw: Any) -> tuple[Component, ...]:
    if not isinstance(raw, list) or not raw:
        raise CatalogConfigError(where, "expected a non-empty list of {sku, quantity}")
    if len(raw) > MAX_COMPONENTS:
        raise CatalogConfigError(where, f"at most {MAX_COMPONENTS} components")
    out: list[Component] = []
    for i, part in enumerate(raw):
        at = f"{where}[{i}]"
        if not isinstance(part, Mapping) or set(part) - {"sku", "quantity"}:
            raise CatalogConfigError(at, "expected {sku, quantity} and nothing else")
        sku, qty = part.get("sku"), part.get("quantity", 1)
        if not isinstance(sku, str) or not is_valid_identifier(sku):
            raise CatalogConfigError(f"{at}.sku", "a SKU is 1 to 128 printable characters")
        if isinstance(qty, bool) or not isinstance(qty, int) or qty < 1:
            raise CatalogConfigError(f"{at}.quantity", "expected a whole number of at least 1")
        if any(c.sku == sku for c in out):
            raise CatalogConfigError(f"{at}.sku", f"{sku!r} is listed twice in the kit")
        out.append(Component(sku, qty))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class ComponentTerms:
    """One component at one location: its own ATP for the channel and how many kits it makes."""

    sku: str
    quantity: int
    on_hand: int
    reserved: int
    safety_stock: int
    atp: int
    kits: int  # atp // quantity


@dataclass(frozen=True, slots=True)
class KitAt:
    """A kit at one location, in kits: `on_hand` what the components on hand make, `reserved`
    what their holds take of that, `safety_stock` what their safety stock takes of the rest,
    so `atp = on_hand - reserved - safety_stock` as for any SKU. `limiting`: the component
    that makes the fewest (the first of those in the catalogue's order)."""

    location: Location
    on_hand: int
    reserved: int
    safety_stock: int
    atp: int
    limiting: str
    components: tuple[ComponentTerms, ...]


def kit_at(
    network: Network,
    channel_id: str | None,
    loc: Location,
    parts: Sequence[Component],
    counts: Mapping[str, Mapping[str, LocationCounts]],
) -> KitAt:
    """The kit at `loc` for the channel, from its components' counts ({sku: {loc: counts}})."""
    terms = []
    for part in parts:
        c = counts.get(part.sku, {}).get(loc.id, NO_COUNTS)
        safety = network.safety_stock(part.sku, loc, channel_id)
        atp = location_atp(c.on_hand, c.reserved, safety)
        terms.append(
            ComponentTerms(
                part.sku, part.quantity, c.on_hand, c.reserved, safety, atp, atp // part.quantity
            )
        )
    q = [t.quantity for t in terms]
    made = min(max(0, t.on_hand) // n for t, n in zip(terms, q, strict=True))
    free = min(max(0, t.on_hand - t.reserved) // n for t, n in zip(terms, q, strict=True))
    atp = min(t.kits for t in terms)
    limiting = next(t.sku for t in terms if t.kits == atp)
    return KitAt(loc, made, made - free, free - atp, atp, limiting, tuple(terms))


def kit_availability(
    network: Network,
    channel_id: str,
    kit_sku: str,
    parts: Sequence[Component],
    counts: Mapping[str, Mapping[str, LocationCounts]],
    updated_ms: int | None,
) -> ChannelAvailability:
    """The kit's availability on the channel: its locations' kits summed, as
    atp.core.availability.channel_availability sums a SKU's. No future supply: a kit is
    promised from stock on hand."""
    rows = []
    for loc in network.channel_locations(channel_id):
        k = kit_at(network, channel_id, loc, parts, counts)
        rows.append(
            LocationAvailability(loc.id, loc.type, k.on_hand, k.reserved, k.safety_stock, k.atp)
        )
    return summed(network, channel_id, kit_sku, rows, updated_ms)
