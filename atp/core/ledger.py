"""The ledger of one (SKU, location): a pure, order-insensitive, idempotent fold of movements.

What the state keeps, and why it is enough:

- `base_qty` is the exact on-hand as of `base_ms`. It starts at 0 "before time" (`base_ms` is
  None), is set by an absolute count, and absorbs deltas that have left the retention window.
- `deltas` holds every applied delta that happened after `base_ms`, by event id. That makes the
  dedupe exact: a delta after `base_ms` was applied if and only if its id is in `deltas`.
- `count_ms`/`count_id` name the last absolute count, so an older count, or a delta the count
  already contains (happened at or before it), is recognised whenever it arrives.

on_hand = base_qty + sum(deltas), which for every arrival order of the same events is the newest
count plus the deltas after it. Anything older than the retention window that is not a harmless
repeat is refused as too late: its effect can no longer be placed with certainty.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field

from atp.core.movements import Effect, Movement

DEFAULT_RETENTION_MS = 48 * 3600 * 1000
DEFAULT_INBOUND_GRACE_MS = 24 * 3600 * 1000


class Outcome(enum.Enum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"  # this event id was applied before
    SUPERSEDED = "superseded"  # a newer absolute count already contains it
    TOO_LATE = "too_late"  # older than the retention window; cannot be placed safely


@dataclass(slots=True)
class Delta:
    occurred_ms: int
    qty: int
    ref: str | None = None


@dataclass(slots=True)
class LedgerState:
    base_qty: int = 0
    base_ms: int | None = None
    count_ms: int | None = None
    count_id: str | None = None
    deltas: dict[str, Delta] = field(default_factory=dict)
    # Expected inbound units by ASN id: (eta_ms, qty).
    inbound: dict[str, tuple[int, int]] = field(default_factory=dict)
    last_movement_ms: int | None = None

    @property
    def on_hand(self) -> int:
        return self.base_qty + sum(d.qty for d in self.deltas.values())

    def copy(self) -> LedgerState:
        return LedgerState(
            self.base_qty,
            self.base_ms,
            self.count_ms,
            self.count_id,
            dict(self.deltas),
            dict(self.inbound),
            self.last_movement_ms,
        )

    def to_list(self) -> list[object]:
        """Compact JSON-able form, stored in Redis."""
        return [
            self.base_qty,
            self.base_ms,
            self.count_ms,
            self.count_id,
            {k: [d.occurred_ms, d.qty, d.ref] for k, d in self.deltas.items()},
            {k: [eta, qty] for k, (eta, qty) in self.inbound.items()},
            self.last_movement_ms,
        ]

    @classmethod
    def from_list(cls, data: list[object]) -> LedgerState:
        base_qty, base_ms, count_ms, count_id, deltas, inbound, last_ms = data
        assert isinstance(deltas, dict) and isinstance(inbound, dict)
        return cls(
            base_qty,  # type: ignore[arg-type]
            base_ms,  # type: ignore[arg-type]
            count_ms,  # type: ignore[arg-type]
            count_id,  # type: ignore[arg-type]
            {k: Delta(v[0], v[1], v[2]) for k, v in deltas.items()},
            {k: (v[0], v[1]) for k, v in inbound.items()},
            last_ms,  # type: ignore[arg-type]
        )


@dataclass(frozen=True, slots=True)
class LedgerSummary:
    """What a pair's ledger says without its deltas one by one: the store keeps this per pair
    beside its deltas (atp/store/lua/ledger/apply.lua), and /explain shows it."""

    base_qty: int = 0
    base_ms: int | None = None
    count_ms: int | None = None
    count_id: str | None = None
    last_movement_ms: int | None = None
    delta_sum: int = 0
    deltas: int = 0  # how many deltas are kept after the base
    inbound: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def on_hand(self) -> int:
        return self.base_qty + self.delta_sum

    @classmethod
    def of(cls, s: LedgerState) -> LedgerSummary:
        return cls(
            s.base_qty,
            s.base_ms,
            s.count_ms,
            s.count_id,
            s.last_movement_ms,
            sum(d.qty for d in s.deltas.values()),
            len(s.deltas),
            dict(s.inbound),
        )


@dataclass(frozen=True, slots=True)
class Policy:
    """The windows the fold works with; `now_ms` is passed separately, never read from a clock."""

    retention_ms: int = DEFAULT_RETENTION_MS
    inbound_grace_ms: int = DEFAULT_INBOUND_GRACE_MS
    journal_entries: int = 20  # movements kept per (SKU, location) for agents (atp.core.journal)
    # how long a pair's journal outlives its last movement (Redis expires it on its own clock)
    journal_ttl_ms: int = DEFAULT_RETENTION_MS


def apply(
    state: LedgerState, movement: Movement, now_ms: int, policy: Policy = Policy()
) -> tuple[LedgerState, Outcome]:
    """Return the state after `movement` and what became of it; `state` is left unchanged."""
    new = state.copy()
    outcome = apply_in_place(new, movement, now_ms, policy)
    return new, outcome


def fold(
    state: LedgerState, movements: Iterable[Movement], now_ms: int, policy: Policy = Policy()
) -> tuple[LedgerState, list[Outcome]]:
    """Apply movements in order and compact once; `state` is left unchanged."""
    new = state.copy()
    outcomes = [apply_in_place(new, m, now_ms, policy) for m in movements]
    compact(new, now_ms, policy)
    return new, outcomes


def apply_in_place(s: LedgerState, m: Movement, now_ms: int, policy: Policy) -> Outcome:
    """Mutate `s` by one movement. Callers outside this module use `apply` or `fold`."""
    if m.effect is Effect.DELTA:
        outcome = _apply_delta(s, m, now_ms - policy.retention_ms)
    elif m.effect is Effect.COUNT:
        outcome = _apply_count(s, m)
    else:
        outcome = _apply_inbound(s, m)
    if outcome is Outcome.APPLIED and (
        s.last_movement_ms is None or m.occurred_ms > s.last_movement_ms
    ):
        s.last_movement_ms = m.occurred_ms
    return outcome


def _apply_delta(s: LedgerState, m: Movement, horizon_ms: int) -> Outcome:
    if m.event_id in s.deltas:
        return Outcome.DUPLICATE
    if m.occurred_ms < horizon_ms:
        return Outcome.TOO_LATE
    if s.base_ms is not None and m.occurred_ms <= s.base_ms:
        if s.count_ms is not None and m.occurred_ms <= s.count_ms:
            _close_inbound(s, m)
            return Outcome.SUPERSEDED
        return Outcome.TOO_LATE
    _close_inbound(s, m)
    s.deltas[m.event_id] = Delta(m.occurred_ms, m.qty, m.order_ref)
    return Outcome.APPLIED


def _close_inbound(s: LedgerState, m: Movement) -> None:
    """A receipt naming an ASN: those units are no longer inbound (even if a count has them)."""
    if m.order_ref is not None and m.qty > 0:
        s.inbound.pop(m.order_ref, None)


def _apply_count(s: LedgerState, m: Movement) -> Outcome:
    if s.count_ms is not None:
        if (m.occurred_ms, m.event_id) == (s.count_ms, s.count_id):
            return Outcome.DUPLICATE
        if (m.occurred_ms, m.event_id) < (s.count_ms, s.count_id or ""):
            return Outcome.SUPERSEDED
    if s.base_ms is not None and m.occurred_ms <= s.base_ms and s.base_ms != s.count_ms:
        # The base moved past this time by compaction: the deltas between are no longer known.
        return Outcome.TOO_LATE
    s.base_qty = m.qty
    s.base_ms = s.count_ms = m.occurred_ms
    s.count_id = m.event_id
    s.deltas = {k: d for k, d in s.deltas.items() if d.occurred_ms > m.occurred_ms}
    return Outcome.APPLIED


def _apply_inbound(s: LedgerState, m: Movement) -> Outcome:
    if m.event_id in s.inbound:
        return Outcome.DUPLICATE
    if any(d.ref == m.event_id and d.qty > 0 for d in s.deltas.values()):
        # The receipt for this ASN arrived first: nothing is inbound any more.
        return Outcome.SUPERSEDED
    s.inbound[m.event_id] = (m.eta_ms if m.eta_ms is not None else m.occurred_ms, m.qty)
    return Outcome.APPLIED


def compact(s: LedgerState, now_ms: int, policy: Policy) -> None:
    """Fold deltas older than the retention window into the base; drop long-overdue inbound."""
    horizon = now_ms - policy.retention_ms
    old = [k for k, d in s.deltas.items() if d.occurred_ms < horizon]
    for k in old:
        d = s.deltas.pop(k)
        s.base_qty += d.qty
        if s.base_ms is None or d.occurred_ms > s.base_ms:
            s.base_ms = d.occurred_ms
    overdue = now_ms - policy.inbound_grace_ms
    for k in [k for k, (eta, _) in s.inbound.items() if eta < overdue]:
        del s.inbound[k]


def next_inbound(s: LedgerState) -> tuple[int, int] | None:
    """The earliest expected arrival as (eta_ms, qty summed over that eta), or None."""
    arrivals = future_inbound(s)
    return arrivals[0] if arrivals else None


def future_inbound(s: LedgerState) -> list[tuple[int, int]]:
    """Every expected arrival as (eta_ms, qty summed over that eta), earliest first."""
    by_eta: dict[int, int] = {}
    for eta, qty in s.inbound.values():
        by_eta[eta] = by_eta.get(eta, 0) + qty
    return sorted(by_eta.items())
