"""Kits over real HTTP and Redis: availability, batches, explanations and pickup in kits, from
their components' counts and holds; the catalogue file reloaded; kits refused where they are
not supported yet (reservations, delivery promises)."""

from __future__ import annotations

import time
import urllib.request
import uuid

import orjson
import pytest
import yaml
from fastapi.testclient import TestClient

from api.app import create_app
from tests.integration.conftest import RESERVE_TOKEN, wait_http_ok
from tests.integration.test_availability import count, seed
from tests.integration.test_live import stream

pytestmark = pytest.mark.integration
REDIS = ("node", "cluster")  # every test here runs on one Redis and on a cluster
AUTH = {"Authorization": f"Bearer {RESERVE_TOKEN}"}


def write_catalog(path, kits: dict) -> None:
    path.write_text(yaml.safe_dump({"kits": kits}))


def test_a_kit_is_what_its_scarcest_component_makes_at_each_location(
    settings, demo_network, tmp_path
):
    run = uuid.uuid4().hex[:8]
    kit, a, b = f"KIT-{run}", f"KA-{run}", f"KB-{run}"
    catalog = tmp_path / "catalog.yaml"
    write_catalog(catalog, {kit: [{"sku": a, "quantity": 1}, {"sku": b, "quantity": 2}]})
    settings = settings.model_copy(update={"catalog_file": catalog, "config_poll_s": 0.1})
    seed(
        settings.redis_url,
        [
            count(a, "WH-NJ", 10),
            count(b, "WH-NJ", 6),
            count(a, "S-0101", 5),
            count(b, "S-0101", 10),
        ],
    )
    with TestClient(create_app(settings, demo_network)) as api:
        # A hold on a component takes from the kit too: 1 of B at WH-NJ.
        line = {"sku": b, "quantity": 1, "location_id": "WH-NJ"}
        body = {"reservation_id": f"R-{run}", "lines": [line]}
        assert api.post("/v1/reservations", json=body, headers=AUTH).status_code == 201

        got = api.get(f"/v1/availability/{kit}").json()
        # online: WH-NJ min(10, 5 // 2) = 2; S-0101 (3 held back for online per component)
        # min(5 - 3, (10 - 3) // 2) = 2.
        assert (got["atp"], got["available_to_fulfil"], got["available_to_order"]) == (4, 4, 4)
        assert got["kit"] == {"components": [{"sku": a, "quantity": 1}, {"sku": b, "quantity": 2}]}
        rows = {r["location_id"]: r for r in got["locations"]}
        # In kits: 3 from what is on hand, 1 of them taken by the hold, none by safety stock.
        assert {k: rows["WH-NJ"][k] for k in ("on_hand", "reserved", "safety_stock", "atp")} == {
            "on_hand": 3,
            "reserved": 1,
            "safety_stock": 0,
            "atp": 2,
        }
        assert rows["S-0101"]["atp"] == 2
        assert got["future"] == [] and got["next_inbound"] is None

        pickup = api.get(f"/v1/availability/{kit}", params={"channel": "pickup"}).json()
        assert pickup["atp"] == 3  # S-0101: min(5 - 2, (10 - 2) // 2)
        near = api.get(
            f"/v1/availability/{kit}", params={"postal_code": "10003", "include": "none"}
        ).json()
        assert [(p["location_id"], p["atp"]) for p in near["pickup"]] == [("S-0101", 3)]

        batch = api.post("/v1/availability/query", json={"skus": [kit, a]}).json()["results"]
        assert [r["sku"] for r in batch] == [kit, a]
        assert (batch[0]["atp"], batch[0]["kit"]) == (4, got["kit"])
        assert batch[1]["atp"] == 10 + 2 and "kit" not in batch[1]

        why = api.get(f"/v1/availability/{kit}/explain").json()
        assert why["atp"] == 4 and why["kit"] == got["kit"]
        nj = next(r for r in why["locations"] if r["location_id"] == "WH-NJ")
        assert nj["limiting_component"] == b
        assert [(c["sku"], c["atp"], c["kits"]) for c in nj["components"]] == [
            (a, 10, 10),
            (b, 5, 2),
        ]
        store = next(r for r in why["locations"] if r["location_id"] == "S-0101")
        assert (store["limiting_component"], store["atp"]) == (a, 2)

        # Not supported yet: a reservation or a delivery promise of the kit names its parts.
        refused = api.post(
            "/v1/reservations",
            json={"reservation_id": f"RK-{run}", "lines": [{"sku": kit, "quantity": 1}]},
            headers=AUTH,
        )
        assert refused.status_code == 422
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["code"] == "kit_not_reservable"
        assert refused.json()["components"] == got["kit"]["components"]
        options = api.post(
            "/v1/delivery-options",
            json={"lines": [{"sku": kit, "quantity": 1}], "destination": {"postal_code": "10003"}},
        )
        assert (options.status_code, options.json()["code"]) == (422, "kit_not_reservable")

        # The catalogue is reloaded: now a pack of 5 of A. A file that does not validate is
        # not taken (the one in force stays).
        time.sleep(0.05)  # a new modification time
        write_catalog(catalog, {kit: [{"sku": a, "quantity": 5}]})
        deadline = time.monotonic() + 10
        while api.get(f"/v1/availability/{kit}").json()["atp"] != 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert api.get(f"/v1/availability/{kit}").json()["atp"] == 2  # (10 // 5) + (2 // 5)
        write_catalog(catalog, {kit: [{"sku": kit, "quantity": 1}]})
        time.sleep(0.5)
        assert api.get(f"/v1/availability/{kit}").json()["kit"]["components"] == [
            {"sku": a, "quantity": 5}
        ]


def test_a_kits_live_stream_follows_its_components(settings, processes, tmp_path):
    run = uuid.uuid4().hex[:8]
    kit, a, b = f"KL-{run}", f"KLA-{run}", f"KLB-{run}"
    catalog = tmp_path / "catalog.yaml"
    write_catalog(catalog, {kit: [{"sku": a, "quantity": 1}, {"sku": b, "quantity": 2}]})
    seed(settings.redis_url, [count(a, "WH-NJ", 10), count(b, "WH-NJ", 8)])
    api = processes.start("api", env={"ATP_CATALOG_FILE": str(catalog)})
    port = settings.api_port
    wait_http_ok(f"http://127.0.0.1:{port}/readyz", api)
    with stream(port, f"skus={kit}&channel=online") as s:
        first = s.next_event()
        assert (first["sku"], first["atp"]) == (kit, 4)  # min(10, 8 // 2)
        # A hold on a component: the kit's stream gets its new answer.
        line = {"sku": b, "quantity": 3, "location_id": "WH-NJ"}
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/reservations",
            data=orjson.dumps({"reservation_id": f"r-{run}", "lines": [line]}),
            headers={**AUTH, "content-type": "application/json"},
        )
        with urllib.request.urlopen(request) as r:
            assert r.status == 201
        held = s.next_event(15)
        assert (held["sku"], held["atp"]) == (kit, 2)  # min(10, (8 - 3) // 2)
