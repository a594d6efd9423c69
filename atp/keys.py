"""Every Redis key the service uses, built in one place.

All keys of one SKU carry the SKU as a hash tag (`{SKU}`), so on Redis Cluster they live in one
slot and every script touches one slot. `v1` is the schema version: a layout change gets a new
version and a migration, never a silent reinterpretation.

    atp:v1:{SKU}:ledger  hash, owned by the stream worker
        v            version, incremented by every write (guards against a stale writer)
        l:<loc>      ledger state of (SKU, loc) as compact JSON (atp.ledger.LedgerState.to_list)
    atp:v1:{SKU}:stock   hash, what the API serves
        oh:<loc>     reconciled on-hand (worker)
        rs:<loc>     reserved units (owned by the API's reservation scripts)
        ib:<loc>     next inbound as "<eta_ms>:<qty>" (worker; absent when nothing is inbound)
        ts           epoch ms of the last worker write
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
