"""The dashboard in a real headless Chromium, on a real server fed by the simulated supermarket.

Steps: sign in, watch the live plan change between two polls, switch the heatmap's
window, draw a zone in the installer's editor with real clicks and find it in the YAML
on disk. Every step leaves a screenshot in ``$FOOTFALL_ARTIFACTS`` (default
``test-artifacts/`` in the repository); any browser console error fails the test.

Needs Debian's ``chromium`` and ``chromium-driver`` (CI installs them) and selenium.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver import Chrome as WebDriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait

from appliance.analytics.engine import BUCKET_MS, analyze_range
from appliance.analytics.live import snapshot
from appliance.config import load_config
from lab.replay import ReplayThread, SimReplay, simulate_scenario, start_replay
from local_db import DbWriter, connect
from tests.webui_support import (
    PASSWORD,
    REPO,
    build_sim_store,
    make_app,
    stop_analysis_at,
    store_copy,
    visitors_by_engine,
)
from vision.ring_buffer import FrameRingBuffer
from vision.snapshots import frame_provider
from webui.serve import RunningServer, start_server

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
SUPERMARKET = REPO / "examples" / "sim" / "supermarket"
HISTORY_S = 900
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--window-size=1280,800",
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.sim,
    pytest.mark.skipif(
        CHROMIUM is None or CHROMEDRIVER is None,
        reason="Debian's chromium and chromium-driver are not installed "
        "(apt-get install chromium chromium-driver; CI installs them)",
    ),
]


@dataclass
class Store:
    """A served dashboard over a live simulated supermarket."""

    url: str
    config: Path
    db: Path


@pytest.fixture(scope="module")
def artifacts() -> Path:
    folder = Path(os.environ.get("FOOTFALL_ARTIFACTS") or REPO / "test-artifacts") / "browser"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    tmp = tmp_path_factory.mktemp("browser")
    config = store_copy(tmp, "supermarket")
    db = tmp / "box.db"
    # 20 minutes of arrivals; "now" is minute 15: the last quarter hour is history
    # (aggregated by the real engine for the heatmap), the rest arrives live
    sim = simulate_scenario(SUPERMARKET / "scenario.yaml", seed=1, minutes=20)
    ring = FrameRingBuffer(max_seconds=5)
    frame = np.full((1080, 1920, 3), 90, np.uint8)
    frame[::120, :] = 230  # a grid to click on, as a stand-in for a floor seen by a camera
    frame[:, ::120] = 230
    ring.push(0.0, frame)
    app = make_app(tmp, config, frames=frame_provider({"west": ring}))
    writer = DbWriter(db)
    writer.start()
    replay = SimReplay(sim, writer, speed=1.0, start_s=HISTORY_S)
    replay.step()
    writer.flush()
    now_ms = round(time.time() * 1000)
    conn = connect(db)
    try:
        analyze_range(conn, load_config(config), now_ms - HISTORY_S * 1000, now_ms)
    finally:
        conn.close()
    feed: ReplayThread = start_replay(replay)
    server: RunningServer = start_server(app)
    try:
        yield Store(server.url, config, db)
    finally:
        server.stop()
        feed.stop()
        writer.close()


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


class Steps:
    """Screenshots per step, and the console check after each one."""

    def __init__(self, driver: WebDriver, folder: Path, name: str) -> None:
        self.driver = driver
        self.folder = folder
        self.name = name
        self.n = 0

    def shot(self, name: str) -> Path:
        self.n += 1
        path = self.folder / f"{self.name}-{self.n:02d}-{name}.png"
        assert self.driver.save_screenshot(str(path)), f"no screenshot {path}"
        print(f"screenshot: {path}")  # the artefact's path, for whoever reads the test log
        return path

    def no_console_errors(self, where: str) -> None:
        logs: list[dict[str, Any]] = self.driver.get_log("browser")  # type: ignore[no-untyped-call]
        severe = [entry["message"] for entry in logs if entry["level"] == "SEVERE"]
        assert severe == [], f"browser console errors on {where}: {severe}"


def wait(driver: WebDriver, seconds: float = 10) -> WebDriverWait[WebDriver]:
    """Wait for a condition; an element replaced by an htmx swap meanwhile is just retried."""
    return WebDriverWait(driver, seconds, ignored_exceptions=[StaleElementReferenceException])


def sign_in(driver: WebDriver, url: str, username: str) -> None:
    driver.get(f"{url}/login")
    driver.delete_all_cookies()  # a fresh session for each test
    driver.get(f"{url}/login")
    driver.find_element(By.NAME, "username").send_keys(username)
    driver.find_element(By.NAME, "password").send_keys(PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "main form button[type=submit]").click()
    wait(driver).until(ec.presence_of_element_located((By.CSS_SELECTOR, ".who")))


def click_at_metres(driver: WebDriver, svg: WebElement, x_m: float, y_m: float) -> None:
    """A real mouse click on an SVG at user coordinates (x_m, y_m): metres, or camera pixels."""
    box = driver.execute_script(
        "const r = arguments[0].getBoundingClientRect(); const v = arguments[0].viewBox.baseVal;"
        "return [r.width, r.height, v.x, v.y, v.width, v.height];",
        svg,
    )
    width_px, height_px, x0, y0, width, height = box
    scale = min(width_px / width, height_px / height)  # xMidYMid meet
    pad_x = (width_px - width * scale) / 2
    pad_y = (height_px - height * scale) / 2
    dx = pad_x + (x_m - x0) * scale - width_px / 2  # offsets are from the element's centre
    dy = pad_y + (y_m - y0) * scale - height_px / 2
    ActionChains(driver).move_to_element_with_offset(svg, round(dx), round(dy)).click().perform()


def people(driver: WebDriver) -> tuple[list[tuple[str, str]], str]:
    """The dots on the live plan and the store occupancy, as the page shows them now."""
    dots = driver.find_elements(By.CSS_SELECTOR, "#page-live .people circle")
    where = [(d.get_attribute("cx") or "", d.get_attribute("cy") or "") for d in dots]
    return where, driver.find_element(By.ID, "store-occupancy").text


def test_live_plan_moves_between_two_polls_and_the_heatmap_window_switches(
    store: Store, driver: WebDriver, artifacts: Path
) -> None:
    steps = Steps(driver, artifacts, "pages")
    sign_in(driver, store.url, "manager")
    steps.no_console_errors("sign-in")

    driver.get(f"{store.url}/live")
    section = wait(driver).until(ec.presence_of_element_located((By.ID, "page-live")))
    before = wait(driver).until(lambda d: (now := people(d))[0] and now)
    steps.shot("live")
    wait(driver).until(ec.staleness_of(section))  # the poll swapped the fragment
    after = wait(driver).until(lambda d: (now := people(d))[0] and now != before and now)
    steps.shot("live-polled")
    assert after[0] and after != before  # people moved (or came and went)
    steps.no_console_errors("the live page")

    driver.get(f"{store.url}/heatmap")
    page = wait(driver).until(ec.presence_of_element_located((By.ID, "page-heatmap")))
    Select(page.find_element(By.NAME, "window")).select_by_value("1h")
    page.find_element(By.CSS_SELECTOR, "form.controls button[type=submit]").click()
    wait(driver).until(ec.staleness_of(page))
    wait(driver).until(
        ec.text_to_be_present_in_element(
            (By.CSS_SELECTOR, "#page-heatmap .window-label"), "Last hour"
        )
    )
    cells = driver.find_elements(By.CSS_SELECTOR, "#page-heatmap .heat rect")
    assert cells, "no heatmap cells for the last hour of the replayed store"
    assert "window=1h" in driver.current_url  # htmx pushed the window into the address
    steps.shot("heatmap-last-hour")
    steps.no_console_errors("the heatmap page")


def live_polls(driver: WebDriver, since_ms: float = 0.0, until_ms: float = 1e18) -> int:
    """The Live page's polls (htmx XHRs for /live) that started in [since, until) page time."""
    return int(
        driver.execute_script(
            "return performance.getEntriesByType('resource').filter(e =>"
            " e.initiatorType === 'xmlhttprequest' && new URL(e.name).pathname === '/live'"
            " && e.startTime >= arguments[0] && e.startTime < arguments[1]).length",
            since_ms,
            until_ms,
        )
    )


def polled(n: int) -> Callable[[WebDriver], bool]:
    """A wait condition: the Live page has polled at least ``n`` times."""
    return lambda d: live_polls(d) >= n


def test_live_keeps_polling_and_pauses_while_the_tab_is_hidden(
    store: Store, driver: WebDriver, artifacts: Path
) -> None:
    steps = Steps(driver, artifacts, "live-polling")
    sign_in(driver, store.url, "manager")
    driver.get(f"{store.url}/live")
    wait(driver).until(ec.presence_of_element_located((By.ID, "page-live")))
    driver.execute_script(
        "window.seen = [];"
        "document.addEventListener('visibilitychange', (e) =>"
        " window.seen.push([document.visibilityState, e.timeStamp]));"
    )
    clock = (By.CSS_SELECTOR, "#page-live h1 small")
    clocks = [driver.find_element(*clock).text]
    for n in range(1, 6):  # five polls, each a new fragment with a new time
        wait(driver).until(polled(n))
        wait(driver).until(lambda d: d.find_element(*clock).text not in clocks)
        clocks.append(driver.find_element(*clock).text)
    assert len(set(clocks)) == 6, clocks
    steps.shot("polled-five-times")

    page = driver.current_window_handle
    driver.switch_to.new_window("tab")  # the Live tab is now hidden
    time.sleep(2.5 * 2)  # long enough for two polls, had the hidden tab polled
    driver.close()
    driver.switch_to.window(page)
    wait(driver).until(lambda d: len(d.execute_script("return window.seen")) >= 2)
    (hidden, hidden_at), (shown, shown_at) = driver.execute_script("return window.seen")[:2]
    assert (hidden, shown) == ("hidden", "visible")
    assert shown_at - hidden_at > 4000
    assert live_polls(driver, hidden_at, shown_at) == 0  # nothing while hidden
    wait(driver).until(lambda d: live_polls(d, shown_at, shown_at + 1000) >= 1)  # at once
    wait(driver).until(lambda d: live_polls(d, shown_at + 1000) >= 2)  # and it goes on
    steps.shot("shown-again")
    steps.no_console_errors("the live page")


#: every page an installer (who sees them all) can open, by the name of its screenshot
ALL_PAGES = {
    "today": "/",
    "live": "/live",
    "heatmap": "/heatmap",
    "dwell": "/dwell",
    "queues": "/queues",
    "flow": "/flow",
    "trends": "/trends",
    "compare": "/compare",
    "alerts": "/alerts",
    "health": "/health",
    "accounts": "/users",
    "password": "/account/password",
    "installer": "/installer/",
    "calibration": "/installer/cameras/west",
}
WIDTHS = (390, 768, 1024, 1280, 1920)
#: docs/screenshots/ is rewritten only when this names a folder (``make screenshots``)
SCREENSHOTS = os.environ.get("FOOTFALL_SCREENSHOTS")
SHOT_WIDTHS = (1024, 390)
_LAYOUT = """
const vw = document.documentElement.clientWidth, bad = [];
const name = (el) => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '')
  + (typeof el.className === 'string' && el.className.trim()
     ? '.' + el.className.trim().split(/\\s+/).join('.') : '');
for (const el of document.body.querySelectorAll('*')) {
  const r = el.getBoundingClientRect();
  if (r.width === 0 && r.height === 0) { continue; }
  if (r.right > vw + 1 || r.left < -1) {
    bad.push(`${name(el)} spans ${Math.round(r.left)}..${Math.round(r.right)} of ${vw} px`);
  }
  const overflow = getComputedStyle(el).overflowX, field = el.matches('input, select, textarea');
  if (overflow !== 'visible' && !field && el.scrollWidth > el.clientWidth + 1) {
    bad.push(`${name(el)} clips ${el.scrollWidth} px into ${el.clientWidth} px`);
  }
}
const who = document.querySelector('.who'), w = who && who.getBoundingClientRect();
const seen = !!w && w.width > 0 && w.left >= 0 && w.right <= vw
  && getComputedStyle(who).visibility === 'visible';
return {bad: bad.slice(0, 12), who: seen ? who.textContent.trim() : null,
        height: document.documentElement.scrollHeight};
"""
_DRAWN = """
return [...document.querySelectorAll('script.chart-data')].every(b =>
  document.querySelector('#' + b.dataset.target + ' canvas'));
"""


def viewport(driver: WebDriver, width: int, height: int = 900) -> None:
    """Emulate a screen exactly ``width`` CSS pixels wide."""
    metrics = {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)


def test_every_page_fits_every_width_with_the_user_shown(
    store: Store, driver: WebDriver, artifacts: Path
) -> None:
    steps = Steps(driver, artifacts, "layout")
    sign_in(driver, store.url, "installer")
    problems: dict[str, list[str]] = {}
    try:
        for width in WIDTHS:
            viewport(driver, width)
            for name, path in ALL_PAGES.items():
                driver.get(f"{store.url}{path}")
                wait(driver).until(ec.presence_of_element_located((By.CSS_SELECTOR, "main > *")))
                wait(driver).until(lambda d: d.execute_script(_DRAWN))
                seen = driver.execute_script(_LAYOUT)
                if seen["who"] != "installer · installer":
                    seen["bad"].append(f"the user and role are not visible: {seen['who']}")
                if seen["bad"]:
                    problems[f"{name} at {width} px"] = seen["bad"]
                steps.no_console_errors(f"{name} at {width} px")
                if SCREENSHOTS and width in SHOT_WIDTHS:
                    viewport(driver, width, min(int(seen["height"]), 6000))
                    folder = Path(SCREENSHOTS)
                    folder.mkdir(parents=True, exist_ok=True)
                    assert driver.save_screenshot(str(folder / f"{name}-{width}.png"))
                    viewport(driver, width)
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    report = "\n".join(f"{where}: {'; '.join(what)}" for where, what in problems.items())
    assert not problems, f"layout problems:\n{report}"


def test_today_headline_numbers_match_the_database(
    tmp_path: Path, driver: WebDriver, artifacts: Path
) -> None:
    (tmp_path / "sim").mkdir()
    sim = build_sim_store(tmp_path / "sim")
    config = load_config(sim.config)
    analysed_to = sim.start_ms + 3 * BUCKET_MS
    now = analysed_to + 150_000  # the minute analysis has not closed the bucket of now
    shutil.copyfile(sim.db, tmp_path / "box.db")
    stop_analysis_at(tmp_path / "box.db", analysed_to)
    app = make_app(tmp_path, sim.config)
    app.config["FOOTFALL_CLOCK"] = lambda: now / 1000
    visitors = visitors_by_engine(tmp_path / "box.db", config, analysed_to, now)
    conn = connect(tmp_path / "box.db", readonly=True)
    try:
        inside = snapshot(conn, config, now).store_occupancy
    finally:
        conn.close()
    server = start_server(app)
    try:
        sign_in(driver, server.url, "manager")
        driver.get(f"{server.url}/")
        shown = wait(driver).until(ec.presence_of_element_located((By.ID, "today-visitors")))
        assert shown.find_element(By.TAG_NAME, "strong").text == str(visitors)
        inside_now = driver.find_element(By.CSS_SELECTOR, "#today-inside #store-occupancy strong")
        assert inside_now.text == str(inside)
        assert "of 250 allowed" in driver.find_element(By.ID, "today-inside").text
        assert "17:00–18:00" in driver.find_element(By.ID, "today-peak").text
        wait(driver).until(lambda d: d.execute_script(_DRAWN))
        Steps(driver, artifacts, "today").shot("headline")
        driver.get(f"{server.url}/live")
        live = wait(driver).until(ec.presence_of_element_located((By.ID, "store-occupancy")))
        assert live.find_element(By.TAG_NAME, "strong").text == str(inside)  # as on Live
        Steps(driver, artifacts, "today").no_console_errors("Today and Live")
    finally:
        server.stop()


def test_installer_draws_a_zone_and_it_is_saved_in_the_yaml(
    store: Store, driver: WebDriver, artifacts: Path
) -> None:
    steps = Steps(driver, artifacts, "editor")
    sign_in(driver, store.url, "installer")
    steps.no_console_errors("sign-in")

    driver.get(f"{store.url}/installer/")
    svg = wait(driver).until(ec.presence_of_element_located((By.ID, "plan-editor")))
    wait(driver).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#plan-editor [data-zone]"))
    steps.shot("editor")
    steps.no_console_errors("the editor")

    corners = [(24.0, 13.0), (28.0, 13.0), (28.0, 16.0), (24.0, 16.0)]
    driver.find_element(By.ID, "tool-zone").click()
    for x, y in corners:
        click_at_metres(driver, svg, x, y)
    steps.shot("zone-drawn")
    click_at_metres(driver, svg, *corners[0])  # the first corner again closes the zone
    name = wait(driver).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, ".selected .item-id"))
    )
    assert name.get_attribute("value") == "zone-1"
    name.clear()
    name.send_keys("promo-table")
    kind = driver.find_element(By.CSS_SELECTOR, ".edit-list li.selected .zone-kind")
    Select(kind).select_by_value("queue")
    driver.find_element(By.ID, "layout-save").click()
    wait(driver).until(ec.text_to_be_present_in_element((By.ID, "editor-status"), "Saved."))
    steps.shot("zone-saved")
    steps.no_console_errors("saving the zone")

    saved = {z.id: z for z in load_config(store.config).zones}
    assert saved["promo-table"].kind == "queue"
    polygon = saved["promo-table"].polygon
    assert len(polygon) == len(corners)
    for (x, y), (ex, ey) in zip(polygon, corners, strict=True):
        assert abs(x - ex) < 0.15 and abs(y - ey) < 0.15, (polygon, corners)
    assert "# front wall; inside (y < 20)" in store.config.read_text()  # comments kept
    assert list(store.config.parent.glob("store.yaml.*.bak"))


def test_installer_calibrates_a_camera_on_its_live_frame(
    store: Store, driver: WebDriver, artifacts: Path
) -> None:
    steps = Steps(driver, artifacts, "calibration")
    sign_in(driver, store.url, "installer")
    driver.get(f"{store.url}/installer/cameras/west")
    camera = wait(driver).until(ec.presence_of_element_located((By.ID, "camera-view")))
    plan = driver.find_element(By.ID, "plan-editor")
    wait(driver).until(
        lambda d: d.execute_script(
            "const i = document.querySelector('#camera-view image');"
            "return !!i && i.getBBox().width > 0 && performance.getEntriesByType('resource')"
            ".some(e => e.name.includes('frame.jpg'))"
        )
    )
    for _ in driver.find_elements(By.CSS_SELECTOR, "#pair-list tr"):  # start from no pairs
        driver.find_element(By.CSS_SELECTOR, "#pair-list button").click()
    assert driver.find_elements(By.CSS_SELECTOR, "#pair-list tr") == []
    pairs = [((240, 120), (0.5, 0.5)), ((1680, 120), (11.5, 0.5)),
             ((1680, 960), (11.5, 19.5)), ((240, 960), (0.5, 19.5))]  # fmt: skip
    for (u, v), (x, y) in pairs:
        click_at_metres(driver, camera, u, v)
        click_at_metres(driver, plan, x, y)
    assert len(driver.find_elements(By.CSS_SELECTOR, "#pair-list tr")) == 4
    save = driver.find_element(By.ID, "calibration-save")
    assert not save.is_enabled()  # the error must be seen first
    driver.find_element(By.ID, "calibration-check").click()
    wait(driver).until(ec.text_to_be_present_in_element((By.ID, "editor-status"), "cm RMS"))
    steps.shot("calibration-checked")
    save.click()
    wait(driver).until(ec.text_to_be_present_in_element((By.ID, "editor-status"), "Saved."))
    steps.shot("calibration-saved")
    steps.no_console_errors("calibration")
    saved = load_config(store.config).camera("west").calibration
    assert len(saved) == 4
    for pair, ((u, v), (x, y)) in zip(saved, pairs, strict=True):
        assert abs(pair.image[0] - u) < 8 and abs(pair.image[1] - v) < 8, (pair, u, v)
        assert abs(pair.floor[0] - x) < 0.15 and abs(pair.floor[1] - y) < 0.15, (pair, x, y)
