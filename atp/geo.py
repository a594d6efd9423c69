"""US ZIP codes to coordinates (offline, from the `zipcodes` data package) and distances."""

from __future__ import annotations

import math
from functools import lru_cache

EARTH_RADIUS_KM = 6371.0088


@lru_cache(maxsize=1)
def _zip_table() -> dict[str, tuple[float, float]]:
    import zipcodes  # loads its bundled data once (about 0.4 s)

    table = {}
    for z in zipcodes.list_all():
        try:
            table[z["zip_code"]] = (float(z["lat"]), float(z["long"]))
        except (KeyError, TypeError, ValueError):
            continue
    return table


def zip_coordinates(postal_code: str) -> tuple[float, float] | None:
    """(lat, lon) of a 5-digit US ZIP code, or None when it is not a known ZIP."""
    return _zip_table().get(postal_code)


def distance_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle (haversine) distance."""
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(h))
