"""The managers' dashboard on a real ``footfall hub serve`` process, on SQLite and PostgreSQL.

Rows go in through the real signed ingest path; the tests then read the pages, CSVs and
the JSON API over HTTP as each role, and check the numbers against sums the test makes
itself from the rows it sent: role scoping (a manager sees only her region, a viewer
cannot POST, anonymous users are sent to sign in), the ledger's states and a backfill
filling it in, and the comparison (per m², per opening hour, against the region, last
week and last year, POS conversion by API and by CSV).
"""

from __future__ import annotations

import json
import re
import time
import zoneinfo
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import requests

import wire
from appliance.cli import main
from tests.hub_dashboard_support import (
    CSRF,
    PASSWORD,
    DayRows,
    add_account,
    add_store_to,
    csv_rows,
    day_rows,
    local_day_buckets,
    send_rows,
    sign_in,
)
from tests.hub_support import Hub

BERLIN, NEW_YORK, KOLKATA = "Europe/Berlin", "America/New_York", "Asia/Kolkata"
#: The comparison's stores: id → (region, time zone, m², opening hours text, hours a day)
STORES = {
    "a-shop": ("nord", BERLIN, 200.0, "mon-sun 9-21", 12),
    "b-shop": ("nord", BERLIN, 400.0, None, 24),
    "c-shop": ("sud", NEW_YORK, 300.0, "mon-sun 10-18", 8),
}
LEDGER_STORE = "e-shop"  # region "ledg", Kolkata (local hours start at :30 UTC)


def _local_today(tz: str) -> date:
    return datetime.now(zoneinfo.ZoneInfo(tz)).date()


@dataclass
class World:
    """What the module put in the hub, and what the test computes from it."""

    hub: Hub
    end: date
    rows: dict[tuple[str, date], DayRows] = field(default_factory=dict)
    pos: dict[tuple[str, date], tuple[int, float]] = field(default_factory=dict)

    @property
    def period(self) -> list[date]:
        return [self.end - timedelta(days=1), self.end]

    def visitors(self, store: str, days: list[date]) -> int:
        return sum(self.rows[(store, d)].visitors() for d in days)


def _weekly(text: str | None) -> list[int] | None:
    from cloud_hub.compare import parse_opening_hours

    return None if text is None else parse_opening_hours(text)


def _post_pos(hub: Hub, store: str, hours: list[dict[str, object]]) -> requests.Response:
    body = json.dumps({"store_id": store, "hours": hours}).encode()
    msg_id = wire.new_batch_id()
    headers = wire.sign_headers(hub.secrets[store], msg_id, store, body, int(time.time()))
    return requests.post(hub.url + "/api/v1/pos", data=body, headers=headers, timeout=30)


@pytest.fixture(scope="module")
def world(hub: Hub, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    end = datetime.now(UTC).date() - timedelta(days=3)
    w = World(hub, end)
    for n, (store, (region, tz, area, opening, _)) in enumerate(STORES.items()):
        add_store_to(hub, store, region, tz, area, _weekly(opening))
        for shift in (0, 7, 364):
            for day in w.period:
                when = day - timedelta(days=shift)
                rows = day_rows(local_day_buckets(when, tz), seed=hash((n, when.toordinal())))
                w.rows[(store, when)] = rows
                send_rows(hub, store, rows)
    # POS: a-shop through the signed API, b-shop through `footfall hub pos import`
    hours = []
    for k, day in enumerate(w.period):
        for hour in range(9, 21):
            tx, sales = 3 + hour + k, round(11.5 * (hour + 1) + k, 2)
            hours.append(
                {"hour": f"{day.isoformat()} {hour:02d}:00", "transactions": tx, "sales": sales}
            )
            total = w.pos.get(("a-shop", day), (0, 0.0))
            w.pos[("a-shop", day)] = (total[0] + tx, total[1] + sales)
    answer = _post_pos(hub, "a-shop", hours)
    assert answer.status_code == 200 and answer.json() == {"stored": 24}, answer.text
    lines = ["hour,transactions,sales"]
    for day in w.period:
        lines += [f"{day.isoformat()} 10:00,40,500.25", f"{day.isoformat()} 15:00,60,720"]
        w.pos[("b-shop", day)] = (100, 1220.25)
    csv_file = tmp_path_factory.mktemp("pos") / "b.csv"
    csv_file.write_text("\n".join(lines) + "\n")
    assert (
        main(["hub", "pos", "import", str(csv_file), "--store", "b-shop", "--db", hub.db_url]) == 0
    )
    add_account(hub, "ada", "admin")
    add_account(hub, "mia", "manager", {"nord"})
    add_account(hub, "vic", "viewer")
    add_account(hub, "ves", "viewer", {"sud"})
    add_store_to(hub, LEDGER_STORE, "ledg", KOLKATA, 100.0, None)
    yield w


def _query(w: World, **extra: str) -> dict[str, str]:
    return {"end": w.end.isoformat(), "days": "2", **extra}


def _page_rows(html: str) -> dict[str, list[str]]:
    """The league table's cells of each store row of a page."""
    rows = {}
    for store, body in re.findall(r'<tr data-store="([^"]+)">(.*?)</tr>', html, re.S):
        cells = re.findall(r"<td>(.*?)</td>", body, re.S)
        rows[store] = [re.sub(r"<[^>]+>", "", c).strip() for c in cells]
    return rows


def _close(got: str, want: float, places: int = 2) -> None:
    assert got != "", f"expected {want}, got an empty cell"
    assert abs(float(got) - want) <= 0.6 * 10**-places, (got, want)


def test_anonymous_users_are_sent_to_sign_in(world: World) -> None:
    base = world.hub.url
    for path in ("/", "/league.csv", "/ledger", "/stores/a-shop", "/users"):
        answer = requests.get(base + path, timeout=30, allow_redirects=False)
        assert answer.status_code == 302 and "/login?next=" in answer.headers["Location"], path
    api = requests.get(base + "/api/v1/league", timeout=30, allow_redirects=False)
    assert api.status_code == 401 and api.json() == {"error": "sign in first"}
    htmx = requests.get(
        base + "/", headers={"HX-Request": "true"}, timeout=30, allow_redirects=False
    )
    assert htmx.status_code == 401 and htmx.headers["HX-Redirect"].startswith("/login")
    wrong = requests.Session()
    token = CSRF.search(wrong.get(base + "/login", timeout=30).text)
    assert token
    refused = wrong.post(
        base + "/login",
        data={"csrf_token": token[1], "username": "ada", "password": "not the password"},
        timeout=30,
    )
    assert refused.status_code == 401 and "Wrong username or password" in refused.text


def test_the_manager_sees_only_her_region_everywhere(world: World) -> None:
    base, query = world.hub.url, _query(world)
    mia = sign_in(base, "mia")
    page = mia.get(base + "/", params=query, timeout=30)
    assert page.status_code == 200
    assert set(_page_rows(page.text)) == {"a-shop", "b-shop"}
    assert "c-shop" not in page.text and "sud" not in page.text and LEDGER_STORE not in page.text
    for path in ("/league.csv", "/ledger.csv"):
        got = {r["store"] for r in csv_rows(mia.get(base + path, params=query, timeout=30).text)}
        assert got == {"a-shop", "b-shop"}, path
    regions = csv_rows(mia.get(base + "/regions.csv", params=query, timeout=30).text)
    assert [r["region"] for r in regions] == ["nord"]
    api = mia.get(base + "/api/v1/league", params=query, timeout=30).json()
    assert {s["store"] for s in api["stores"]} == {"a-shop", "b-shop"}
    ledger = mia.get(base + "/ledger", params=query, timeout=30).text
    assert set(re.findall(r'data-store="([^"]+)"', ledger)) == {"a-shop", "b-shop"}
    for path in (
        "/stores/c-shop",
        "/stores/c-shop.csv",
        "/regions/sud",
        "/regions/sud.csv",
        f"/stores/{LEDGER_STORE}",
        "/regions/ledg",
    ):
        assert mia.get(base + path, timeout=30).status_code == 404, path
    # asking for another region by filter gives nothing of it
    other = mia.get(base + "/league.csv", params=_query(world, region="sud"), timeout=30)
    assert csv_rows(other.text) == []
    assert mia.get(base + "/users", timeout=30).status_code == 403
    assert mia.get(base + "/regions/nord", params=query, timeout=30).status_code == 200
    admin = sign_in(base, "ada")
    everyone = csv_rows(admin.get(base + "/league.csv", params=query, timeout=30).text)
    assert {r["store"] for r in everyone} == {*STORES, LEDGER_STORE}


def test_a_viewer_bound_to_a_region_sees_only_it(world: World) -> None:
    base, query = world.hub.url, _query(world)
    ves = sign_in(base, "ves")
    got = csv_rows(ves.get(base + "/league.csv", params=query, timeout=30).text)
    assert [r["store"] for r in got] == ["c-shop"]
    assert ves.get(base + "/stores/a-shop", timeout=30).status_code == 404
    assert ves.get(base + "/regions/nord", timeout=30).status_code == 404


def test_pages_read_the_day_totals_never_the_5_minute_facts(world: World) -> None:
    from sqlalchemy import event

    from cloud_hub.app import create_app
    from cloud_hub.db import open_engine

    engine = open_engine(world.hub.db_url)
    statements: list[str] = []
    client = create_app(engine).test_client()
    token = CSRF.search(client.get("/login").get_data(as_text=True))
    assert token
    form = {"csrf_token": token[1], "username": "ada", "password": PASSWORD}
    assert client.post("/login", data=form).status_code == 302

    def record(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    year = {"end": world.end.isoformat(), "days": "366"}
    for path in (
        "/",
        "/league.csv",
        "/regions.csv",
        "/api/v1/league",
        "/stores/a-shop",
        "/stores/a-shop.csv",
        "/regions/nord",
        "/regions/nord.csv",
        "/ledger",
        "/ledger.csv",
        "/users",
    ):
        assert client.get(path, query_string=year).status_code == 200, path
    engine.dispose()
    assert statements and not [s for s in statements if "_5m" in s]
    assert any("FROM day_totals" in s for s in statements)


def test_a_manager_uploads_pos_for_her_stores_only(world: World) -> None:
    from sqlalchemy import select

    from cloud_hub.schema import pos_hours

    base = world.hub.url
    mia = sign_in(base, "mia")
    token = {"csrf_token": mia.headers["X-CSRFToken"]}
    good = b"hour,transactions,sales\n2024-02-01 10:00,7,70.5\n"
    answer = mia.post(
        base + "/stores/b-shop/pos",
        data=token,
        timeout=30,
        files={"file": ("b.csv", good, "text/csv")},
        allow_redirects=False,
    )
    assert answer.status_code == 302
    bad = b"hour,transactions,sales\n2024-02-02 10:00,7,70.5\n2024-02-02 11:00,x,1\n"
    refused = mia.post(
        base + "/stores/b-shop/pos",
        data=token,
        timeout=30,
        files={"file": ("b.csv", bad, "text/csv")},
    )
    assert refused.status_code == 400
    assert "b.csv:3: transactions: &#39;x&#39; is not an integer" in refused.text
    other = mia.post(
        base + "/stores/c-shop/pos",
        data=token,
        timeout=30,
        files={"file": ("c.csv", good, "text/csv")},
    )
    assert other.status_code == 404
    with world.hub.engine.connect() as conn:
        held = conn.execute(
            select(pos_hours.c.store_id, pos_hours.c.day, pos_hours.c.transactions).where(
                pos_hours.c.day.in_(["2024-02-01", "2024-02-02"])
            )
        ).all()
    assert [tuple(r) for r in held] == [("b-shop", "2024-02-01", 7)]


def test_the_viewer_reads_but_cannot_post(world: World) -> None:
    base = world.hub.url
    vic = sign_in(base, "vic")
    assert vic.get(base + "/", params=_query(world), timeout=30).status_code == 200
    assert vic.get(base + "/stores/c-shop", params=_query(world), timeout=30).status_code == 200
    files = {"file": ("p.csv", b"hour,transactions,sales\n2024-01-01 10:00,1,2\n", "text/csv")}
    token = {"csrf_token": vic.headers["X-CSRFToken"]}
    assert (
        vic.post(base + "/stores/a-shop/pos", data=token, files=files, timeout=30).status_code
        == 403
    )
    assert (
        vic.post(
            base + "/users",
            data={**token, "username": "eve", "role": "admin", "password": "x" * 12},
            timeout=30,
        ).status_code
        == 403
    )
    # a POST without the CSRF token is refused even for an admin
    ada = sign_in(base, "ada")
    del ada.headers["X-CSRFToken"]
    answer = ada.post(
        base + "/users",
        data={"username": "eve", "role": "viewer", "password": "x" * 12},
        timeout=30,
    )
    assert answer.status_code == 400 and "CSRF" in answer.text


def _expected(w: World, store: str, days: list[date]) -> dict[str, float]:
    _, _, area, _, per_day = STORES[store]
    visitors = w.visitors(store, days)
    dwell = [w.rows[(store, d)].dwell() for d in days]
    queue = [w.rows[(store, d)].queue() for d in days]
    return {
        "visitors": visitors,
        "per_m2": visitors / area,
        "per_oh": visitors / (per_day * len(days)),
        "dwell": sum(t for _, t in dwell) / sum(v for v, _ in dwell),
        "queue": sum(t for _, t in queue) / sum(s for s, _ in queue),
    }


def test_the_comparison_matches_sums_of_the_ingested_rows(world: World) -> None:
    base, w = world.hub.url, world
    admin = sign_in(base, "ada")
    page = admin.get(base + "/", params=_query(w), timeout=30)
    table = {
        r["store"]: r
        for r in csv_rows(admin.get(base + "/league.csv", params=_query(w), timeout=30).text)
    }
    cells = _page_rows(page.text)
    for store, row in table.items():  # the page shows the CSV's numbers
        assert cells[store][: len(row)] == [v or "—" for v in row.values()], store
    week = [d - timedelta(days=7) for d in w.period]
    year = [d - timedelta(days=364) for d in w.period]
    mean_nord = (
        _expected(w, "a-shop", w.period)["per_oh"] + _expected(w, "b-shop", w.period)["per_oh"]
    ) / 2
    for store in STORES:
        want, row = _expected(w, store, w.period), table[store]
        assert (row["days_counted"], row["days_excluded"]) == ("2", "0")
        assert int(row["visitors"]) == want["visitors"]
        _close(row["visitors_per_m2"], want["per_m2"])
        _close(row["visitors_per_open_hour"], want["per_oh"])
        _close(row["dwell_s"], want["dwell"])
        _close(row["queue_wait_s"], want["queue"])
        _close(
            row["vs_last_week_pct"],
            (want["per_oh"] / _expected(w, store, week)["per_oh"] - 1) * 100,
            1,
        )
        _close(
            row["vs_last_year_pct"],
            (want["per_oh"] / _expected(w, store, year)["per_oh"] - 1) * 100,
            1,
        )
        if STORES[store][0] == "nord":
            _close(row["vs_region_pct"], (want["per_oh"] / mean_nord - 1) * 100, 1)
        else:
            _close(row["vs_region_pct"], 0.0, 1)  # the region's only store
    for store in ("a-shop", "b-shop"):
        tx = sum(w.pos[(store, d)][0] for d in w.period)
        sales = sum(w.pos[(store, d)][1] for d in w.period)
        visitors = w.visitors(store, w.period)
        _close(table[store]["conversion_pct"], tx / visitors * 100, 1)
        _close(table[store]["sales_per_visitor"], sales / visitors)
        _close(table[store]["avg_transaction"], sales / tx)
    assert table["c-shop"]["conversion_pct"] == ""  # no POS data: not a zero
    regions = {
        r["region"]: r
        for r in csv_rows(admin.get(base + "/regions.csv", params=_query(w), timeout=30).text)
    }
    nord = w.visitors("a-shop", w.period) + w.visitors("b-shop", w.period)
    assert int(regions["nord"]["visitors"]) == nord
    _close(regions["nord"]["visitors_per_m2"], nord / 600)
    _close(regions["nord"]["visitors_per_open_hour"], nord / (2 * 12 + 2 * 24))
    daily = csv_rows(admin.get(base + "/stores/a-shop.csv", params=_query(w), timeout=30).text)
    assert [(r["day"], int(r["visitors"]), int(r["transactions"])) for r in daily] == [
        (d.isoformat(), w.visitors("a-shop", [d]), w.pos[("a-shop", d)][0]) for d in w.period
    ]
    store_page = admin.get(base + "/stores/a-shop", params=_query(w), timeout=30)
    assert store_page.status_code == 200 and 'class="bars"' in store_page.text


def test_pos_refusals_store_nothing(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hub = world.hub
    bad = _post_pos(
        hub,
        "a-shop",
        [
            {"hour": "2024-01-01 10:00", "transactions": 1, "sales": 2},
            {"hour": "2024-01-01 11:00", "transactions": -1, "sales": 2},
        ],
    )
    assert bad.status_code == 400
    assert bad.json() == {"error": "transactions: -1 must be 0 to 10⁹", "path": "$.hours[1]"}
    forged = _post_pos(hub, "a-shop", [])
    assert forged.status_code == 200
    body = json.dumps({"store_id": "b-shop", "hours": []}).encode()
    headers = wire.sign_headers(
        hub.secrets["a-shop"], wire.new_batch_id(), "a-shop", body, int(time.time())
    )
    other = requests.post(hub.url + "/api/v1/pos", data=body, headers=headers, timeout=30)
    assert other.status_code == 403 and "signed by 'a-shop'" in other.json()["error"]
    replay = requests.post(hub.url + "/api/v1/pos", data=body, headers=headers, timeout=30)
    assert replay.status_code in (403, 409)
    unsigned = requests.post(hub.url + "/api/v1/pos", data=body, timeout=30)
    assert unsigned.status_code == 401
    csv_file = tmp_path / "bad.csv"
    csv_file.write_text("hour,transactions,sales\n2024-01-01 10:00,1,2\n2024-01-01 11:30,1,2\n")
    code = main(["hub", "pos", "import", str(csv_file), "--store", "c-shop", "--db", hub.db_url])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip() == f"{csv_file}:3: hour: '2024-01-01 11:30' does not start an hour"
    from sqlalchemy import func, select

    from cloud_hub.schema import pos_hours

    with hub.engine.connect() as conn:
        held = conn.execute(
            select(func.count())
            .select_from(pos_hours)
            .where(pos_hours.c.store_id.in_(["c-shop"]) | (pos_hours.c.day == "2024-01-01"))
        ).scalar_one()
    assert held == 0


def _hours(buckets: list[int], hours: range) -> list[int]:
    return [b for i, b in enumerate(buckets) if i // 12 in hours]


def _ledger(w: World, user: requests.Session, end: date, days: int) -> dict[str, dict[str, str]]:
    answer = user.get(
        w.hub.url + "/ledger.csv", params={"end": end.isoformat(), "days": str(days)}, timeout=30
    )
    return {r["day"]: r for r in csv_rows(answer.text) if r["store"] == LEDGER_STORE}


def test_the_ledger_states_and_a_backfill_filling_them_in(world: World) -> None:
    w, hub, store = world, world.hub, LEDGER_STORE
    t = _local_today(KOLKATA)
    days = {k: t - timedelta(days=k) for k in range(7)}
    sent: dict[int, DayRows] = {}

    def send(k: int, hours: range, status: str = "complete", seed: int = 0) -> DayRows:
        buckets = _hours(local_day_buckets(days[k], KOLKATA), hours)
        rows = day_rows(buckets, seed=seed or k, status=status)
        send_rows(hub, store, rows)
        return rows

    sent[6] = send(6, range(24))
    sent[5] = send(5, range(24))
    send(5, range(10, 11), "partial", seed=55)  # rev 1 again: the hour stays as first sent
    send(4, range(24), "missing")
    sent[2] = send(2, range(23))
    sent[1] = send(1, range(12))
    admin = sign_in(hub.url, "ada")
    ledger = _ledger(w, admin, t, 7)
    states = {k: ledger[days[k].isoformat()]["state"] for k in range(7)}
    # the partial resend had the same revision: it changed nothing, so day 5 is complete
    assert states == {
        6: "complete",
        5: "complete",
        4: "missing",
        3: "not_received",
        2: "partial",
        1: "arriving",
        0: "arriving",
    }
    partial_rows = day_rows(
        _hours(local_day_buckets(days[5], KOLKATA), range(10, 11)), 56, "partial"
    )
    for table in partial_rows.tables.values():
        for row in table:
            row["rev"] = 2  # re-analysed on the box: wins
    send_rows(hub, store, partial_rows)
    ledger = _ledger(w, admin, t, 7)
    assert ledger[days[5].isoformat()]["state"] == "partial"
    assert (
        ledger[days[5].isoformat()]["hours_complete"],
        ledger[days[5].isoformat()]["hours_partial"],
    ) == ("23", "1")
    assert (
        ledger[days[2].isoformat()]["hours_complete"],
        ledger[days[2].isoformat()]["hours_not_received"],
    ) == ("23", "1")
    assert (
        ledger[days[1].isoformat()]["hours_complete"],
        ledger[days[1].isoformat()]["hours_not_received"],
    ) == ("12", "12")
    assert ledger[days[1].isoformat()]["last_batch_utc"] != ""
    # totals leave the arriving day out (it is not a low day), and say so
    query = {"end": days[1].isoformat(), "days": "2"}
    league = csv_rows(admin.get(hub.url + "/league.csv", params=query, timeout=30).text)
    row = next(r for r in league if r["store"] == store)
    assert (row["days_counted"], row["days_excluded"], row["days_partial"]) == ("1", "1", "1")
    assert int(row["visitors"]) == sent[2].visitors()
    page = admin.get(hub.url + "/", params=query, timeout=30).text
    summary = re.search(r'<p class="ledger-summary".*?</p>', page, re.S)
    assert summary, page[:3000]
    assert " arriving store-days" in summary[0] or " arriving <" in summary[0], summary[0]
    assert "store-day(s) excluded" in summary[0]
    # the box catches up: every hole is filled and the days turn complete
    send(3, range(24))
    send(2, range(23, 24), seed=22)
    send(1, range(12, 24), seed=11)
    ledger = _ledger(w, admin, t, 7)
    after = {k: ledger[days[k].isoformat()]["state"] for k in range(7)}
    assert after == {
        6: "complete",
        5: "partial",
        4: "missing",
        3: "complete",
        2: "complete",
        1: "complete",
        0: "arriving",
    }
    strip = admin.get(
        hub.url + f"/stores/{store}", params={"end": t.isoformat(), "days": "7"}, timeout=30
    ).text
    assert strip.count('data-state="complete"') == 4 and 'data-state="arriving"' in strip


def test_bad_filters_are_a_400_with_the_reason(world: World) -> None:
    admin = sign_in(world.hub.url, "ada")
    for params, reason in (
        ({"end": "yesterday"}, "end: &#39;yesterday&#39; is not a date"),
        ({"days": "0"}, "days: &#39;0&#39; must be 1 to 366"),
    ):
        answer = admin.get(world.hub.url + "/league.csv", params=params, timeout=30)
        assert answer.status_code == 400 and reason in answer.text, answer.text
    assert "Traceback" not in world.hub.process.log.read_text()
