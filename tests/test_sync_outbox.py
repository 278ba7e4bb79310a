"""The box's outbox without a hub: revisions, batches, marks, secrets, backoff."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pandas as pd
import pytest

import wire
from appliance.config import ConfigError, parse_config
from local_db import connect, migrate, outbox
from local_db import migrations as migrations_module
from local_db.aggregates import WindowRow, replace_buckets
from sync import Backoff, SecretError, load_secrets, next_batch, plan
from sync.batches import batch_of
from tests.stores import SHOP
from tests.sync_support import BUCKET_MS, ROWS_PER_BUCKET, fill_box, new_box

T0 = 1_764_057_600_000  # 2025-11-25T08:00:00Z


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    with closing(new_box(tmp_path / "box.db")) as c:
        yield c


def _revisions(conn: sqlite3.Connection, table: str) -> dict[int, int]:
    return dict(
        conn.execute(
            "SELECT bucket_ms, rev FROM bucket_revisions WHERE table_name = ? AND store_id = 's'",
            (table,),
        ).fetchall()
    )


def _footfall(buckets: list[int], count: int) -> pd.DataFrame:
    return pd.DataFrame(
        [{"store_id": "s", "bucket_ms": b, "line_id": "door", "direction": "in", "count": count}
         for b in buckets]
    )  # fmt: skip


def _windows(buckets: list[int]) -> list[WindowRow]:
    return [WindowRow(b, b, 1.0, "complete", 1, 0) for b in buckets]


def test_a_rewritten_bucket_gets_a_higher_revision_and_the_others_keep_theirs(
    conn: sqlite3.Connection,
) -> None:
    three = [T0, T0 + BUCKET_MS, T0 + 2 * BUCKET_MS]
    replace_buckets(conn, "s", T0, T0 + 3 * BUCKET_MS, {"agg_footfall": _footfall(three, 1)},
                    _windows(three))  # fmt: skip
    first = _revisions(conn, "agg_footfall")
    assert set(first) == set(three) and len(set(first.values())) == 1
    assert _revisions(conn, "agg_windows") == first
    # the last bucket analysed again (late points): only it moves on
    replace_buckets(conn, "s", three[2], three[2] + BUCKET_MS,
                    {"agg_footfall": _footfall(three[2:], 5)}, _windows(three[2:]))  # fmt: skip
    second = _revisions(conn, "agg_footfall")
    assert second[three[2]] > first[three[2]]
    assert {b: second[b] for b in three[:2]} == {b: first[b] for b in three[:2]}
    # a bucket left without rows in a table has no revision there (nothing to send)
    replace_buckets(conn, "s", three[1], three[1] + BUCKET_MS,
                    {"agg_footfall": _footfall([], 0)}, _windows(three[1:2]))  # fmt: skip
    assert set(_revisions(conn, "agg_footfall")) == {three[0], three[2]}
    # revisions only grow, even when the highest one was removed
    replace_buckets(conn, "s", three[1], three[1] + BUCKET_MS,
                    {"agg_footfall": _footfall(three[1:2], 2)}, _windows(three[1:2]))  # fmt: skip
    assert _revisions(conn, "agg_footfall")[three[1]] > second[three[2]]


def test_the_migration_gives_buckets_analysed_before_it_revision_1(tmp_path: Path) -> None:
    later = {n: f for n, f in migrations_module.MIGRATIONS.items() if n >= "0007"}
    for name in later:
        del migrations_module.MIGRATIONS[name]
    try:
        with closing(connect(tmp_path / "old.db")) as old:
            migrate(old)
            old.execute("INSERT INTO agg_footfall VALUES ('s', ?, 'door', 'in', 3)", (T0,))
            old.execute("INSERT INTO agg_footfall VALUES ('s', ?, 'door', 'out', 2)", (T0,))
            old.execute("INSERT INTO agg_windows VALUES ('s', ?, 0, 1.0, 'complete', 3, 0)", (T0,))
    finally:
        migrations_module.MIGRATIONS.update(later)
    with closing(connect(tmp_path / "old.db")) as old:
        assert migrate(old) == sorted(later)
        rows = old.execute(
            "SELECT table_name, bucket_ms, rev, rows FROM bucket_revisions ORDER BY table_name"
        ).fetchall()
        assert rows == [("agg_footfall", T0, 1, 2), ("agg_windows", T0, 1, 1)]
        assert outbox.pending_rows(old, "s", "hub-s")["agg_footfall"] == 2


def test_batches_take_whole_buckets_oldest_first_within_the_budget(
    conn: sqlite3.Connection,
) -> None:
    fill_box(conn, "s", T0, 24)  # two engine writes of an hour each
    budget = 5 * ROWS_PER_BUCKET + 3
    planned = plan(conn, "s", "hub-s", T0, budget)
    assert planned is not None
    assert planned.rows <= budget
    batch = batch_of(conn, "s", "hub-s", planned)
    assert batch.row_count == planned.rows
    buckets = {int(str(row["bucket_ms"])) for rows in batch.tables.values() for row in rows}
    assert max(buckets) < T0 + 12 * BUCKET_MS  # the oldest write (the first hour) only
    assert len(buckets) == 6  # five whole buckets, and the first tables of the sixth
    for table, rows in batch.tables.items():  # a bucket's rows of a table come whole
        for b in {r["bucket_ms"] for r in rows}:
            (full,) = conn.execute(
                f"SELECT count(*) FROM {table} WHERE store_id = 's' AND bucket_ms = ?", (b,)
            ).fetchone()
            assert sum(r["bucket_ms"] == b for r in rows) == full
    # a bucket's window comes after its metric rows (the hub's ledger counts windows)
    windows = {r["bucket_ms"] for r in batch.tables["agg_windows"]}
    assert len(windows) == 5
    assert all(windows <= {r["bucket_ms"] for r in rows} for rows in batch.tables.values())
    decoded = wire.decode_batch(wire.encode_batch(batch))
    assert decoded.row_count == planned.rows


def test_marks_move_only_on_the_ack_of_the_pending_batch(conn: sqlite3.Connection) -> None:
    fill_box(conn, "s", T0, 12)
    total = 12 * ROWS_PER_BUCKET
    found = next_batch(conn, "s", "hub-s", T0, budget=total // 2)
    assert found is not None
    pending, body = found
    assert outbox.pending_batch(conn, "s", "hub-s") == pending  # saved before it is sent
    again = next_batch(conn, "s", "hub-s", T0 + 1, budget=total // 2)
    assert again == (pending, body)  # the same id and bytes until it is acknowledged
    assert sum(outbox.pending_rows(conn, "s", "hub-s").values()) == total
    assert not outbox.acknowledge(conn, "s", "hub-s", wire.new_batch_id(), T0)
    assert sum(outbox.pending_rows(conn, "s", "hub-s").values()) == total
    assert outbox.acknowledge(conn, "s", "hub-s", pending.batch_id, T0)
    assert sum(outbox.pending_rows(conn, "s", "hub-s").values()) == total - pending.rows
    assert outbox.pending_batch(conn, "s", "hub-s") is None
    assert outbox.sync_state(conn, "s", "hub-s").last_ack_batch == pending.batch_id
    # another target (the store enrolled at another hub) has its own marks
    assert sum(outbox.pending_rows(conn, "s", "other").values()) == total


def test_oldest_unacknowledged_write_is_the_lag(conn: sqlite3.Connection) -> None:
    assert outbox.oldest_unacknowledged_ms(conn, "s", "hub-s") is None
    fill_box(conn, "s", T0, 12)
    written = conn.execute("SELECT min(written_ms) FROM bucket_revisions").fetchone()[0]
    assert outbox.oldest_unacknowledged_ms(conn, "s", "hub-s") == written


def test_secrets_come_from_a_file_or_a_variable_and_errors_never_quote_them(
    tmp_path: Path,
) -> None:
    one, two = wire.generate_secret(), wire.generate_secret()
    file = tmp_path / "hub.secret"
    file.write_text(f"# rotated on Monday\n{one}\n\n{two}\n")
    assert load_secrets(secret_file=file) == [one, two]
    assert load_secrets(secret_env="HUB", environ={"HUB": f"{one} {two}"}) == [one, two]
    bad = "whsec_not*base64" + one[6:]
    cases = [
        ({"secret_env": "HUB", "environ": {}}, "$HUB is not set"),
        ({"secret_env": "HUB", "environ": {"HUB": f"{one} {bad}"}}, "secret 2 is malformed"),
        ({"secret_file": tmp_path / "missing"}, "cannot read it"),
        ({}, "exactly one of"),
        ({"secret_file": file, "secret_env": "HUB"}, "exactly one of"),
    ]
    for kwargs, message in cases:
        with pytest.raises(SecretError, match=message.replace("$", r"\$")) as caught:
            load_secrets(**kwargs)  # type: ignore[arg-type]
        assert one not in str(caught.value) and bad not in str(caught.value)


def test_backoff_is_full_jitter_exponential_and_capped() -> None:
    backoff = Backoff(base_s=2.0, cap_s=60.0)
    rng = random.Random(1)
    for failures, bound in ((1, 2.0), (2, 4.0), (3, 8.0), (6, 60.0), (500, 60.0)):
        delays = [backoff.delay_s(failures, rng) for _ in range(200)]
        assert all(0.0 <= d <= bound for d in delays)
        assert max(delays) > 0.8 * bound and min(delays) < 0.2 * bound  # spread over [0, bound]


@pytest.mark.parametrize(
    ("hub", "message"),
    [
        ("{url: 'https://hub.example', secret_env: HUB, secret_file: s.txt}", "hub: "),
        ("{url: 'https://hub.example'}", "hub: "),
        ("{url: 'https://user:pw@hub.example', secret_env: HUB}", "hub.url: "),
        ("{url: 'https://hub.example', store_id: 'Bad Id', secret_env: HUB}", "hub.store_id: "),
    ],
)
def test_a_bad_hub_section_is_an_error_with_its_line(hub: str, message: str) -> None:
    text = SHOP + f"hub: {hub}\n"
    line = text.count("\n")
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "store.yaml")
    assert [str(i) for i in caught.value.issues if f"store.yaml:{line}: {message}" in str(i)]
    assert "pw" not in str(caught.value)


def test_a_good_hub_section_parses() -> None:
    config = parse_config(SHOP + "hub: {url: 'https://hub.example/x', secret_file: hub.secret}\n")
    assert config.hub is not None and config.hub.store_id is None
