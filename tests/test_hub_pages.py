"""Long tables of the hub's dashboard come in pages: every store once, a bad page a 400."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest

from cloud_hub import dashboard
from cloud_hub.accounts import create_user
from cloud_hub.app import create_app
from cloud_hub.db import migrate, open_engine
from cloud_hub.registry import add_store

PASSWORD = "pages test 4471 hub"
STORE = re.compile(r'<tr data-store="([^"]+)"')
LEDGER_ROW = re.compile(r'<tr data-store="([^"]+)" data-day="([^"]+)"')


@pytest.fixture
def admin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A signed-in admin's client of a hub with 7 stores; 3 to a league page, 2 to a ledger's."""
    monkeypatch.setattr(dashboard, "LEAGUE_PAGE", 3)
    monkeypatch.setattr(dashboard, "LEDGER_PAGE", 2)
    engine = open_engine(f"sqlite:///{tmp_path}/hub.db")
    migrate(engine)
    now_ms = int(time.time() * 1000)
    with engine.begin() as conn:
        for i in range(7):
            add_store(conn, f"shop-{i}", f"Shop {i}", "north", "Europe/Berlin", 100.0, now_ms)
        create_user(conn, "ada", PASSWORD, "admin")
    client = create_app(engine).test_client()
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)
    assert token
    form = {"username": "ada", "password": PASSWORD, "csrf_token": token[1]}
    assert client.post("/login", data=form).status_code == 302
    yield client
    engine.dispose()


def test_the_league_pages_show_every_store_once(admin: Any) -> None:
    seen: list[str] = []
    for page in (1, 2, 3):
        answer = admin.get("/", query_string={"page": str(page), "sort": "store"})
        assert answer.status_code == 200
        rows = STORE.findall(answer.text)
        assert len(rows) == (3 if page < 3 else 1)
        assert f"page {page} of 3" in answer.text
        assert ('rel="next"' in answer.text) == (page < 3)
        assert ('rel="prev"' in answer.text) == (page > 1)
        seen += rows
    assert sorted(seen) == [f"shop-{i}" for i in range(7)]
    assert "Stores 7–7 of 7" in admin.get("/", query_string={"page": "3"}).text


def test_the_ledger_pages_by_store_with_all_their_days(admin: Any) -> None:
    first = LEDGER_ROW.findall(admin.get("/ledger", query_string={"days": "3"}).text)
    assert sorted({store for store, _ in first}) == ["shop-0", "shop-1"]
    assert len(first) == 2 * 3
    last = admin.get("/ledger", query_string={"days": "3", "page": "4"})
    assert {store for store, _ in LEDGER_ROW.findall(last.text)} == {"shop-6"}
    csv = admin.get("/ledger.csv", query_string={"days": "3"}).text
    assert len(csv.strip().splitlines()) == 1 + 7 * 3  # the CSV has every store


@pytest.mark.parametrize("page", ["0", "4", "x", "-1"])
def test_a_page_out_of_range_is_a_400_with_the_reason(admin: Any, page: str) -> None:
    answer = admin.get("/", query_string={"page": page})
    assert answer.status_code == 400
    assert "page" in answer.text and "must be 1 to 3" in answer.text
