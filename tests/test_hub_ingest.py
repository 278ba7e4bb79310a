"""The hub's ingest path against a real ``footfall hub serve`` process, on SQLite and PostgreSQL.

Every refusal is a 4xx with its reason, and the hub then holds nothing for that store
(every fact, rollup, ledger, batch and delivery table counted). Accepted batches are
idempotent by batch id, revisions win only upwards, and the hub SIGKILLed inside a
batch's transaction ends with all of the batch or none of it.
"""

from __future__ import annotations

import gzip
import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import select

import wire
from cloud_hub.schema import FACTS, HOURLY
from tests.conftest import wait_for
from tests.hub_support import (
    Hub,
    batch_of,
    footfall_rows,
    gzip_json,
    occupancy_rows,
    start_hub,
    window_rows,
)

# 2024-03-30 22:00 UTC: Berlin's last night of winter time (its clocks go forward at 01:00 UTC)
T0 = 1_711_836_000_000


def _nothing_stored(hub: Hub, store_id: str) -> None:
    counts = hub.counts(store_id)
    assert {k: v for k, v in counts.items() if v} == {}


def test_a_batch_is_applied_once_and_a_resent_id_is_a_duplicate(hub: Hub) -> None:
    store = hub.new_store()
    rows = footfall_rows(T0, 24)
    batch = batch_of(store, agg_footfall=rows, agg_windows=window_rows(T0, 24))
    answer = hub.send(batch)
    assert answer.status_code == 200, answer.text
    ack, downlink = wire.decode_answer(answer.content)
    assert ack == wire.Ack(batch.batch_id, len(rows) + 24, False) and downlink == []
    counts = hub.counts(store)
    assert counts["agg_footfall_5m"] == len(rows) and counts["agg_windows_5m"] == 24
    assert counts["applied_batches"] == 1
    # the box re-sends (its ack was lost): a fresh signature, the same batch id
    again = hub.send(batch, timestamp=int(time.time()) + 1)
    assert again.status_code == 200, again.text
    assert wire.decode_answer(again.content)[0] == wire.Ack(batch.batch_id, 0, True)
    after = hub.counts(store)
    assert after.pop("seen_deliveries") == counts.pop("seen_deliveries") + 1
    assert after == counts


def test_a_replayed_request_is_refused_409(hub: Hub) -> None:
    store = hub.new_store()
    batch = batch_of(store, agg_footfall=footfall_rows(T0, 2))
    body = wire.encode_batch(batch)
    headers = hub.sign(store, batch.batch_id, body)
    assert hub.post(body, headers).status_code == 200
    before = hub.counts(store)
    replay = hub.post(body, headers)
    assert replay.status_code == 409
    assert "replayed delivery" in replay.json()["error"]
    assert hub.counts(store) == before


def _fault_cases() -> dict[str, Callable[[Hub, str], tuple[bytes, dict[str, str]]]]:
    """Each fault: (body, headers) for a fresh store."""

    def signed(hub: Hub, store: str, body: bytes, batch_id: str | None = None,
               **change: str) -> tuple[bytes, dict[str, str]]:  # fmt: skip
        bid = batch_id or wire.new_batch_id()
        return body, {**hub.sign(store, bid, body), **change}

    def document(store: str, **change: Any) -> tuple[str, dict[str, Any]]:
        batch_id = wire.new_batch_id()
        doc = {"schema": 1, "store_id": store, "batch_id": batch_id, "created_ms": T0,
               "tables": {"agg_footfall": footfall_rows(T0, 2)}} | change  # fmt: skip
        return batch_id, doc

    def with_doc(**change: Any) -> Callable[[Hub, str], tuple[bytes, dict[str, str]]]:
        def make(hub: Hub, store: str) -> tuple[bytes, dict[str, str]]:
            batch_id, doc = document(store, **change)
            return signed(hub, store, gzip_json(doc), batch_id)

        return make

    def good(store: str) -> tuple[str, bytes]:
        batch = batch_of(store, agg_footfall=footfall_rows(T0, 12))
        return batch.batch_id, wire.encode_batch(batch)

    def truncated(hub: Hub, store: str) -> tuple[bytes, dict[str, str]]:
        batch_id, body = good(store)
        return signed(hub, store, body[: len(body) - 9], batch_id)

    def garbled(hub: Hub, store: str) -> tuple[bytes, dict[str, str]]:
        batch_id, _ = good(store)
        return signed(hub, store, gzip.compress(b'{"schema": 1, "store_id": "x", ]'), batch_id)

    def wrong_signature(hub: Hub, store: str) -> tuple[bytes, dict[str, str]]:
        batch_id, body = good(store)
        other = wire.sign(wire.generate_secret(), batch_id, int(time.time()), body)
        return signed(hub, store, body, batch_id, **{"webhook-signature": other})

    def tampered(hub: Hub, store: str) -> tuple[bytes, dict[str, str]]:
        batch_id, body = good(store)
        _, headers = signed(hub, store, body, batch_id)
        return wire.encode_batch(batch_of(store, agg_footfall=footfall_rows(T0, 1))), headers

    def skewed(hub: Hub, store: str) -> tuple[bytes, dict[str, str]]:
        batch_id, body = good(store)
        return body, hub.sign(store, batch_id, body, int(time.time()) - 400)

    def other_store(hub: Hub, store: str) -> tuple[bytes, dict[str, str]]:
        victim = hub.new_store()  # a real store, but not the signer
        batch = batch_of(victim, agg_footfall=footfall_rows(T0, 2))
        return signed(hub, store, wire.encode_batch(batch), batch.batch_id)

    def unknown_store(hub: Hub, store: str) -> tuple[bytes, dict[str, str]]:
        batch_id, body = good(store)
        return signed(hub, store, body, batch_id, **{"footfall-store": "no-such-store"})

    def oversize(hub: Hub, store: str) -> tuple[bytes, dict[str, str]]:
        return signed(hub, store, os.urandom(wire.MAX_BODY_BYTES + 1))

    def gzip_bomb(hub: Hub, store: str) -> tuple[bytes, dict[str, str]]:
        return signed(hub, store, gzip.compress(b" " * (wire.MAX_JSON_BYTES + 1)))

    def not_gzip(hub: Hub, store: str) -> tuple[bytes, dict[str, str]]:
        batch_id, doc = document(store)
        body = json.dumps(doc).encode()
        return signed(hub, store, body, batch_id, **{"Content-Encoding": "identity"})

    def id_mismatch(hub: Hub, store: str) -> tuple[bytes, dict[str, str]]:
        _, body = good(store)
        return signed(hub, store, body, wire.new_batch_id())

    def future(hub: Hub, store: str) -> tuple[bytes, dict[str, str]]:
        later = int(time.time() * 1000) // wire.BUCKET_MS * wire.BUCKET_MS + 2 * 86_400_000
        batch = batch_of(store, agg_footfall=footfall_rows(later, 1))
        return signed(hub, store, wire.encode_batch(batch), batch.batch_id)

    row = footfall_rows(T0, 1)[0]
    return {
        "400 the gzip stream is truncated": truncated,
        "400 the body is not JSON": garbled,
        "401 no signature matches": wrong_signature,
        "401 no signature matches ": tampered,
        "401 behind the receiver's clock (tolerance 300 s)": skewed,
        "400 unknown schema version 2": with_doc(schema=2),
        "403 but signed by": other_store,
        "401 unknown store 'no-such-store'": unknown_store,
        "400 unknown table 'track_points'": with_doc(tables={"track_points": [row]}),
        "400 unknown column 'x_m'": with_doc(tables={"agg_footfall": [row | {"x_m": 1.5}]}),
        "400 expected an integer, got str": with_doc(
            tables={"agg_footfall": [row | {"count": "7"}]}
        ),
        "413 the body is over": oversize,
        "413 decompresses to more than": gzip_bomb,
        "415 Content-Encoding: gzip": not_gzip,
        "400 is not the batch id": id_mismatch,
        "400 ahead of the hub's clock": future,
    }


FAULTS = _fault_cases()


@pytest.mark.parametrize("expected", FAULTS)
def test_a_fault_is_refused_with_its_reason_and_nothing_is_stored(hub: Hub, expected: str) -> None:
    store = hub.new_store()
    body, headers = FAULTS[expected](hub, store)
    answer = hub.post(body, headers)
    status, reason = expected.split(" ", 1)
    assert answer.status_code == int(status), answer.text
    assert answer.headers["Content-Type"] == "application/json"
    assert reason.strip() in answer.json()["error"]
    _nothing_stored(hub, store)
    log = hub.process.log.read_text()
    assert "Traceback" not in log


def test_a_bad_column_names_its_path(hub: Hub) -> None:
    store = hub.new_store()
    rows = footfall_rows(T0, 3)
    rows[5]["direction"] = "sideways"
    document = {"schema": 1, "store_id": store, "batch_id": wire.new_batch_id(),
                "created_ms": T0, "tables": {"agg_footfall": rows}}  # fmt: skip
    body = gzip_json(document)
    answer = hub.post(body, hub.sign(store, str(document["batch_id"]), body))
    assert answer.status_code == 400
    assert answer.json() == {
        "error": "'sideways' is not one of in, out",
        "path": "$.tables.agg_footfall[5].direction",
    }
    _nothing_stored(hub, store)


def _footfall(hub: Hub, store: str) -> list[tuple[int, int]]:
    facts, hourly = FACTS["agg_footfall"], HOURLY["agg_footfall"]
    with hub.engine.connect() as conn:
        fact = conn.execute(
            select(facts.c.count, facts.c.rev).where(
                facts.c.store_id == store, facts.c.line_id == "door", facts.c.direction == "in"
            )
        ).one()
        hour = conn.execute(
            select(hourly.c.sum_count).where(
                hourly.c.store_id == store, hourly.c.line_id == "door", hourly.c.direction == "in"
            )
        ).scalar_one()
    return [(fact.count, fact.rev), (hour, fact.rev)]


def test_a_higher_revision_replaces_a_lower_or_equal_one_does_not(hub: Hub) -> None:
    store = hub.new_store()

    def send(count: int, rev: int) -> int:
        rows = [{"bucket_ms": T0, "line_id": "door", "direction": "in", "count": count, "rev": rev}]
        answer = hub.send(batch_of(store, agg_footfall=rows))
        assert answer.status_code == 200, answer.text
        return wire.decode_answer(answer.content)[0].applied_rows

    assert send(5, 2) == 1
    assert send(99, 1) == 0  # an older revision arriving late
    assert send(77, 2) == 0  # the same revision again
    assert _footfall(hub, store) == [(5, 2), (5, 2)]
    assert send(8, 3) == 1  # the bucket re-analysed on the box
    assert _footfall(hub, store) == [(8, 3), (8, 3)]


def test_the_hub_killed_mid_batch_applies_it_wholly_or_not_at_all(
    hub_db: str, tmp_path: Path, hub: Hub
) -> None:
    store = hub.new_store()
    batch = batch_of(
        store, agg_footfall=footfall_rows(T0, 288), agg_windows=window_rows(T0, 288),
        agg_occupancy=occupancy_rows(T0, 288),
    )  # fmt: skip
    marker = tmp_path / "in-transaction"
    paused = start_hub(
        hub_db, tmp_path / "paused.log", {"FOOTFALL_HUB_TEST_PAUSE_BEFORE_COMMIT": str(marker)}
    )
    outcome: list[object] = []

    def post() -> None:
        body = wire.encode_batch(batch)
        headers = hub.sign(store, batch.batch_id, body)
        try:
            outcome.append(requests.post(paused.url + wire.BATCH_PATH, data=body,
                                         headers=headers, timeout=120))  # fmt: skip
        except requests.RequestException as exc:
            outcome.append(exc)

    sender = threading.Thread(target=post)
    sender.start()
    try:
        wait_for(marker.exists, 60, "the hub to be inside the batch's transaction")
        paused.process.kill()  # SIGKILL, the rows written but not committed
        paused.process.wait(timeout=30)
    finally:
        sender.join(timeout=60)
        paused.stop()
    assert isinstance(outcome[0], requests.ConnectionError), outcome
    _nothing_stored(hub, store)  # not a row of it (the module's own hub reads the same database)
    answer = hub.send(batch)  # the box retries after the hub is back
    assert answer.status_code == 200, answer.text
    assert wire.decode_answer(answer.content)[0] == wire.Ack(batch.batch_id, batch.row_count, False)
    counts = hub.counts(store)
    assert counts["agg_footfall_5m"] == 288 * 4 and counts["agg_windows_5m"] == 288
    assert counts["agg_occupancy_5m"] == 288 * 2 and counts["applied_batches"] == 1
    again = hub.send(batch, timestamp=int(time.time()) + 1)
    assert wire.decode_answer(again.content)[0].duplicate
