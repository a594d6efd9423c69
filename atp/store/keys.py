"""Every Redis key the service uses, built in one place.

Every script touches keys of one hash slot only, so the same scripts run on one Redis and on
Redis Cluster. `v2` is the schema version: a layout change gets a new version and a migration,
never a silent reinterpretation (docs/operations.md, Upgrades).

Each structure's name carries the version of its layout. The ledger's is v3 (incremental
structures, written only by atp/store/lua/ledger/apply.lua); the rest is v2. A v2 ledger
(one JSON value per pair) is converted by `atp migrate` (atp/store/migrate.py), and the v3
function refuses a SKU that still has one.

Per SKU, hash tag `{SKU}` (one slot per SKU):

    atp:v3:{SKU}:ledger  hash, owned by the stream worker
        l:<loc>      summary of (SKU, loc): "base_qty,base_ms,count_ms,last_ms,,,count_id",
                     rewritten only when the base, the last count or the inbound changes
                     (atp.store.summaries: the kept deltas' sum is oh:<loc> - base_qty, their
                     number ZCARD d, the last movement the newer of last_ms and d's newest;
                     fields 5 and 6 held that sum and number before 2026-12-05)
        s:<channel>  the SKU's recorded status on the channel (i, l, o), moves the counters
    atp:v3:{SKU}:d:<loc>  sorted set: event ids of the deltas kept after the base, by time
    atp:v3:{SKU}:t:<loc>  hash: occurred_ms -> the kept deltas' summed qty at that time
    atp:v3:{SKU}:n:<loc>  hash: ASN id -> "eta_ms:qty" expected inbound
    atp:v3:{SKU}:rt:<loc> hash: ASN id -> occurred_ms of the newest kept receipt naming it
    atp:v3:{SKU}:j:<loc>  list: the pair's newest movements, newest first, at most
                          ATP_JOURNAL_ENTRIES (atp.core.journal.Entry, encoded)
    atp:v3:{SKU}:q:<loc>, r:<loc>  before 2026-12-05: the kept deltas' qty by event id and
                          the kept receipts per ASN; ledger/apply.lua converts them into t
                          and rt when it first loads the pair
    atp:v2:{SKU}:ledger  the v2 ledger (JSON per pair); must not exist beside v3
    atp:v2:{SKU}:stock   hash, what the API serves
        oh:<loc>     reconciled on-hand (worker)
        rs:<loc>     units reserved by held and confirmed reservations (reservation scripts)
        ib:<loc>     next inbound as "<eta_ms>:<qty>" (worker; absent when nothing is inbound)
        fu:<loc>     the inbound expected after it, "<eta_ms>:<qty>,..." by eta (worker;
                     absent when none)
        ts           epoch ms of the last worker write
    atp:v2:{SKU}:holds   hash "<reservation id>@<loc>" -> units still held there
    atp:v2:{SKU}:expiry  sorted set of "<reservation id>@<loc>" of held (not confirmed)
                         reservations, scored by expires_at; reads discount the overdue ones
    atp:v2:{SKU}:moved:<id>@<transfer id>  a transfer of the reservation's holds that moved
                         (hold/transfer.lua), so a retry does not move twice; expires
    atp:v2:{SKU}:changed:<id>@<change id>@<attempt>  hash: what an attempt at a change of the
                         reservation's quantities held and gave back of this SKU
                         (hold/change.lua), so a retry does neither twice; expires

Per hash slot, hash tag `{<slot tag>}` chosen so that the key lives in that slot:

    atp:v2:{<tag>}:stats  hash, the ledger's counters for the SKUs of that slot (skus, pairs,
                          <channel>:<status code>); ledger/apply.lua keeps the one in its SKU's
                          slot, readers sum all of them (`stats_keys()`, at most 16,384)

Per reservation shard, hash tag `{r<n>}` with n = crc32(reservation id) mod 16:

    atp:v2:{r<n>}:res:<id>     hash, one reservation (state, request, allocations, times)
    atp:v2:{r<n>}:expiring     sorted set of the shard's held reservation ids by expires_at
    atp:v2:{r<n>}:outbox       stream of the shard's reservation events (-> stock.reservations)
    atp:v2:{r<n>}:pending      sorted set of the shard's pending reservation ids by when a
                               repeat may take over (abandoned then by the sweeper)

A reservation's record, its index entry and its event share a slot, so each state change is one
atomic script; its holds live in the SKUs' slots and are changed by per-SKU scripts (the saga in
atp/store/reservations.py).

    atp:v2:{<tag>}:fence       one per master (a tag of a slot it owns): atp/store/durability.py

    atp:v2:{progress}:<group>  hash "<hop>/<topic>/<partition>" -> how far that hop has got on
                               that partition (atp.core.freshness.PartitionProgress.encode),
                               written every second by the worker that owns it

    atp:v2:{feed}:availability stream of (sku, channel) whose answer may have changed: the
                               worker's change events and the API's reservation changes, for
                               the API's live streams (atp/store/feed.py); capped

Webhooks, hash tag `{wh}` (one slot: a subscription's changes are one MULTI; atp/store/webhooks.py):

    atp:v2:{wh}:subs           hash, subscription id -> its JSON (url, events, format, secret)
    atp:v2:{wh}:due:<id>       sorted set, message id -> when its next attempt is due (ms)
    atp:v2:{wh}:msg:<id>       hash, message id -> the pending message (envelope, attempts)
    atp:v2:{wh}:log:<id>       list, the newest attempts first (capped)
    atp:v2:{wh}:failed:<id>    list, the messages given up on, newest first (capped)
    atp:v2:{wh}:lease:<id>     string, the worker that sends the subscription's messages
"""

from __future__ import annotations

import binascii
import zlib
from functools import cache

PREFIX = "atp:v2"
LEDGER_V3 = "atp:v3"

VERSION_FIELD = "v"
UPDATED_FIELD = "ts"
LEDGER_PREFIX = "l:"
ON_HAND_PREFIX = "oh:"
RESERVED_PREFIX = "rs:"
INBOUND_PREFIX = "ib:"
LATER_INBOUND_PREFIX = "fu:"

SLOTS = 16384
# Shards of the reservation records, indexes and outboxes. 16 spreads them over up to 16
# masters; every worker's relay and the API's sweeper read all of them.
RESERVATION_SHARDS = 16


def ledger(sku: str) -> str:
    """The SKU's ledger hash (v3): pair summaries, statuses, writes so far."""
    return f"{LEDGER_V3}:{{{sku}}}:ledger"


def ledger_v2(sku: str) -> str:
    """The v2 ledger hash of a SKU (only `atp migrate` reads it)."""
    return f"{PREFIX}:{{{sku}}}:ledger"


PAIR_PARTS = ("d", "t", "n", "rt")
OLDER_PAIR_PARTS = ("q", "r")


def pair_keys(sku: str, location_id: str) -> list[str]:
    """A pair's deltas by time, their sums per time, inbound and receipts (ledger/apply.lua)."""
    tag = f"{LEDGER_V3}:{{{sku}}}"
    return [f"{tag}:{part}:{location_id}" for part in PAIR_PARTS]


def older_pair_keys(sku: str, location_id: str) -> list[str]:
    """The first v3 writer's quantities by event id and receipts per ASN (converted)."""
    tag = f"{LEDGER_V3}:{{{sku}}}"
    return [f"{tag}:{part}:{location_id}" for part in OLDER_PAIR_PARTS]


def stock(sku: str) -> str:
    return f"{PREFIX}:{{{sku}}}:stock"


def holds(sku: str) -> str:
    return f"{PREFIX}:{{{sku}}}:holds"


def expiry(sku: str) -> str:
    return f"{PREFIX}:{{{sku}}}:expiry"


def shipped(sku: str) -> str:
    """Units shipments used up of open reservations' holds, by hold member `<rid>@<loc>`
    (ledger/apply.lua adds; a reservation's close copies its own into its record and drops them)."""
    return f"{PREFIX}:{{{sku}}}:shipped"


def transfer_mark(sku: str, reservation_id: str, transfer_id: str) -> str:
    """Set when a transfer of a reservation's holds of this SKU moved (hold/transfer.lua)."""
    return f"{PREFIX}:{{{sku}}}:moved:{reservation_id}@{transfer_id}"


def mark_ttl_ms(replay_ttl_ms: int) -> int:
    """How long a transfer's or change's marks are kept once it is done: as long as replays
    are answered, and at least an hour (a runner that stalled may still come back)."""
    return max(replay_ttl_ms, 3_600_000)


def change_mark(sku: str, reservation_id: str, change_id: str, attempt: int | str) -> str:
    """What an attempt at a change of a reservation did to this SKU's holds (hold/change.lua)."""
    return f"{PREFIX}:{{{sku}}}:changed:{reservation_id}@{change_id}@{attempt}"


def sku_keys(sku: str) -> list[str]:
    """The keys a per-SKU reservation script needs, in the order the scripts expect."""
    return [stock(sku), holds(sku), expiry(sku)]


def journal(sku: str, location_id: str) -> str:
    """A pair's newest movements, newest first (atp.core.journal; ledger/apply.lua)."""
    return f"{LEDGER_V3}:{{{sku}}}:j:{location_id}"


def ledger_keys(sku: str, location_ids: list[str]) -> list[str]:
    """The keys ledger/apply.lua needs for one SKU and these locations, in its order."""
    out = [ledger(sku), stock(sku), holds(sku), expiry(sku), stats(sku), ledger_v2(sku)]
    for loc in location_ids:
        out += [*pair_keys(sku, loc), *older_pair_keys(sku, loc), journal(sku, loc)]
    return [*out, shipped(sku)]


def key_slot(key: str) -> int:
    """The Redis Cluster slot of a key (CRC16 of its hash tag, or of the key without one)."""
    start = key.find("{")
    if start != -1:
        end = key.find("}", start + 1)
        if end > start + 1:
            key = key[start + 1 : end]
    return binascii.crc_hqx(key.encode(), 0) % SLOTS


@cache
def slot_tags() -> tuple[str, ...]:
    """A short hash tag for every slot: `slot_tags()[s]` hashes to slot s (computed once,
    about 170,000 CRC16s)."""
    tags: list[str | None] = [None] * SLOTS
    left, n = SLOTS, 0
    while left:
        tag = f"s{n}"
        slot = binascii.crc_hqx(tag.encode(), 0) % SLOTS
        if tags[slot] is None:
            tags[slot] = tag
            left -= 1
        n += 1
    return tuple(t for t in tags if t is not None)


def stats(sku: str) -> str:
    """The counters hash in the slot of the SKU's keys."""
    return stats_of_slot(key_slot(ledger(sku)))


def stats_of_slot(slot: int) -> str:
    return f"{PREFIX}:{{{slot_tags()[slot]}}}:stats"


def stats_keys() -> list[str]:
    """Every counters hash, one per slot (readers sum them)."""
    return [stats_of_slot(s) for s in range(SLOTS)]


def fence(slot: int) -> str:
    """A key in `slot` for a fence (atp/store/durability.py) on the master owning it."""
    return f"{PREFIX}:{{{slot_tags()[slot]}}}:fence"


def progress(group_id: str) -> str:
    """The stream's progress per hop and partition, for `behind_ms` (atp/core/freshness.py)."""
    return f"{PREFIX}:{{progress}}:{group_id}"


def feed() -> str:
    """The live streams' change feed (atp/store/feed.py)."""
    return f"{PREFIX}:{{feed}}:availability"


def shard(reservation_id: str) -> int:
    return zlib.crc32(reservation_id.encode()) % RESERVATION_SHARDS


def _shard_tag(n: int) -> str:
    return f"{PREFIX}:{{r{n}}}"


def reservation(reservation_id: str) -> str:
    return f"{_shard_tag(shard(reservation_id))}:res:{reservation_id}"


def expiring(n: int) -> str:
    """The held reservations of shard n by expires_at (the sweeper reads every shard)."""
    return f"{_shard_tag(n)}:expiring"


def outbox(n: int) -> str:
    """The reservation events of shard n (the relay reads every shard)."""
    return f"{_shard_tag(n)}:outbox"


def pending(n: int) -> str:
    """The pending reservations of shard n by when a repeat may take over (the sweeper gives
    back what they hold then: their attempt got no answer and nobody asked again)."""
    return f"{_shard_tag(n)}:pending"


def record_keys(reservation_id: str) -> list[str]:
    """A reservation's record, its shard's expiring index, outbox and pending index: one slot."""
    n = shard(reservation_id)
    return [reservation(reservation_id), expiring(n), outbox(n), pending(n)]


EXPIRINGS = [expiring(n) for n in range(RESERVATION_SHARDS)]
PENDINGS = [pending(n) for n in range(RESERVATION_SHARDS)]
OUTBOXES = [outbox(n) for n in range(RESERVATION_SHARDS)]


WEBHOOKS = f"{PREFIX}:{{wh}}"


def webhook_subscriptions() -> str:
    return f"{WEBHOOKS}:subs"


def webhook_keys(subscription_id: str) -> dict[str, str]:
    """A subscription's due index, pending messages, attempt log, failures and lease."""
    return {
        p: f"{WEBHOOKS}:{p}:{subscription_id}" for p in ("due", "msg", "log", "failed", "lease")
    }
