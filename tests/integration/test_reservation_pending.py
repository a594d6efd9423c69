"""A transfer or change whose answer was lost (here: its last step fails as if the reply were
lost) stays pending; on one Redis and on a cluster, the next transfer or change of the
reservation is refused as busy while the pending one may still be running, and after the
takeover time finishes it (done as asked, or dropped when it no longer fits) and goes on."""

from __future__ import annotations

import asyncio
import time

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from atp.core.errors import LocationNotInChannel, StoreUnavailable
from atp.store import changes, keys, transfers
from atp.store.scripts import load_script
from tests.integration.conftest import redis_client
from tests.integration.test_reservation_change import change, quantities, sku2
from tests.integration.test_reservation_transfer import held_at, transfer
from tests.integration.test_reservations import AUTH, atp, reserve, rid, seed
from tests.integration.test_reservations import sku as sku

pytestmark = pytest.mark.integration
REDIS = ("node", "cluster")  # every test here runs on one Redis and on a cluster
__all__ = ["sku", "sku2"]  # fixtures


def app_client(settings, network, takeover_s):
    quiet = settings.model_copy(
        update={"sweep_interval_s": 60.0, "reservation_takeover_s": takeover_s}
    )
    return TestClient(create_app(quiet, network))


@pytest.fixture
def client(settings, demo_network):
    """A pending transfer or change is stale 0.1 s after it began (the tests wait that)."""
    with app_client(settings, demo_network, 0.1) as c:
        yield c


@pytest.fixture
def patient(settings, demo_network):
    """A pending transfer or change owns its reservation for a minute."""
    with app_client(settings, demo_network, 60.0) as c:
        yield c


def lose_once(monkeypatch, owner, name, when=lambda *a: True):
    """The first call of owner.name that `when` accepts fails as a lost reply would."""
    real = getattr(owner, name)
    lost = []

    async def failing(*args, **kwargs):
        if not lost and when(*args):
            lost.append(True)
            raise StoreUnavailable("the reply was lost")
        return await real(*args, **kwargs)

    monkeypatch.setattr(owner, name, failing)


def stale():
    time.sleep(0.2)  # past the 0.1 s takeover time of `client`


def test_a_change_left_pending_is_finished_by_the_next_transfer(client, settings, sku, monkeypatch):
    seed(settings.redis_url, sku, {"WH-NJ": 10, "WH-IL": 10})
    i = rid()
    assert reserve(client, {"reservation_id": i, "lines": [{"sku": sku, "quantity": 2}]}).is_success
    lose_once(monkeypatch, changes._Run, "commit")
    r = change(client, i, {"sku": sku, "quantity": 5})
    assert r.status_code == 503, r.text
    # Held, not recorded: the record still says 2, the holds 5.
    assert quantities(client.get(f"/v1/reservations/{i}", headers=AUTH)) == [(sku, 2, 2)]
    assert atp(client, sku, "WH-NJ") == 5
    stale()
    r = transfer(client, i, sku=sku, quantity=1)
    assert r.status_code == 200, r.text
    assert r.json()["changes"] == ["c1"] and [t["transfer_id"] for t in r.json()["transfers"]] == [
        "t1"
    ]
    assert quantities(r) == [(sku, 5, 5)]
    assert held_at(client, sku, i) == {"WH-NJ": 4, "WH-IL": 1}
    assert (atp(client, sku, "WH-NJ"), atp(client, sku, "WH-IL")) == (6, 9)
    # Its own client asking again gets the answer, and nothing is done twice.
    r = change(client, i, {"sku": sku, "quantity": 5})
    assert r.status_code == 200 and r.headers["Idempotent-Replayed"] == "true"
    assert (atp(client, sku, "WH-NJ"), atp(client, sku, "WH-IL")) == (6, 9)


def test_a_transfer_left_pending_is_finished_by_the_next_change(client, settings, sku, monkeypatch):
    seed(settings.redis_url, sku, {"WH-NJ": 10, "WH-IL": 10})
    i = rid()
    assert reserve(client, {"reservation_id": i, "lines": [{"sku": sku, "quantity": 4}]}).is_success
    lose_once(monkeypatch, transfers, "_step", lambda *a: a[3] == "commit")
    assert transfer(client, i, sku=sku, quantity=2).status_code == 503
    assert (atp(client, sku, "WH-NJ"), atp(client, sku, "WH-IL")) == (8, 8)  # moved
    stale()
    r = change(client, i, {"sku": sku, "quantity": 5})
    assert r.status_code == 200, r.text
    assert [t["transfer_id"] for t in r.json()["transfers"]] == ["t1"]
    assert held_at(client, sku, i) == {"WH-NJ": 3, "WH-IL": 2}
    assert (atp(client, sku, "WH-NJ"), atp(client, sku, "WH-IL")) == (7, 8)


def test_a_pending_change_that_no_longer_fits_is_dropped(client, settings, sku, sku2, monkeypatch):
    seed(settings.redis_url, sku, {"WH-NJ": 10})
    seed(settings.redis_url, sku2, {"WH-NJ": 5})
    lines = [
        {"sku": sku, "quantity": 2, "location_id": "WH-NJ"},
        {"sku": sku2, "quantity": 2, "location_id": "WH-NJ"},
    ]
    i = rid()
    assert reserve(client, {"reservation_id": i, "lines": lines}).is_success
    lose_once(monkeypatch, changes._Run, "place")  # begun; nothing placed
    r = change(client, i, {"sku": sku, "quantity": 9, "location_id": "WH-NJ"})
    assert r.status_code == 503
    other = {"reservation_id": rid(), "lines": [{"sku": sku, "quantity": 8}]}
    assert reserve(client, other).is_success  # what c1 wanted is gone
    stale()
    r = change(client, i, {"sku": sku2, "quantity": 1, "location_id": "WH-NJ"}, change_id="c2")
    assert r.status_code == 200, r.text
    assert r.json()["changes"] == ["c2"]
    assert quantities(r) == [(sku, 2, 2), (sku2, 1, 1)]
    assert (atp(client, sku, "WH-NJ"), atp(client, sku2, "WH-NJ")) == (0, 4)
    # c1 again is a new attempt, refused as it no longer fits.
    r = change(client, i, {"sku": sku, "quantity": 9, "location_id": "WH-NJ"})
    assert r.status_code == 409 and r.json()["code"] == "insufficient_stock"


def test_while_a_pending_one_may_still_run_the_next_is_busy(patient, settings, sku, monkeypatch):
    seed(settings.redis_url, sku, {"WH-NJ": 10, "WH-IL": 10})
    i = rid()
    assert reserve(
        patient, {"reservation_id": i, "lines": [{"sku": sku, "quantity": 2}]}
    ).is_success
    lose_once(monkeypatch, changes._Run, "commit")
    assert change(patient, i, {"sku": sku, "quantity": 5}).status_code == 503
    r = transfer(patient, i, sku=sku, quantity=1)
    assert r.status_code == 409 and r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == "reservation_busy"
    assert r.json()["pending"] == {"kind": "change", "id": "c1"}
    assert 1 <= int(r.headers["Retry-After"]) <= 60
    assert held_at(patient, sku, i) == {"WH-NJ": 2}  # nothing moved
    # Its own client finishes it; then the transfer goes through.
    assert change(patient, i, {"sku": sku, "quantity": 5}).status_code == 200
    assert transfer(patient, i, sku=sku, quantity=1).status_code == 200
    assert held_at(patient, sku, i) == {"WH-NJ": 4, "WH-IL": 1}


def test_a_stale_runner_does_not_drop_a_later_attempt(client, settings, sku):
    """Every runner of an attempt gets the answer it was first given, and one of an earlier
    attempt, resuming late, neither moves the units nor drops the later attempt's entry."""
    seed(settings.redis_url, sku, {"WH-NJ": 10, "WH-IL": 0})
    i = rid()
    assert reserve(client, {"reservation_id": i, "lines": [{"sku": sku, "quantity": 2}]}).is_success
    record = redis_client(settings.redis_url)
    step = record.register_script(load_script("record/transfer.lua"))
    hold = record.register_script(load_script("hold/transfer.lua"))
    values = ["t1", sku, "WH-NJ", "WH-IL", 1, 100]
    mark = keys.transfer_mark(sku, i, "t1")
    now = int(time.time() * 1000)
    try:

        def run(phase, at, attempt=""):
            return step(keys=keys.record_keys(i), args=[i, at, phase, *values, attempt])

        def move(attempt):
            args = [i, now, "WH-NJ", "WH-IL", 1, 0, 60_000, attempt]
            return hold(keys=[*keys.sku_keys(sku), mark], args=args)

        first = run("begin", now)
        assert first == [b"begun", str(now).encode()]
        assert move(str(now)) == [b"short", 0]  # WH-IL has nothing
        assert run("abort", now, str(now))[0] == b"ok"
        later = run("begin", now + 1)[1].decode()  # asked again: a new attempt
        seed(settings.redis_url, sku, {"WH-IL": 5})
        assert move(str(now)) == [b"short", 0]  # the first attempt's runner, resuming late
        assert run("abort", now, str(now))[0] == b"ok"  # ... drops nothing of the later one
        assert move(later) == [b"moved"]
        assert run("commit", now + 1)[0] == b"ok"
    finally:
        record.close()
    r = client.get(f"/v1/reservations/{i}", headers=AUTH)
    assert [t["transfer_id"] for t in r.json()["transfers"]] == ["t1"]
    assert held_at(client, sku, i) == {"WH-NJ": 1, "WH-IL": 1}
    assert (atp(client, sku, "WH-NJ"), atp(client, sku, "WH-IL")) == (9, 4)


def test_a_short_runner_leaves_alone_what_another_runner_of_the_attempt_committed(
    client, settings, sku, monkeypatch
):
    """Two runners of one attempt (a retry beside its original, or a request finishing it):
    the first finds the increase short; stock arrives and the second places and commits it
    before the first aborts. The first must not give back what the second committed."""
    seed(settings.redis_url, sku, {"WH-NJ": 2, "WH-IL": 0})
    i = rid()
    assert reserve(client, {"reservation_id": i, "lines": [{"sku": sku, "quantity": 2}]}).is_success
    real = changes._Run.record
    network = client.app.state.services.network

    async def second_runner_first(run, step, *args):
        if step == "abort":
            await asyncio.to_thread(seed, settings.redis_url, sku, {"WH-IL": 10})
            assert await changes.change(run.store, i, run.asked, network, run.now_ms)
        return await real(run, step, *args)

    monkeypatch.setattr(changes._Run, "record", second_runner_first)
    r = change(client, i, {"sku": sku, "quantity": 5})
    assert r.status_code == 409 and r.json()["code"] == "reservation_busy", r.text
    monkeypatch.undo()
    r = change(client, i, {"sku": sku, "quantity": 5})  # asked again: it was done
    assert r.status_code == 200 and r.headers["Idempotent-Replayed"] == "true"
    assert held_at(client, sku, i) == {"WH-NJ": 2, "WH-IL": 3}
    assert (atp(client, sku, "WH-NJ"), atp(client, sku, "WH-IL")) == (0, 7)


def test_an_abort_cut_short_is_finished_by_the_next_request(client, settings, sku, monkeypatch):
    seed(settings.redis_url, sku, {"WH-NJ": 3})
    i = rid()
    line = {"sku": sku, "quantity": 2, "location_id": "WH-NJ"}
    assert reserve(client, {"reservation_id": i, "lines": [line]}).is_success
    lose_once(monkeypatch, changes._Run, "record", lambda *a: a[1] == "drop")
    r = change(client, i, {**line, "quantity": 5})  # short: given back, not yet forgotten
    assert r.status_code == 503
    assert atp(client, sku, "WH-NJ") == 1
    stale()
    r = change(client, i, {**line, "quantity": 3}, change_id="c2")
    assert r.status_code == 200, r.text
    assert r.json()["changes"] == ["c2"] and held_at(client, sku, i) == {"WH-NJ": 3}
    assert atp(client, sku, "WH-NJ") == 0


def test_a_change_cannot_place_once_its_reservation_closed(client, settings, sku, monkeypatch):
    """A release that lands before a change places its increase: the change places nothing,
    so nothing is held by the closed reservation, even when it is confirmed (no expiry)."""
    seed(settings.redis_url, sku, {"WH-NJ": 2, "WH-IL": 10})
    i = rid()
    assert reserve(client, {"reservation_id": i, "lines": [{"sku": sku, "quantity": 2}]}).is_success
    assert client.post(f"/v1/reservations/{i}/confirm", headers=AUTH).status_code == 200
    real = changes._Run.place

    async def released_first(run, plan, *args):
        await run.store.transition(i, "release", run.now_ms)
        return await real(run, plan, *args)

    monkeypatch.setattr(changes._Run, "place", released_first)
    lose_once(monkeypatch, changes._Run, "commit")  # and the runner dies before its commit
    r = change(client, i, {"sku": sku, "quantity": 5})
    assert r.status_code in (409, 503), r.text
    assert client.get(f"/v1/reservations/{i}", headers=AUTH).json()["state"] == "released"
    assert (atp(client, sku, "WH-NJ"), atp(client, sku, "WH-IL")) == (2, 10)


def test_marks_outlive_a_pending_change_and_expire_once_it_is_done(
    client, settings, sku, monkeypatch
):
    seed(settings.redis_url, sku, {"WH-NJ": 10})
    i = rid()
    line = {"sku": sku, "quantity": 2, "location_id": "WH-NJ"}
    assert reserve(client, {"reservation_id": i, "lines": [line]}).is_success
    lose_once(monkeypatch, changes._Run, "commit")
    assert change(client, i, {**line, "quantity": 5}).status_code == 503
    r = redis_client(settings.redis_url)
    try:
        [mark] = [k for k in r.scan_iter(f"*{{{sku}}}:changed:{i}@c1@*")]
        assert r.pttl(mark) == -1  # no expiry while the change may still be finished
        assert change(client, i, {**line, "quantity": 5}).status_code == 200
        assert r.pttl(mark) > 0
    finally:
        r.close()
    assert atp(client, sku, "WH-NJ") == 5


@pytest.mark.parametrize("lost", ["commit", "hold"])
def test_a_pending_transfer_to_a_location_that_left_the_channel_is_finished(
    client, settings, sku, monkeypatch, lost
):
    """The network file changed while the transfer was pending: the next request still
    finishes it, as moved (its reply was lost after the move) or dropped (it never moved)."""
    seed(settings.redis_url, sku, {"WH-NJ": 10, "WH-IL": 10})
    i = rid()
    assert reserve(client, {"reservation_id": i, "lines": [{"sku": sku, "quantity": 4}]}).is_success
    store = client.app.state.services.reservations
    if lost == "commit":
        lose_once(monkeypatch, transfers, "_step", lambda *a: a[3] == "commit")
    else:
        lose_once(monkeypatch, store, "run_hold", lambda *a: a[0] == "transfer")
    assert transfer(client, i, sku=sku, quantity=2).status_code == 503
    real = transfers.candidates

    def without_il(network, channel, line):
        if line.location_id == "WH-IL":
            raise LocationNotInChannel("WH-IL", channel, "closed for the test")
        return real(network, channel, line)

    monkeypatch.setattr(transfers, "candidates", without_il)
    stale()
    r = change(client, i, {"sku": sku, "quantity": 3})
    assert r.status_code == 200, r.text
    if lost == "commit":  # moved: recorded, and the change takes one from its last location
        assert [t["transfer_id"] for t in r.json()["transfers"]] == ["t1"]
        assert held_at(client, sku, i) == {"WH-NJ": 2, "WH-IL": 1}
    else:
        assert r.json()["transfers"] == []
        assert held_at(client, sku, i) == {"WH-NJ": 3}
    assert (atp(client, sku, "WH-NJ"), atp(client, sku, "WH-IL")) == (
        (8, 9) if lost == "commit" else (7, 10)
    )


def test_a_pending_change_that_can_no_longer_be_placed_is_dropped(
    client, settings, sku, monkeypatch
):
    """The network changed while a change was pending so that its line can no longer be held
    where it may be: the next request drops it (what it placed given back) and goes on."""
    seed(settings.redis_url, sku, {"WH-NJ": 10, "WH-IL": 10})
    i = rid()
    assert reserve(client, {"reservation_id": i, "lines": [{"sku": sku, "quantity": 2}]}).is_success
    lose_once(monkeypatch, changes._Run, "commit")  # placed, then the reply is lost
    assert change(client, i, {"sku": sku, "quantity": 5}).status_code == 503
    assert atp(client, sku, "WH-NJ") == 5

    def gone(network, channel, line):
        raise LocationNotInChannel("WH-NJ", channel, "closed for the test")

    monkeypatch.setattr(changes, "candidates", gone)
    stale()
    r = transfer(client, i, sku=sku, quantity=1)
    assert r.status_code == 200, r.text
    assert r.json()["changes"] == [] and quantities(r) == [(sku, 2, 2)]
    assert held_at(client, sku, i) == {"WH-NJ": 1, "WH-IL": 1}
    assert (atp(client, sku, "WH-NJ"), atp(client, sku, "WH-IL")) == (9, 9)
