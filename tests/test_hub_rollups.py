"""The hub's hourly and daily rollups and its ledger equal the 5-minute rows they summarise.

Batches arrive out of order, revisions arrive late and out of order (a lower revision
after a higher one), in a zone that changes its clocks (Berlin, the night winter time
ends) and one at a half-hour offset (Kolkata).
"""

from __future__ import annotations

import random
import time
import zoneinfo
from collections import defaultdict
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

import wire
from cloud_hub.schema import DAILY, FACTS, HOURLY, day_totals, ledger_hours
from tests.hub_support import Hub, batch_of, footfall_rows, occupancy_rows, window_rows

T0 = 1_711_836_000_000  # 2024-03-30 22:00 UTC; Berlin goes to summer time at 01:00 UTC
BUCKETS = 2 * 288  # two days
Key = tuple[Any, ...]


def _key(table: str, row: dict[str, Any]) -> Key:
    return tuple(row[c.name] for c in wire.TABLES[table].key)


def _send_shuffled(hub: Hub, store: str, rows: list[tuple[str, dict[str, Any]]], batches: int,
                   rng: random.Random) -> None:  # fmt: skip
    rng.shuffle(rows)
    for i in range(batches):
        chunk = rows[i::batches]
        tables: dict[str, list[dict[str, Any]]] = defaultdict(list)
        seen: set[tuple[str, Key]] = set()
        for table, row in chunk:
            if (table, _key(table, row)) not in seen:  # one row per key in a batch
                seen.add((table, _key(table, row)))
                tables[table].append(row)
        answer = hub.send(batch_of(store, **tables))
        assert answer.status_code == 200, answer.text


def _local(bucket_ms: int, tz: zoneinfo.ZoneInfo) -> tuple[int, str]:
    """The local hour's start (UTC ms) and the local date of a bucket."""
    local = datetime.fromtimestamp(bucket_ms / 1000, tz)
    return bucket_ms - local.minute * 60_000, local.date().isoformat()


@pytest.mark.parametrize("tz_name", ["Europe/Berlin", "Asia/Kolkata"])
def test_rollups_and_ledger_equal_the_5_minute_rows_after_out_of_order_revised_ingest(
    hub: Hub, tz_name: str
) -> None:
    rng = random.Random(tz_name)
    store = hub.new_store(tz=tz_name)
    tz = zoneinfo.ZoneInfo(tz_name)
    first = [("agg_footfall", r) for r in footfall_rows(T0, BUCKETS, rev=1, seed=1)]
    first += [("agg_occupancy", r) for r in occupancy_rows(T0, BUCKETS, rev=1, seed=1)]
    first += [("agg_windows", r) for r in window_rows(T0, BUCKETS, rev=1, seed=1)]
    _send_shuffled(hub, store, list(first), 5, rng)

    # re-analysed buckets (every row of a bucket gets the new revision, as on the box):
    # revision 3 first, then revision 2 of them arriving late, and copies of revision 1
    # with other values (an equal revision changes nothing)
    again = {b for b in range(T0, T0 + BUCKETS * 300_000, 300_000) if rng.random() < 0.3}
    revised = [(t, r) for t, r in first if r["bucket_ms"] in again]
    later: list[tuple[str, dict[str, Any]]] = []
    for table, row in revised:
        new = dict(row, rev=3)
        for column in ("count", "max", "customers"):
            if column in new:
                new[column] = rng.randint(0, 50)
        if "mean" in new:
            new["mean"] = round(rng.uniform(0, 20), 3)
        if table == "agg_windows":
            new.update(status="partial", coverage=0.5)
        later.append((table, new))
    _send_shuffled(hub, store, list(later), 3, rng)
    stale = [
        (t, dict(r, rev=2, **{c: 999 for c in ("count", "max") if c in r})) for t, r in revised
    ]
    stale += [(t, dict(r, **{c: 777 for c in ("count", "max") if c in r})) for t, r in first[:50]]
    _send_shuffled(hub, store, stale, 2, rng)

    truth: dict[tuple[str, Key], dict[str, Any]] = {}
    for table, row in first + later:
        truth[(table, _key(table, row))] = row

    with hub.engine.connect() as conn:
        for table in ("agg_footfall", "agg_occupancy", "agg_windows"):
            facts, hourly, daily = FACTS[table], HOURLY[table], DAILY[table]
            stored = {
                _key(table, dict(r._mapping)): dict(r._mapping)
                for r in conn.execute(select(facts).where(facts.c.store_id == store))
            }
            want = {k: r for (t, k), r in truth.items() if t == table}
            assert stored.keys() == want.keys()
            columns = [c.name for c in wire.TABLES[table].values] + ["rev"]
            for key, row in want.items():
                assert {c: stored[key][c] for c in columns} == pytest.approx(
                    {c: row[c] for c in columns}
                ), (table, key)

            dims = [c.name for c in wire.TABLES[table].key[1:]]
            sums = {c: how for c, how in (("count", "sum"), ("customers", "sum"),
                                          ("staff", "sum"), ("coverage", "sum"), ("mean", "sum"),
                                          ("max", "max")) if c in facts.c}  # fmt: skip
            expect_hour: dict[Key, dict[str, float]] = {}
            expect_day: dict[Key, dict[str, float]] = {}
            for row in stored.values():  # the 5-minute rows, as the hub holds them
                hour, day = _local(row["bucket_ms"], tz)
                for expect, when in ((expect_hour, hour), (expect_day, day)):
                    agg = expect.setdefault((when, *(row[d] for d in dims)), {"buckets": 0})
                    agg["buckets"] += 1
                    for column, how in sums.items():
                        name = f"{how}_{column}"
                        old = agg.get(name)
                        value = row[column]
                        agg[name] = value if old is None else (
                            old + value if how == "sum" else max(old, value))  # fmt: skip
            for rollup, expect, when in ((hourly, expect_hour, "hour_ms"),
                                         (daily, expect_day, "day")):  # fmt: skip
                got = {
                    (r[when], *(r[d] for d in dims)): {
                        n: r[n] for n in ("buckets", *(f"{h}_{c}" for c, h in sums.items()))
                    }
                    for r in (
                        dict(x._mapping)
                        for x in conn.execute(select(rollup).where(rollup.c.store_id == store))
                    )
                }
                assert got.keys() == expect.keys(), (table, rollup.name)
                for key, values in expect.items():
                    assert got[key] == pytest.approx(values), (rollup.name, key)
        # Berlin's 2024-03-31 has 23 hours, so 23 * 12 windows
        day_buckets = {k[0]: v["buckets"] for k, v in expect_day.items()}
        if tz_name == "Europe/Berlin":
            assert day_buckets["2024-03-31"] == 23 * 12

        windows = [r for (t, _), r in truth.items() if t == "agg_windows"]
        ledger_expect: dict[int, list[int]] = {}
        for row in windows:
            counts = ledger_expect.setdefault(_local(row["bucket_ms"], tz)[0], [0, 0, 0, 0])
            counts[0] += 1
            counts[1 + ("complete", "partial", "missing").index(row["status"])] += 1
        ledger = {
            r.hour_ms: [r.buckets, r.complete, r.partial, r.missing]
            for r in conn.execute(select(ledger_hours).where(ledger_hours.c.store_id == store))
        }
        assert ledger == ledger_expect
        if tz_name == "Asia/Kolkata":  # local hours start at half past the UTC hour
            assert {h % 3_600_000 for h in ledger} == {1_800_000}

        # the comparison's day totals: the "in" crossings of the final rows, per local day
        visitors: dict[str, int] = defaultdict(int)
        for (table, _), row in truth.items():
            if table == "agg_footfall" and row["direction"] == "in":
                visitors[_local(row["bucket_ms"], tz)[1]] += row["count"]
        totals = {
            r.day: r.visitors
            for r in conn.execute(select(day_totals).where(day_totals.c.store_id == store))
        }
        assert totals == visitors and sum(totals.values()) > 0


def _hour_code(buckets: int, complete: int, missing: int) -> str:
    if complete >= 12:
        return "c"
    return "m" if buckets >= 12 and missing >= buckets else "p"


def _expected_ledger(
    hub: Hub, store: str, tz: zoneinfo.ZoneInfo, days: list[date], now_ms: int
) -> tuple[dict[str, tuple[str, int, int]], dict[date, tuple[str, tuple[str, ...], int | None]]]:
    """What the hourly ledger says: per day its letters and arrivals, and each day's ledger.

    The test's own reading of ``ledger_hours`` hour by hour, with the ledger's rules.
    """
    with hub.engine.connect() as conn:
        hours = {
            r.hour_ms: r
            for r in conn.execute(select(ledger_hours).where(ledger_hours.c.store_id == store))
        }
    newest = max(hours, default=None)
    per_day: dict[str, tuple[str, int, int]] = {}
    ledger: dict[date, tuple[str, tuple[str, ...], int | None]] = {}
    names = {"c": "complete", "p": "partial", "m": "missing", "-": "not_received"}
    for day in sorted({_local(h, tz)[1] for h in hours} | {d.isoformat() for d in days}):
        local = date.fromisoformat(day)
        start = int(datetime(local.year, local.month, local.day, tzinfo=tz).timestamp() * 1000)
        following = local + timedelta(days=1)
        end = int(
            datetime(following.year, following.month, following.day, tzinfo=tz).timestamp() * 1000
        )
        starts = range(start, end, 3_600_000)
        codes = "".join(
            _hour_code(hours[h].buckets, hours[h].complete, hours[h].missing)
            if h in hours else "-"
            for h in starts
        )  # fmt: skip
        arrived = [hours[h] for h in starts if h in hours]
        if arrived:
            per_day[day] = (
                codes,
                min(r.first_received_ms for r in arrived),
                max(r.last_received_ms for r in arrived),
            )
        if local not in days:
            continue
        states = tuple(
            "future" if h >= now_ms else names[c] for h, c in zip(starts, codes, strict=True)
        )
        if all(s == "future" for s in states):
            state = "future"
        elif now_ms < end:
            state = "arriving"
        elif all(s == "not_received" for s in states):
            state = "not_received"
        elif "not_received" in states and (newest is None or newest + 3_600_000 < end):
            state = "arriving"
        elif all(s == "complete" for s in states):
            state = "complete"
        elif all(s == "missing" for s in states):
            state = "missing"
        else:
            state = "partial"
        ledger[local] = (state, states, max((r.last_received_ms for r in arrived), default=None))
    return per_day, ledger


def _assert_days_match_hours(
    hub: Hub, store: str, tz: zoneinfo.ZoneInfo, days: list[date], nows: list[int]
) -> None:
    from cloud_hub.ledger import compute
    from cloud_hub.schema import ledger_days

    with hub.engine.connect() as conn:
        stored = {
            r.day: (r.hours, r.first_received_ms, r.last_received_ms)
            for r in conn.execute(select(ledger_days).where(ledger_days.c.store_id == store))
        }
        counts = {
            r.day: (r.complete, r.partial, r.missing)
            for r in conn.execute(select(ledger_days).where(ledger_days.c.store_id == store))
        }
    for now_ms in nows:
        per_day, expect = _expected_ledger(hub, store, tz, days, now_ms)
        assert stored == per_day
        assert counts == {
            d: (c.count("c"), c.count("p"), c.count("m")) for d, (c, _, _) in per_day.items()
        }
        with hub.engine.connect() as conn:
            got = compute(conn, [(store, str(tz))], days, now_ms)
        assert {d.day: (d.state, d.hours, d.updated_ms) for d in got.of(store)} == expect


@pytest.mark.parametrize("tz_name", ["Europe/Berlin", "Asia/Kolkata"])
def test_the_daily_ledger_equals_the_hourly_one_after_ingest_a_late_revision_and_a_backfill(
    hub: Hub, tz_name: str
) -> None:
    store = hub.new_store(tz=tz_name)
    tz = zoneinfo.ZoneInfo(tz_name)
    days = [date(2024, 3, 29) + timedelta(days=k) for k in range(6)]  # Berlin: 31st has 23 h
    first = int(datetime(2024, 3, 29, tzinfo=tz).timestamp() * 1000)
    five_days = [  # the 29th to 2nd of April, local
        r
        for r in window_rows(first, 5 * 288, seed=4)
        if _local(r["bucket_ms"], tz)[1] < "2024-04-03"
    ]
    outage = {r["bucket_ms"] for r in five_days if _local(r["bucket_ms"], tz)[1] == "2024-03-31"}
    in_day_4 = [r for r in five_days if _local(r["bucket_ms"], tz)[1] == "2024-04-02"]
    late_gap = {r["bucket_ms"] for r in in_day_4[100:160]}  # hours of day 4 not received
    sent = [r for r in five_days if r["bucket_ms"] not in outage | late_gap]
    for k in range(0, len(sent), 400):
        assert hub.send(batch_of(store, agg_windows=sent[k : k + 400])).status_code == 200
    mid_day = first + 3 * 86_400_000 + 13 * 3_600_000 + 1  # a moment inside the 4th day
    nows = [int(time.time() * 1000), mid_day, first]
    _assert_days_match_hours(hub, store, tz, days, nows)

    # a bucket re-analysed on the box (a higher revision) turns its hour partial or missing
    redo = next(r for r in sent if r["status"] == "complete")
    again = dict(redo, rev=2, status="missing", coverage=0.0)
    assert hub.send(batch_of(store, agg_windows=[again])).status_code == 200
    _assert_days_match_hours(hub, store, tz, days, nows)

    # the box comes back and sends the outage and the gap: the days fill in
    backfill = [r for r in five_days if r["bucket_ms"] in outage | late_gap]
    assert hub.send(batch_of(store, agg_windows=backfill)).status_code == 200
    _assert_days_match_hours(hub, store, tz, days, nows)
    with hub.engine.connect() as conn:
        from cloud_hub.ledger import compute

        states = {
            d.day: d.state for d in compute(conn, [(store, tz_name)], days, nows[0]).of(store)
        }
    assert states[date(2024, 3, 31)] != "not_received"
    assert states[date(2024, 4, 3)] == "not_received"
