"""Every Redis key the service uses, built in one place.

All keys of one SKU carry the SKU as a hash tag (`{SKU}`), so on Redis Cluster they live in one
slot and every script touches one slot. `v1` is the schema version: a layout change gets a new
version and a migration, never a silent reinterpretation.

    atp:v1:{SKU}:ledger  hash, owned by the stream worker
        v            version, incremented by every write (guards against a stale writer)
        l:<loc>      ledger state of (SKU, loc) as compact JSON (atp.ledger.LedgerState.to_list)
    atp:v1:{SKU}:stock   hash, what the API serves
        oh:<loc>     reconciled on-hand (worker)
        rs:<loc>     units reserved by held and confirmed reservations (reservation scripts)
        ib:<loc>     next inbound as "<eta_ms>:<qty>" (worker; absent when nothing is inbound)
        ts           epoch ms of the last worker write
    atp:v1:{SKU}:holds   hash "<reservation id>@<loc>" -> units still held there
    atp:v1:{SKU}:expiry  sorted set of "<reservation id>@<loc>" of held (not confirmed)
                         reservations, scored by expires_at; reads discount the overdue ones

    atp:v1:res:{<reservation id>}  hash, one reservation (state, request, allocations, times)
    atp:v1:reservations:expiring   sorted set of held reservation ids by expires_at (sweeper)
    atp:v1:outbox                  stream of reservation events, relayed to stock.reservations
"""

from __future__ import annotations

PREFIX = "atp:v1"

VERSION_FIELD = "v"
UPDATED_FIELD = "ts"
LEDGER_PREFIX = "l:"
ON_HAND_PREFIX = "oh:"
RESERVED_PREFIX = "rs:"
INBOUND_PREFIX = "ib:"


def ledger(sku: str) -> str:
    return f"{PREFIX}:{{{sku}}}:ledger"


def stock(sku: str) -> str:
    return f"{PREFIX}:{{{sku}}}:stock"


def holds(sku: str) -> str:
    return f"{PREFIX}:{{{sku}}}:holds"


def expiry(sku: str) -> str:
    return f"{PREFIX}:{{{sku}}}:expiry"


def reservation(reservation_id: str) -> str:
    return f"{PREFIX}:res:{{{reservation_id}}}"


EXPIRING = f"{PREFIX}:reservations:expiring"
OUTBOX = f"{PREFIX}:outbox"


def sku_keys(sku: str) -> list[str]:
    """The keys a reservation script needs for one SKU, in the order the scripts expect."""
    return [stock(sku), holds(sku), expiry(sku)]


def ledger_keys(sku: str) -> list[str]:
    """The keys `apply_ledger.lua` needs for one SKU, in its order."""
    return [ledger(sku), stock(sku), holds(sku), expiry(sku)]
