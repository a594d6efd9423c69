"""The journal a service agent reads: per (SKU, location) the newest movements the ledger saw,
each with what the ledger made of it and the location's on hand after it. Pure: the ledger's
Redis Function (atp/store/lua/ledger/apply.lua) keeps it as this module says, and the
differential test (tests/integration/test_ledger_v3.py) compares the two."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from atp.core.ledger import LedgerState, Outcome, Policy, apply_in_place
from atp.core.movements import Effect, Movement

SEP = "\x1f"  # between an entry's fields; the event id is last, so it may hold anything

# The ledger function's one-letter codes (atp/store/lua/ledger/apply.lua).
OUTCOME_CODES = {
    Outcome.APPLIED: "a",
    Outcome.DUPLICATE: "d",
    Outcome.SUPERSEDED: "s",
    Outcome.TOO_LATE: "t",
}
EFFECT_CODES = {Effect.DELTA: "d", Effect.COUNT: "c", Effect.INBOUND: "i"}
_OUTCOMES = {code: o for o, code in OUTCOME_CODES.items()}
_EFFECTS = {code: e for e, code in EFFECT_CODES.items()}


@dataclass(frozen=True, slots=True)
class Entry:
    seen_ms: int  # when the ledger applied the batch that held it
    occurred_ms: int
    outcome: Outcome
    quantity: int
    on_hand: int  # the location's on hand after it
    effect: Effect
    source: str
    kind: str
    event_id: str

    def encode(self) -> str:
        return SEP.join(
            (
                str(self.seen_ms),
                str(self.occurred_ms),
                OUTCOME_CODES[self.outcome],
                str(self.quantity),
                str(self.on_hand),
                EFFECT_CODES[self.effect],
                self.source,
                self.kind,
                self.event_id,
            )
        )

    @classmethod
    def decode(cls, raw: bytes | str) -> Entry:
        text = raw.decode() if isinstance(raw, bytes) else raw
        seen, occurred, outcome, qty, on_hand, effect, source, kind, event_id = text.split(SEP, 8)
        return cls(
            int(seen),
            int(occurred),
            _OUTCOMES[outcome],
            int(qty),
            int(on_hand),
            _EFFECTS[effect],
            source,
            kind,
            event_id,
        )


def entries(
    state: LedgerState | None, movements: Sequence[Movement], now_ms: int, policy: Policy
) -> list[Entry]:
    """The entries of one location's movements, in the order applied: each applied in turn to
    a copy of `state` (the fold of atp.core.ledger) and the on hand after it."""
    s = state.copy() if state is not None else LedgerState()
    out = []
    for m in movements:
        outcome = apply_in_place(s, m, now_ms, policy)
        out.append(
            Entry(
                now_ms,
                m.occurred_ms,
                outcome,
                m.qty,
                s.on_hand,
                m.effect,
                m.source,
                m.kind,
                m.event_id,
            )
        )
    return out


def kept(newest_first: Sequence[Entry], added: Iterable[Entry], limit: int) -> list[Entry]:
    """The journal after `added` (oldest first): newest first, at most `limit` entries."""
    return [*reversed(list(added)), *newest_first][:limit]


Cursor = tuple[int, int, str, str]  # seen_ms, occurred_ms, location id, event id


def cursor(location_id: str, e: Entry) -> Cursor:
    return (e.seen_ms, e.occurred_ms, location_id, e.event_id)


def page(
    journals: Mapping[str, Sequence[Entry]], limit: int, before: Cursor | None = None
) -> list[tuple[str, Entry]]:
    """Up to `limit` (location id, entry) of several locations' journals, newest first: by
    when the ledger saw them, then by when they occurred (then location and event id). With
    `before`, the cursor of the last entry of the previous page, the page continues after it.
    Entries equal in all four (a repeat within one batch) are never split across pages."""
    merged = sorted(
        ((loc, e) for loc, journal in journals.items() for e in journal),
        key=lambda le: cursor(*le),
        reverse=True,
    )
    if before is not None:
        merged = [le for le in merged if cursor(*le) < before]
    end = min(limit, len(merged))
    while 0 < end < len(merged) and cursor(*merged[end]) == cursor(*merged[end - 1]):
        end += 1
    return merged[:end]
