"""Kits: the catalogue's rules and a kit's availability from its components (atp.core.kits)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from atp.catalog_file import load_catalog
from atp.core.availability import LocationCounts, channel_availability
from atp.core.errors import CatalogConfigError
from atp.core.kits import EMPTY_CATALOG, Catalog, Component, kit_at, kit_availability
from atp.network_file import load_network
from tests.conftest import DEMO_NETWORK as DEMO_FILE

KIT = [{"sku": "A", "quantity": 1}, {"sku": "B", "quantity": 2}]
DEMO_NETWORK = load_network(DEMO_FILE)


def test_the_catalogue_lists_each_kits_components_in_order():
    catalog = Catalog.from_dict({"kits": {"K": KIT, "P": [{"sku": "A", "quantity": 4}]}})
    assert catalog.components("K") == (Component("A", 1), Component("B", 2))
    assert catalog.components("A") is None
    assert Catalog.from_dict(None) == EMPTY_CATALOG == Catalog.from_dict({"kits": None})


@pytest.mark.parametrize(
    ("data", "where"),
    [
        ([], "<root>"),
        ({"bundles": {}}, "bundles"),
        ({"kits": []}, "kits"),
        ({"kits": {"K": []}}, "kits.K"),
        ({"kits": {"K": [{"sku": "A", "quantity": 0}]}}, "kits.K[0].quantity"),
        ({"kits": {"K": [{"sku": "A", "quantity": True}]}}, "kits.K[0].quantity"),
        ({"kits": {"K": [{"sku": "A", "qty": 1}]}}, "kits.K[0]"),
        ({"kits": {"K": [{"sku": "", "quantity": 1}]}}, "kits.K[0].sku"),
        ({"kits": {"K": [{"sku": "A"}, {"sku": "A"}]}}, "kits.K[1].sku"),
        ({"kits": {"K": [{"sku": "K"}]}}, "kits.K[0].sku"),
        ({"kits": {"K": [{"sku": "P"}], "P": [{"sku": "A"}]}}, "kits.K[0].sku"),
        ({"kits": {"K": [{"sku": f"S{i}"} for i in range(51)]}}, "kits.K"),
    ],
)
def test_a_catalogue_that_does_not_validate_names_the_entry(data, where):
    with pytest.raises(CatalogConfigError) as bad:
        Catalog.from_dict(data)
    assert bad.value.path == where


def test_the_file_names_itself_in_its_errors_and_no_file_is_no_kits(tmp_path):
    assert load_catalog(tmp_path / "none.yaml") == EMPTY_CATALOG
    path = tmp_path / "catalog.yaml"
    path.write_text("kits:\n  K:\n    - {sku: A, quantity: -1}\n")
    with pytest.raises(CatalogConfigError) as bad:
        load_catalog(path)
    assert bad.value.message.startswith(f"{path}: kits.K[0].quantity: ")
    path.write_text("kits: [")
    with pytest.raises(CatalogConfigError, match="not valid YAML"):
        load_catalog(path)


counts = st.builds(LocationCounts, st.integers(-5, 40), st.integers(0, 20))
LOCS = [loc.id for loc in DEMO_NETWORK.locations.values()]


@given(
    st.lists(st.integers(1, 4), min_size=1, max_size=3),
    st.data(),
    st.sampled_from(["online", "pickup"]),
)
def test_a_kit_is_the_minimum_over_its_components_of_their_atp_over_quantity(qtys, data, channel):
    parts = [Component(f"C{i}", q) for i, q in enumerate(qtys)]
    stock = {
        p.sku: data.draw(st.dictionaries(st.sampled_from(LOCS), counts, max_size=4)) for p in parts
    }
    answer = kit_availability(DEMO_NETWORK, channel, "K", parts, stock, None)
    by_part = [
        {r.location_id: r.atp for r in channel_availability(
            DEMO_NETWORK, channel, p.sku, stock[p.sku], None
        ).locations}
        for p in parts
    ]  # fmt: skip
    for row in answer.locations:
        expected = min(
            atp[row.location_id] // p.quantity for atp, p in zip(by_part, parts, strict=True)
        )
        assert row.atp == expected
        # The formula holds in kits, every term at least 0.
        assert min(row.on_hand, row.reserved, row.safety_stock) >= 0
        assert row.on_hand - row.reserved - row.safety_stock == row.atp
    assert answer.atp == sum(r.atp for r in answer.locations)
    loc = DEMO_NETWORK.locations[LOCS[0]]
    k = kit_at(DEMO_NETWORK, channel, loc, parts, stock)
    assert k.limiting == next(t.sku for t in k.components if t.kits == k.atp)
