"""The agent console (/console/) in a real headless browser (Debian's chromium through
chromedriver, the harness of test_demo_page) against a real API process and Redis, with reads
behind keys: without a key it says so; with a read key it shows every term per location and
the journal, pages to older movements; a reservation needs the reserve scope and then shows its
lines. Screenshots are kept in .atp/test-artifacts/."""

from __future__ import annotations

import time
import urllib.request
import uuid

import orjson
import pytest
from selenium.webdriver.common.by import By

from atp.core.movements import Effect, Movement
from tests.integration.conftest import READ_TOKEN, RESERVE_TOKEN, seed, wait_http_ok
from tests.integration.test_demo_page import browser, chromium, shot, text, until

pytestmark = pytest.mark.integration
__all__ = ["browser", "chromium"]  # fixtures, used by name


def use_key(driver, token: str) -> None:
    driver.find_element(By.ID, "key").send_keys(token)
    driver.find_element(By.CSS_SELECTOR, "#key-form button").click()
    until(driver, "the key", lambda: text(driver, "key-state") == "key set for this tab")


def rows(driver, table: str) -> list[list[str]]:
    return [
        [td.text for td in tr.find_elements(By.TAG_NAME, "td")]
        for tr in driver.find_elements(By.CSS_SELECTOR, f"#{table} tbody tr")
    ]


def test_the_console_answers_why_and_shows_the_journal(settings, processes, browser):
    sku = f"CON-{uuid.uuid4().hex[:8]}"
    now = int(time.time() * 1000)
    counted = Movement(f"{sku}-c", sku, "WH-NJ", Effect.COUNT, 5, now - 60_000, "CC", "wms")
    moves = [counted]
    moves += [
        Movement(f"{sku}-s{i}", sku, "WH-NJ", Effect.DELTA, -1, now - 50_000 + i, "SHIPPED", "wms")
        for i in range(30)  # more than one page of 25, and more than the journal keeps (20)
    ]
    seed(settings.redis_url, moves[:1], now)
    seed(settings.redis_url, moves[1:], now + 1)
    api = processes.start("api", env={"ATP_PUBLIC_READS": "false"})
    base = f"http://127.0.0.1:{settings.api_port}"
    wait_http_ok(f"{base}/healthz", api)

    browser.get(f"{base}/console/?sku={sku}")
    until(browser, "a refusal", lambda: "API key" in text(browser, "error"))
    use_key(browser, READ_TOKEN)
    browser.find_element(By.CSS_SELECTOR, "#sku-form button").click()
    until(browser, "the terms", lambda: rows(browser, "terms"))
    nj = next(r for r in rows(browser, "terms") if r[0].startswith("WH-NJ"))
    # 5 counted, 30 shipped after the count: -25 on hand, nothing to promise.
    assert (nj[1], nj[2], nj[3], nj[5]) == ("yes", "-25", "0", "0")
    assert "available to fulfil" in text(browser, "summary")
    journal = rows(browser, "journal")
    assert len(journal) == 20  # the journal's limit, newest first
    assert journal[0][8] == f"{sku}-s29" and journal[0][6] == "applied"
    assert journal[0][7] == "-25"
    shot(browser, "console-sku.png")
    # A kit of the demo catalogue: its components, and what limits it at each location.
    browser.get(f"{base}/console/?sku=KIT-STARTER")
    browser.find_element(By.CSS_SELECTOR, "#sku-form button").click()
    until(browser, "the kit", lambda: "Kit of" in text(browser, "future"))
    assert "Kit of 1 x SKU-000001, 1 x SKU-000002" in text(browser, "future")
    until(browser, "the kit's terms", lambda: rows(browser, "terms"))
    nj = next(r for r in rows(browser, "terms") if r[0].startswith("WH-NJ"))
    assert "limited by SKU-00000" in nj[0]

    recount = Movement(f"{sku}-c2", sku, "WH-NJ", Effect.COUNT, 9, now + 5, "CYCLE_COUNT", "wms")
    elsewhere = Movement(f"{sku}-c3", sku, "WH-IL", Effect.COUNT, 3, now + 5, "CYCLE_COUNT", "wms")
    seed(settings.redis_url, [recount, elsewhere], now + 6)
    rid = f"R-{uuid.uuid4().hex[:8]}"
    held = urllib.request.Request(
        f"{base}/v1/reservations",
        data=orjson.dumps({"reservation_id": rid, "lines": [{"sku": sku, "quantity": 2}]}),
        headers={"Authorization": f"Bearer {RESERVE_TOKEN}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(held) as reply:
        assert reply.status == 201
    move = {"sku": sku, "from_location_id": "WH-NJ", "to_location_id": "WH-IL", "quantity": 1}
    moved = urllib.request.Request(
        f"{base}/v1/reservations/{rid}/transfer",
        data=orjson.dumps({"transfer_id": "t1", **move}),
        headers={"Authorization": f"Bearer {RESERVE_TOKEN}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(moved) as reply:
        assert reply.status == 200
    line = {"sku": sku, "quantity": 3, "location_id": None}
    changed = urllib.request.Request(
        f"{base}/v1/reservations/{rid}",
        data=orjson.dumps({"change_id": "c1", "lines": [line]}),
        headers={"Authorization": f"Bearer {RESERVE_TOKEN}", "Content-Type": "application/json"},
        method="PATCH",
    )
    with urllib.request.urlopen(changed) as reply:
        assert reply.status == 200
    browser.get(f"{base}/console/?reservation={rid}")
    until(browser, "the reserve scope", lambda: "reserve" in text(browser, "error"))
    use_key(browser, RESERVE_TOKEN)
    browser.find_element(By.CSS_SELECTOR, "#rid-form button").click()
    until(browser, "the lines", lambda: rows(browser, "lines"))
    # One more, where the line holds first (WH-NJ: 9 on hand, 1 held).
    assert rows(browser, "lines") == [[sku, "3", "3", "0", "2 at WH-NJ, 1 at WH-IL"]]
    assert rows(browser, "transfers") == [["t1", sku, "WH-NJ", "WH-IL", "1"]]
    assert text(browser, "rid-state").startswith("held on online")
    assert text(browser, "rid-state").endswith("quantities changed by c1")
    shot(browser, "console-reservation.png")

    severe = [
        e
        for e in browser.get_log("browser")
        if e["level"] == "SEVERE" and " 401 " not in e["message"] and " 403 " not in e["message"]
    ]
    assert not severe, severe  # the refusals above are expected; nothing else
