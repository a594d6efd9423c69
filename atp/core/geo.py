"""US ZIP codes to coordinates (offline, from the `zipcodes` data package) and distances."""

from __future__ import annotations

import math
from functools import lru_cache

EARTH_RADIUS_KM = 6371.0088
ZIP_PATTERN = r"\d{5}"  # a US ZIP code, as the network file and requests give it


@lru_cache(maxsize=1)
def _zip_table() -> dict[str, tuple[float, float, str]]:
    """ZIP -> (lat, lon, IANA time zone or "")."""
    import zipcodes  # loads its bundled data once (about 0.4 s)

    table = {}
    for z in zipcodes.list_all():  # type: ignore[no-untyped-call]
        try:
            table[z["zip_code"]] = (float(z["lat"]), float(z["long"]), z.get("timezone") or "")
        except (KeyError, TypeError, ValueError):
            continue
    return table


@lru_cache(maxsize=1)
def _zone_grid() -> dict[tuple[int, int], list[tuple[float, float, str]]]:
    """ZIPs that know their time zone, by whole-degree cell, for nearest-ZIP lookups."""
    grid: dict[tuple[int, int], list[tuple[float, float, str]]] = {}
    for lat, lon, zone in _zip_table().values():
        if zone:
            grid.setdefault((math.floor(lat), math.floor(lon)), []).append((lat, lon, zone))
    return grid


def zip_coordinates(postal_code: str) -> tuple[float, float] | None:
    """(lat, lon) of a 5-digit US ZIP code, or None when it is not a known ZIP."""
    found = _zip_table().get(postal_code)
    return None if found is None else (found[0], found[1])


def zip_timezone(postal_code: str) -> str | None:
    """The IANA time zone of a ZIP code; for the few without one, that of the nearest ZIP."""
    found = _zip_table().get(postal_code)
    if found is None:
        return None
    return found[2] or nearest_timezone((found[0], found[1]))


def nearest_timezone(point: tuple[float, float], max_km: float = 300.0) -> str | None:
    """The time zone of the ZIP nearest to a point, or None when none is within `max_km`
    (a point at sea or outside the US)."""
    grid = _zone_grid()
    cell = (math.floor(point[0]), math.floor(point[1]))
    best: tuple[float, str] | None = None
    for ring in range(4):  # a degree of latitude is about 111 km
        for dlat in range(-ring, ring + 1):
            for dlon in range(-ring, ring + 1):
                if max(abs(dlat), abs(dlon)) != ring:
                    continue
                for lat, lon, zone in grid.get((cell[0] + dlat, cell[1] + dlon), ()):
                    km = distance_km(point, (lat, lon))
                    if best is None or km < best[0]:
                        best = (km, zone)
        if best is not None and best[0] <= ring * 80:  # nothing in a further ring is nearer
            break
    return best[1] if best is not None and best[0] <= max_km else None


def distance_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle (haversine) distance."""
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(h))
