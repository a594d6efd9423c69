"""docs/asyncapi.yaml holds to the code: every topic has its channel; every example is valid and
its adapter takes it; the source schemas and the adapters agree on every rejection fixture and
on generated messages; what the service writes to its topics validates."""

from __future__ import annotations

from typing import Any

import jsonschema_rs
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from atp import contracts
from atp.core import webhooks
from atp.core.availability import AvailabilityChange, Exposure
from atp.core.errors import InvalidMovement
from atp.core.movements import MAX_QTY, Effect, Movement
from atp.core.sources import ADAPTERS, KINDS, common
from atp.core.sources import wms as wms_adapter
from atp.kafka import rejected, topics
from atp.network_file import load_network
from tests.conftest import DEMO_NETWORK
from tests.unit.atp.core.sources.test_pos_3pl import POS_REJECTIONS, TPL_REJECTIONS
from tests.unit.atp.core.sources.test_wms import REJECTIONS as WMS_REJECTIONS

MESSAGES = list(contracts.document()["components"]["messages"])
VALIDATORS = {m: jsonschema_rs.Draft7Validator(contracts.payload_schema(m)) for m in MESSAGES}
SOURCE_MESSAGE = {"wms": "WmsMovement", "pos": "PosTransaction", "3pl": "TplReport"}
NETWORK = load_network(DEMO_NETWORK)
# Reasons a schema can see; `unknown_location` is the network file's business.
SCHEMA_REASONS = {"schema", "negative_quantity", "quantity_out_of_range"}
# The one rejection fixture the schemas cannot see (documented in the document's description).
BEYOND_THE_SCHEMA = {TPL_REJECTIONS[2][0]}  # a 3PL report that lists a SKU twice


def valid(message: str, payload: Any) -> bool:
    return bool(VALIDATORS[message].is_valid(payload))


def test_every_topic_has_a_channel_and_every_channel_is_a_topic():
    assert set(contracts.channel_messages()) == set(topics.ALL)
    for topic, source in topics.SOURCES.items():
        assert contracts.channel_messages()[topic] == [SOURCE_MESSAGE[source]]


def test_every_reference_in_the_document_resolves():
    doc = contracts.document()
    assert doc["asyncapi"] == "3.0.0"

    def refs(node: Any) -> list[str]:
        if isinstance(node, dict):
            own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
            return own + [r for v in node.values() for r in refs(v)]
        if isinstance(node, list):
            return [r for v in node for r in refs(v)]
        return []

    found = refs(doc)
    assert len(found) > 30
    for ref in found:
        target: Any = doc
        for part in ref.removeprefix("#/").split("/"):
            target = target[part]  # KeyError names a dangling reference


@pytest.mark.parametrize("message", MESSAGES)
def test_every_message_has_examples_that_its_schema_takes(message):
    assert contracts.examples(message)
    for example in contracts.examples(message):
        assert valid(message, example), list(VALIDATORS[message].iter_errors(example))


@pytest.mark.parametrize("source", sorted(SOURCE_MESSAGE))
def test_the_adapters_take_every_example(source):
    for example in contracts.examples(SOURCE_MESSAGE[source]):
        assert ADAPTERS[source](orjson.dumps(example), NETWORK)


@pytest.mark.parametrize(
    ("source", "raw", "reason"),
    [("wms", raw, reason) for raw, reason in WMS_REJECTIONS]
    + [("pos", raw, reason) for raw, reason in POS_REJECTIONS]
    + [("3pl", raw, reason) for raw, reason in TPL_REJECTIONS],
)
def test_the_schemas_refuse_what_the_adapters_refuse_for_its_form(source, raw, reason):
    with pytest.raises(InvalidMovement) as info:
        ADAPTERS[source](raw, NETWORK)
    assert info.value.code == reason
    if reason == "malformed_json":
        with pytest.raises(orjson.JSONDecodeError):
            orjson.loads(raw)
        return
    verdict = valid(SOURCE_MESSAGE[source], orjson.loads(raw))
    if reason == "unknown_location" or raw in BEYOND_THE_SCHEMA:
        assert verdict, "the schema cannot know this; the adapter checks it besides"
    else:
        assert reason in SCHEMA_REASONS
        assert not verdict, "the schema takes what the adapter refuses for its form"


# Generated warehouse messages: a valid one with up to three fields replaced or removed, each
# from values that are right, wrong, or at an edge. Timestamps only in forms on which the
# pattern and Python's ISO parser agree (the parser also takes others: the document says so).
IDS = ["A", "LEGO-75954", "x" * 128, "x" * 129, "", "bad\x07sku", "C1\x85", "ünïcødé", None, 5]
TIMES = [
    "2026-11-26T14:03:11Z",
    "2026-11-26T14:03:11.123+05:30",
    "2026-11-26 14:03:11-05:00",
    "2026-11-26T14:03Z",
    "2026-11-26T14:03:11",  # no offset
    "yesterday",
    "",
    None,
    1795701791000,
]
QTYS = [0, 1, 24, -1, MAX_QTY, MAX_QTY + 1, -MAX_QTY, -MAX_QTY - 1, 10**12, 2.5, "24", True, None]
FIELDS: dict[str, list[Any]] = {
    "event_id": IDS,
    "warehouse_id": ["WH-NJ", "WH-ZZ", "", None],
    "sku": IDS,
    "kind": [*wms_adapter.KINDS, "STOLEN", "received", None, 3],
    "qty": QTYS,
    "occurred_at": TIMES,
    "order_ref": [None, "R-1", "", 7, "bad\x07"],
    "eta": TIMES,
}
BASE = {
    "event_id": "E-1",
    "warehouse_id": "WH-NJ",
    "sku": "LEGO-75954",
    "kind": "RECEIVED",
    "qty": 24,
    "occurred_at": "2026-11-26T14:03:11Z",
}
_MISSING = object()
mutations = st.lists(
    st.sampled_from(sorted(FIELDS)).flatmap(
        lambda f: st.tuples(st.just(f), st.sampled_from([_MISSING, *FIELDS[f]]))
    ),
    max_size=3,
)


@given(changes=mutations)
def test_on_generated_warehouse_messages_schema_and_adapter_agree(changes):
    body: dict[str, Any] = dict(BASE)
    for field, value in changes:
        if value is _MISSING:
            body.pop(field, None)
        else:
            body[field] = value
    # The adapter names the first thing wrong, and checks the location before the quantity and
    # the times; the schema cannot know the network. So: the schema's verdict against the
    # adapter's on the same message at a known warehouse.
    form = dict(body)
    if form.get("warehouse_id") == "WH-ZZ":
        form["warehouse_id"] = "WH-NJ"
    assert valid("WmsMovement", body) == (adapter_verdict(form) == "ok"), (body, form)
    if valid("WmsMovement", body) and body.get("warehouse_id") == "WH-ZZ":
        assert adapter_verdict(body) == "unknown_location"


def adapter_verdict(body: dict[str, Any]) -> str:
    try:
        wms_adapter.parse(orjson.dumps(body), NETWORK)
    except InvalidMovement as exc:
        return exc.code
    return "ok"


identifiers = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1
).filter(lambda s: all(not ("\x00" <= c <= "\x1f" or "\x7f" <= c <= "\x9f") for c in s))
movements = st.builds(
    Movement,
    event_id=identifiers.map(lambda s: s[:128]),
    sku=identifiers.map(lambda s: s[:128]),
    location_id=identifiers.map(lambda s: s[:128]),
    effect=st.sampled_from(Effect),
    qty=st.integers(-MAX_QTY, MAX_QTY),
    occurred_ms=st.integers(0, 2**42),
    kind=st.sampled_from([kind for _, kind in KINDS]),
    source=st.sampled_from(sorted(SOURCE_MESSAGE)),
    order_ref=st.none() | st.just("R-1"),
    eta_ms=st.none() | st.integers(0, 2**42),
    produced_ms=st.none() | st.integers(0, 2**42),
)


@given(movements)
def test_canonical_movements_validate(m):
    assert valid("Movement", orjson.loads(orjson.dumps(m.to_wire())))
    assert Movement.from_wire(m.to_wire()) == m


statuses = st.sampled_from(["in_stock", "low_stock", "out_of_stock"])


@given(
    change=st.builds(
        AvailabilityChange,
        sku=st.just("LEGO-75954"),
        channel=st.sampled_from(["online", "pickup"]),
        atp=st.integers(0, 10**7),
        status=statuses,
        previous_atp=st.integers(0, 10**7),
        previous_status=statuses,
        available_to_order=st.integers(0, 10**7),
        previous_available_to_order=st.integers(0, 10**7),
    ),
    exposure=st.integers(1, 10**6),
    at_ms=st.integers(0, 2**42),
)
def test_availability_events_validate_and_each_has_one_message(change, exposure, at_ms):
    event = change.to_event(at_ms)
    assert valid("AvailabilityChanged", event) and not valid("OversellExposure", event)
    x = Exposure("LEGO-75954", "WH-NJ", 2, 2 + exposure, 0, exposure).to_event(at_ms)
    assert valid("OversellExposure", x) and not valid("AvailabilityChanged", x)
    # ATP_EVENT_FORMAT=cloudevents: the same events wrapped, and only the wrapped message fits.
    for plain, kind in ((event, webhooks.CHANGED), (x, webhooks.EXPOSURE)):
        wrapped = webhooks.topic_value(plain, kind, "LEGO-75954", "/inventory-availability", at_ms)
        wrapped = orjson.loads(orjson.dumps(wrapped))
        assert valid("AvailabilityCloudEvent", wrapped)
        assert not valid("AvailabilityChanged", wrapped) and not valid("OversellExposure", wrapped)
        assert not valid("AvailabilityCloudEvent", plain)
        assert webhooks.unwrapped(wrapped) == plain
        again = webhooks.topic_value(plain, kind, "LEGO-75954", "/inventory-availability", at_ms)
        assert again["id"] == wrapped["id"]  # a repeat has the same id


def test_reservation_events_wrapped_validate():
    for plain in contracts.examples("ReservationEvent"):
        kind, rid = f"reservation.{plain['type']}", plain["reservation_id"]
        at = plain["at_ms"]
        wrapped = webhooks.topic_value(plain, kind, rid, "/x", at, plain["event_id"])
        wrapped = orjson.loads(orjson.dumps(wrapped))
        assert valid("ReservationCloudEvent", wrapped) and not valid("ReservationEvent", wrapped)
        assert wrapped["id"] == plain["event_id"] and webhooks.unwrapped(wrapped) == plain


@given(
    raw=st.none() | st.binary(max_size=64),
    key=st.none() | st.binary(max_size=16),
    reason=st.sampled_from(common.REASONS),
)
def test_rejections_validate_whatever_the_bytes_and_the_reason(raw, key, reason):
    where = {"topic": "stock.wms", "partition": 0, "offset": 7, "now_ms": 1795701799500}
    record = rejected.rejection(raw=raw, key=key, reason=reason, message="m", **where)
    assert valid("Rejection", orjson.loads(record))
