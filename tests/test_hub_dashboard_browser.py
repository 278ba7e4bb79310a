"""The hub's dashboard in a real headless Chromium, on a real ``footfall hub serve`` process.

An admin and a regional manager sign in; the admin sees every region's stores, the
manager only hers (a store of another region is a 404); the league table, its htmx
filter and the completeness ledger render. Each step leaves a screenshot in
``$FOOTFALL_ARTIFACTS`` (default ``test-artifacts/``), and a browser console error fails
the test. Needs Debian's ``chromium`` and ``chromium-driver`` and selenium.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver import Chrome as WebDriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from cloud_hub.db import migrate, open_engine
from tests.hub_dashboard_support import (
    PASSWORD,
    add_account,
    add_store_to,
    day_rows,
    local_day_buckets,
    send_rows,
)
from tests.hub_support import REPO, Hub, start_hub

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--window-size=1400,900",
)
STORES = {"n-one": "nord", "n-two": "nord", "s-one": "sud"}

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        CHROMIUM is None or CHROMEDRIVER is None,
        reason="Debian's chromium and chromium-driver are not installed "
        "(apt-get install chromium chromium-driver; CI installs them)",
    ),
]


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    folder = tmp_path_factory.mktemp("hub-browser")
    url = f"sqlite:///{folder}/hub.db"
    engine = open_engine(url)
    migrate(engine)
    process = start_hub(url, folder / "hub.log")
    running = Hub(process, url, engine)
    yesterday = datetime.now(UTC).date() - timedelta(days=2)
    try:
        for n, (store, region) in enumerate(STORES.items()):
            add_store_to(running, store, region, "UTC", 250.0, None)
            for back in (0, 1):
                day = yesterday - timedelta(days=back)
                send_rows(running, store, day_rows(local_day_buckets(day, "UTC"), seed=n + back))
        add_account(running, "ada", "admin")
        add_account(running, "mia", "manager", {"nord"})
        yield running
    finally:
        process.stop()
        engine.dispose()


@pytest.fixture(scope="module")
def driver() -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    for flag in FLAGS:
        options.add_argument(flag)
    options.binary_location = str(CHROMIUM)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    browser.implicitly_wait(0)
    try:
        yield browser
    finally:
        browser.quit()


@pytest.fixture(scope="module")
def artifacts() -> Path:
    folder = Path(os.environ.get("FOOTFALL_ARTIFACTS") or REPO / "test-artifacts") / "hub-browser"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _wait(driver: WebDriver, seconds: float = 10) -> WebDriverWait[WebDriver]:
    return WebDriverWait(driver, seconds, ignored_exceptions=[StaleElementReferenceException])


def _no_console_errors(driver: WebDriver, where: str) -> None:
    logs: list[dict[str, Any]] = driver.get_log("browser")  # type: ignore[no-untyped-call]
    severe = [entry["message"] for entry in logs if entry["level"] == "SEVERE"]
    assert severe == [], f"browser console errors on {where}: {severe}"


def _sign_in(driver: WebDriver, url: str, username: str) -> None:
    driver.get(f"{url}/login")
    driver.delete_all_cookies()
    driver.get(f"{url}/login")
    driver.find_element(By.NAME, "username").send_keys(username)
    driver.find_element(By.NAME, "password").send_keys(PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "main form button[type=submit]").click()
    _wait(driver).until(ec.presence_of_element_located((By.ID, "who")))


def _league_stores(driver: WebDriver) -> set[str]:
    rows = driver.find_elements(By.CSS_SELECTOR, "#page tr[data-store]")
    return {str(row.get_attribute("data-store")) for row in rows}


def test_an_admin_and_a_manager_sign_in_and_see_their_scope(
    hub: Hub, driver: WebDriver, artifacts: Path
) -> None:
    _sign_in(driver, hub.url, "ada")
    _wait(driver).until(ec.presence_of_element_located((By.CSS_SELECTOR, "#page tr[data-store]")))
    assert _league_stores(driver) == set(STORES)
    strips = driver.find_elements(By.CSS_SELECTOR, "#page .strip.days span[data-state]")
    assert len(strips) == 3 * 7 and {s.get_attribute("data-state") for s in strips} >= {"complete"}
    assert "store-days" in driver.find_element(By.ID, "ledger-summary").text
    driver.save_screenshot(str(artifacts / "01-admin-league.png"))
    _no_console_errors(driver, "the admin's league table")
    # the htmx filter swaps the table in place and pushes the URL
    days = driver.find_element(By.NAME, "days")
    days.clear()
    days.send_keys("3")
    driver.find_element(By.CSS_SELECTOR, "#page form.controls button").click()
    _wait(driver).until(lambda d: "days=3" in d.current_url)
    _wait(driver).until(
        lambda d: len(d.find_elements(By.CSS_SELECTOR, "#page .strip.days span")) == 3 * 3
    )
    driver.find_element(By.LINK_TEXT, "Ledger").click()
    _wait(driver).until(ec.presence_of_element_located((By.ID, "ledger")))
    ledger_rows = driver.find_elements(By.CSS_SELECTOR, "#ledger tbody tr")
    assert {r.get_attribute("data-store") for r in ledger_rows} == set(STORES)
    assert driver.find_elements(By.CSS_SELECTOR, "#ledger .strip.hours span.st-complete")
    driver.save_screenshot(str(artifacts / "02-admin-ledger.png"))
    _no_console_errors(driver, "the admin's ledger")

    _sign_in(driver, hub.url, "mia")
    _wait(driver).until(ec.presence_of_element_located((By.CSS_SELECTOR, "#page tr[data-store]")))
    assert _league_stores(driver) == {"n-one", "n-two"}
    assert (
        "s-one" not in driver.page_source
        and "Users" not in driver.find_element(By.TAG_NAME, "nav").text
    )
    driver.save_screenshot(str(artifacts / "03-manager-league.png"))
    driver.find_element(By.LINK_TEXT, "Ledger").click()
    _wait(driver).until(ec.presence_of_element_located((By.ID, "ledger")))
    ledger_rows = driver.find_elements(By.CSS_SELECTOR, "#ledger tbody tr")
    assert {r.get_attribute("data-store") for r in ledger_rows} == {"n-one", "n-two"}
    driver.save_screenshot(str(artifacts / "04-manager-ledger.png"))
    _no_console_errors(driver, "the manager's pages")
    driver.get(f"{hub.url}/stores/s-one")  # another region's store: as if there were none
    assert "404" in driver.find_element(By.TAG_NAME, "h1").text
    assert "s-one" not in driver.find_element(By.TAG_NAME, "main").text
