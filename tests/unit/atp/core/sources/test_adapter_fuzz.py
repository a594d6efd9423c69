"""Whatever a source sends, an adapter returns movements or raises InvalidMovement: nothing else."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from atp.core.errors import InvalidMovement
from atp.core.movements import Movement
from atp.core.sources import ADAPTERS

FIELDS = {
    "wms": [
        "event_id",
        "warehouse_id",
        "sku",
        "kind",
        "qty",
        "occurred_at",
        "order_ref",
        "eta",
    ],
    "pos": ["transaction_id", "store_id", "type", "occurred_at", "order_ref", "lines"],
    "3pl": ["report_id", "provider", "facility_id", "as_of", "items"],
}
VALID = {
    "event_id": "E1",
    "warehouse_id": "WH-NJ",
    "sku": "S",
    "kind": "ASN",
    "qty": 3,
    "occurred_at": "2026-11-26T10:00:00Z",
    "order_ref": None,
    "eta": "2026-11-30T10:00:00Z",
    "transaction_id": "T1",
    "store_id": "S-0101",
    "type": "SALE",
    "lines": [{"sku": "S", "qty": 1}],
    "report_id": "R1",
    "provider": "p",
    "facility_id": "3PL-ACME-TX",
    "as_of": "2026-11-26T10:00:00Z",
    "items": [{"sku": "S", "on_hand": 2}],
}

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=200),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)


@pytest.mark.parametrize("contract", sorted(ADAPTERS))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_adapters_only_ever_reject_with_a_reason(demo_network, contract, data):
    body = {f: VALID[f] for f in FIELDS[contract]}
    for field in data.draw(st.lists(st.sampled_from(FIELDS[contract]), max_size=3, unique=True)):
        if data.draw(st.booleans()):
            body[field] = data.draw(values)
        else:
            body.pop(field)
    raw = json.dumps(body).encode()
    try:
        movements = ADAPTERS[contract](raw, demo_network)
    except InvalidMovement as exc:
        assert exc.code and exc.message
    else:
        assert all(isinstance(m, Movement) for m in movements)


@given(raw=st.binary(max_size=300))
@settings(max_examples=200, deadline=None)
def test_any_bytes(demo_network, raw):
    for adapter in ADAPTERS.values():
        with contextlib.suppress(InvalidMovement):
            adapter(raw, demo_network)
