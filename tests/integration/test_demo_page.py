"""The demo product page (/demo/) in a real headless browser (Debian's chromium, driven by
selenium through Debian's chromedriver) against a real worker, API, broker and Redis: the page
shows the count, the promise and a pickup store; movements produced to the broker change the
badge and the promise on the open page. Screenshots are kept in .atp/test-artifacts/."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from atp.core.movements import Effect, Movement
from atp.kafka import topics
from tests.conftest import ROOT
from tests.integration.conftest import seed, wait_http_ok
from tests.integration.test_fulfilment import wms
from tests.integration.wms_scenario import produce

pytestmark = pytest.mark.integration

ARTIFACTS = ROOT / ".atp" / "test-artifacts"
# Dallas NorthPark (S-0401) does pickup only, so the one store of the test never ships: what
# ships to 75225 comes from WH-NJ alone, whatever the time of day.
STORE, ZIP = "S-0401", "75225"


@pytest.fixture(scope="session")
def chromium() -> tuple[str, str]:
    """Debian's chromium and chromedriver, installed once if missing (we run as root), as
    `make test` does."""
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for argv in (
            ["apt-get", "update", "-q"],
            ["apt-get", "install", "-y", "-q", "--no-install-recommends", "chromium"],
            ["apt-get", "install", "-y", "-q", "--no-install-recommends", "chromium-driver"],
        ):
            done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900)
            assert done.returncode == 0, f"{' '.join(argv)} failed:\n{done.stdout}\n{done.stderr}"
    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    assert browser and driver, "apt-get installed chromium, but it is not on the PATH"
    return browser, driver


@pytest.fixture
def browser(chromium: tuple[str, str]) -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = chromium[0]
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(arg)
    options.add_argument("--window-size=1000,900")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # Both paths given: selenium starts them and never looks for a driver online.
    driver = webdriver.Chrome(service=Service(chromium[1]), options=options)
    try:
        yield driver
    finally:
        driver.quit()  # ends chromedriver and the browser it started


def count(sku: str, location: str, qty: int, now_ms: int) -> Movement:
    return Movement(
        f"{sku}-{location}-c", sku, location, Effect.COUNT, qty, now_ms - 1000, "CYCLE_COUNT", "t"
    )


def until(driver: webdriver.Chrome, what: str, check: Callable[[], object]) -> None:
    """Wait for `check` to hold on the page; the bound only keeps a broken page from hanging."""
    WebDriverWait(driver, 30, poll_frequency=0.1).until(lambda _: check(), message=what)


def text(driver: webdriver.Chrome, element_id: str) -> str:
    return driver.find_element(By.ID, element_id).text


def status(driver: webdriver.Chrome) -> str:
    return driver.find_element(By.ID, "badge").get_attribute("data-status") or ""


def shot(driver: webdriver.Chrome, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    assert driver.save_screenshot(str(path)), f"no screenshot at {path}"
    return path


def test_the_demo_page_follows_movements_live(settings, processes, browser):
    sku = f"DEMO-{uuid.uuid4().hex[:8]}"
    now = int(time.time() * 1000)
    seed(settings.redis_url, [count(sku, "WH-NJ", 12, now), count(sku, STORE, 6, now)], now)
    processes.start("worker")
    api = processes.start("api", env={"ATP_DEMO_PAGE": "true"})
    base = f"http://127.0.0.1:{settings.api_port}"
    wait_http_ok(f"{base}/readyz", api)

    browser.get(f"{base}/demo/?sku={sku}&postal_code={ZIP}")
    until(browser, "the count", lambda: text(browser, "atp") == "12")
    assert (status(browser), text(browser, "badge")) == ("in_stock", "In stock")
    until(browser, "a promise", lambda: text(browser, "promise").startswith("Get it by"))
    assert text(browser, "countdown")
    # The store keeps 2 back from pickup (the network's store safety stock): 4 to pick up.
    assert "Dallas NorthPark" in text(browser, "pickup")
    assert "4 to pick up" in text(browser, "pickup")
    assert browser.find_element(By.ID, "conn").get_attribute("data-state") == "live"
    shot(browser, "demo-page-in-stock.png")

    wms_topic = settings.topic(topics.WMS)
    sent = time.monotonic()
    asyncio.run(produce(settings.kafka_bootstrap, wms_topic, [wms(f"{sku}-s1", sku, "SHIPPED", 5)]))
    until(browser, "low stock", lambda: status(browser) == "low_stock")
    seen_s = time.monotonic() - sent
    assert (text(browser, "badge"), text(browser, "atp")) == ("Only 7 left", "7")

    sent = time.monotonic()
    asyncio.run(produce(settings.kafka_bootstrap, wms_topic, [wms(f"{sku}-s2", sku, "SHIPPED", 7)]))
    until(browser, "out of stock", lambda: status(browser) == "out_of_stock")
    again_s = time.monotonic() - sent
    assert text(browser, "atp") == "0"
    # Nothing left to ship: the promise follows the stock (pickup is not a delivery).
    until(browser, "no delivery", lambda: text(browser, "promise").startswith("No delivery"))
    assert "4 to pick up" in text(browser, "pickup")
    shot(browser, "demo-page-out-of-stock.png")

    severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not severe, severe
    # For the record, not a threshold: the first includes the worker joining its group.
    print(f"badge changed {seen_s:.2f} s, then {again_s:.2f} s after a movement was produced")
