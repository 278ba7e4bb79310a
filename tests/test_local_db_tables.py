"""Tests for local_db's typed table functions (accounts, sessions, login failures, alert log).

Each test runs against a real, migrated SQLite file; "two connections" means two
connections to that file, as the dashboard's processes and threads have.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from local_db import connect, migrate
from local_db.alert_log import (
    AlertChange,
    active_alerts,
    alert_history,
    clear_rules,
    get_alert,
    record_changes,
    set_acknowledged,
)
from local_db.login_failures import FailureCounts, forget_failures, reserve_failure
from local_db.web_sessions import (
    delete_session,
    delete_user_sessions,
    get_session,
    insert_session,
    touch_session,
)
from local_db.web_users import (
    add_setting,
    create_first_user,
    get_credentials,
    get_setting,
    get_user,
    has_users,
    insert_user,
    list_users,
    set_password_hash,
    set_setting,
)

T0 = 1_700_000_000_000
WINDOW_MS = 300_000


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    path = tmp_path / "box.db"
    conn = connect(path)
    try:
        migrate(conn)
    finally:
        conn.close()
    return path


@pytest.fixture
def conn(db_path: Path) -> Iterator[sqlite3.Connection]:
    c = connect(db_path)
    yield c
    c.close()


@pytest.fixture
def other(db_path: Path) -> Iterator[sqlite3.Connection]:
    """A second connection that gives up on a lock at once."""
    c = connect(db_path, busy_timeout_ms=0)
    yield c
    c.close()


def count(conn: sqlite3.Connection, table: str) -> int:
    return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


# --- accounts and settings ---------------------------------------------------------------


def test_users_are_stored_and_read_typed(conn: sqlite3.Connection) -> None:
    assert not has_users(conn)
    assert insert_user(conn, "zoe", "hash-z", "staff", T0)
    assert insert_user(conn, "ann", "hash-a", "installer", T0 + 1)
    assert not insert_user(conn, "ann", "other", "staff", T0 + 2)  # taken: nothing changes
    assert has_users(conn)
    assert [(u.username, u.role, u.created_ms) for u in list_users(conn)] == [
        ("ann", "installer", T0 + 1),
        ("zoe", "staff", T0),
    ]
    user = get_user(conn, "ann")
    assert user is not None and user.role == "installer"
    creds = get_credentials(conn, "ann")
    assert creds is not None and (creds.password_hash, creds.role) == ("hash-a", "installer")
    assert get_user(conn, "nobody") is None and get_credentials(conn, "nobody") is None


def test_an_unknown_role_is_refused_by_the_table(conn: sqlite3.Connection) -> None:
    with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
        insert_user(conn, "ann", "hash", "owner", T0)
    assert not has_users(conn)


def test_a_new_password_ends_the_sessions_in_one_transaction(conn: sqlite3.Connection) -> None:
    insert_user(conn, "ann", "old", "manager", T0)
    insert_user(conn, "bob", "bob's", "staff", T0)
    for key, name in (("s1", "ann"), ("s2", "ann"), ("s3", "bob")):
        insert_session(conn, key, name, now_ms=T0, expires_ms=T0 + 10_000, idle_cutoff_ms=0)
    assert set_password_hash(conn, "nobody", "x") is None
    assert count(conn, "web_sessions") == 3
    assert set_password_hash(conn, "ann", "new") == 2
    creds = get_credentials(conn, "ann")
    assert creds is not None and creds.password_hash == "new"
    assert get_session(conn, "s3") is not None and get_session(conn, "s1") is None


def test_a_failed_password_change_changes_nothing(conn: sqlite3.Connection) -> None:
    insert_user(conn, "ann", "old", "manager", T0)
    insert_session(conn, "s1", "ann", now_ms=T0, expires_ms=T0 + 10_000, idle_cutoff_ms=0)
    conn.execute(
        "CREATE TRIGGER no_logout BEFORE DELETE ON web_sessions "
        "BEGIN SELECT RAISE(ABORT, 'disk says no'); END"
    )
    with pytest.raises(sqlite3.IntegrityError, match="disk says no"):
        set_password_hash(conn, "ann", "new")
    assert not conn.in_transaction
    creds = get_credentials(conn, "ann")
    assert creds is not None and creds.password_hash == "old"  # the update was rolled back
    assert get_session(conn, "s1") is not None


def test_settings_keep_the_first_value_added(
    conn: sqlite3.Connection, other: sqlite3.Connection
) -> None:
    assert get_setting(conn, "secret_key") is None
    assert add_setting(conn, "secret_key", "first") == "first"
    assert add_setting(other, "secret_key", "second") == "first"
    set_setting(conn, "secret_key", "replaced")
    assert get_setting(other, "secret_key") == "replaced"


def first_user(conn: sqlite3.Connection, token_hash: str, username: str) -> str:
    return create_first_user(
        conn,
        token_key="setup_token_hash",
        token_hash=token_hash,
        username=username,
        password_hash="h",
        role="installer",
        created_ms=T0,
    )


def test_the_setup_token_makes_one_first_user(
    conn: sqlite3.Connection, other: sqlite3.Connection
) -> None:
    assert first_user(conn, "abc", "ann") == "closed"  # no token issued
    set_setting(conn, "setup_token_hash", "abc")
    assert first_user(conn, "abd", "ann") == "wrong_token"
    assert not has_users(conn) and get_setting(conn, "setup_token_hash") == "abc"
    assert first_user(conn, "abc", "ann") == "created"
    assert get_setting(conn, "setup_token_hash") is None
    set_setting(other, "setup_token_hash", "abc")  # a token issued again, too late
    assert first_user(other, "abc", "eve") == "closed"
    assert [u.username for u in list_users(conn)] == ["ann"]


def test_setup_waits_for_another_writer_and_then_sees_its_account(
    conn: sqlite3.Connection, other: sqlite3.Connection
) -> None:
    set_setting(conn, "setup_token_hash", "abc")
    conn.execute("BEGIN IMMEDIATE")
    insert_user(conn, "ann", "h", "installer", T0)
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        first_user(other, "abc", "eve")  # cannot read between the other's check and write
    conn.execute("COMMIT")
    assert first_user(other, "abc", "eve") == "closed"
    assert get_setting(conn, "setup_token_hash") == "abc"  # nothing of eve's was stored


def test_a_failed_first_user_keeps_the_token(conn: sqlite3.Connection) -> None:
    set_setting(conn, "setup_token_hash", "abc")
    with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
        create_first_user(
            conn,
            token_key="setup_token_hash",
            token_hash="abc",
            username="ann",
            password_hash="h",
            role="owner",
            created_ms=T0,
        )
    assert not conn.in_transaction
    assert get_setting(conn, "setup_token_hash") == "abc" and not has_users(conn)


# --- sessions ----------------------------------------------------------------------------


def test_sessions_start_touch_and_end(conn: sqlite3.Connection) -> None:
    insert_user(conn, "ann", "h", "staff", T0)
    insert_session(conn, "k1", "ann", now_ms=T0, expires_ms=T0 + 1000, idle_cutoff_ms=T0 - 500)
    row = get_session(conn, "k1")
    assert row is not None
    assert (row.username, row.created_ms, row.last_seen_ms, row.expires_ms) == (
        "ann",
        T0,
        T0,
        T0 + 1000,
    )
    assert touch_session(conn, "k1", T0 + 100)
    touched = get_session(conn, "k1")
    assert touched is not None and touched.last_seen_ms == T0 + 100
    assert not touch_session(conn, "gone", T0)
    assert delete_session(conn, "k1") and not delete_session(conn, "k1")
    assert get_session(conn, "k1") is None


def test_starting_a_session_sweeps_the_ended_ones(conn: sqlite3.Connection) -> None:
    insert_user(conn, "ann", "h", "staff", T0)
    insert_session(conn, "expired", "ann", now_ms=T0, expires_ms=T0 + 100, idle_cutoff_ms=0)
    insert_session(conn, "idle", "ann", now_ms=T0 + 50, expires_ms=T0 + 9000, idle_cutoff_ms=0)
    insert_session(conn, "live", "ann", now_ms=T0 + 90, expires_ms=T0 + 9000, idle_cutoff_ms=0)
    insert_session(
        conn, "new", "ann", now_ms=T0 + 100, expires_ms=T0 + 9000, idle_cutoff_ms=T0 + 50
    )
    kept = [k for k in ("expired", "idle", "live", "new") if get_session(conn, k) is not None]
    assert kept == ["live", "new"]
    assert delete_user_sessions(conn, "ann") == 2 and count(conn, "web_sessions") == 0


def test_a_session_for_no_account_stores_nothing(conn: sqlite3.Connection) -> None:
    insert_user(conn, "ann", "h", "staff", T0)
    insert_session(conn, "old", "ann", now_ms=T0, expires_ms=T0 + 1, idle_cutoff_ms=0)
    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
        insert_session(conn, "k", "ghost", now_ms=T0 + 5, expires_ms=T0 + 9, idle_cutoff_ms=0)
    assert not conn.in_transaction
    assert get_session(conn, "old") is not None  # the sweep was rolled back with the insert


# --- login failures ----------------------------------------------------------------------


def allow(counts: FailureCounts) -> int:
    return 0


def test_a_reservation_reads_the_counts_and_records_a_failure(conn: sqlite3.Connection) -> None:
    seen: list[FailureCounts] = []

    def policy(counts: FailureCounts) -> int:
        seen.append(counts)
        return 0

    first = reserve_failure(conn, "10.0.0.1", "ann", T0, WINDOW_MS, allow)
    reserve_failure(conn, "10.0.0.2", "ann", T0 + 10, WINDOW_MS, allow)
    reserve_failure(conn, "10.0.0.1", "bob", T0 + 20, WINDOW_MS, allow)
    assert first.row_id is not None and first.wait_ms == 0
    reserve_failure(conn, "10.0.0.1", "ann", T0 + 30, WINDOW_MS, policy)
    assert seen == [
        FailureCounts(
            address_failures=2,
            address_oldest_ms=T0,
            username_failures=2,
            last_for_pair_ms=T0,
        )
    ]
    assert count(conn, "web_login_failures") == 4
    assert forget_failures(conn, "10.0.0.1", "ann") == 2
    assert count(conn, "web_login_failures") == 2


def test_a_refused_reservation_records_nothing_and_old_failures_go(
    conn: sqlite3.Connection,
) -> None:
    reserve_failure(conn, "10.0.0.1", "ann", T0, WINDOW_MS, allow)
    reserve_failure(conn, "10.0.0.1", "ann", T0 + WINDOW_MS, WINDOW_MS, allow)
    refused = reserve_failure(conn, "10.0.0.1", "ann", T0 + WINDOW_MS + 1, WINDOW_MS, lambda c: 7)
    assert (refused.row_id, refused.wait_ms) == (None, 7)
    assert [int(r[0]) for r in conn.execute("SELECT t_ms FROM web_login_failures")] == [
        T0 + WINDOW_MS
    ]  # the first left the window and was deleted; the refused one was never written


def test_a_reservation_is_atomic_across_connections(
    conn: sqlite3.Connection, other: sqlite3.Connection
) -> None:
    """While one connection decides, another can neither read nor write the table."""
    blocked: list[str] = []

    def first_come(counts: FailureCounts) -> int:
        return 0 if counts.username_failures == 0 else 1

    def policy(counts: FailureCounts) -> int:
        try:
            reserve_failure(other, "10.0.0.9", "ann", T0, WINDOW_MS, first_come)
        except sqlite3.OperationalError as exc:
            blocked.append(str(exc))
        return first_come(counts)

    assert reserve_failure(conn, "10.0.0.1", "ann", T0, WINDOW_MS, policy).wait_ms == 0
    assert blocked == ["database is locked"]
    second = reserve_failure(other, "10.0.0.9", "ann", T0 + 1, WINDOW_MS, first_come)
    assert second.wait_ms == 1  # it saw the first's reservation once that had committed


def test_a_failing_policy_rolls_back_the_sweep(conn: sqlite3.Connection) -> None:
    reserve_failure(conn, "10.0.0.1", "ann", T0, WINDOW_MS, allow)

    def broken(counts: FailureCounts) -> int:
        raise RuntimeError("policy bug")

    with pytest.raises(RuntimeError, match="policy bug"):
        reserve_failure(conn, "10.0.0.1", "ann", T0 + 2 * WINDOW_MS, WINDOW_MS, broken)
    assert not conn.in_transaction
    assert count(conn, "web_login_failures") == 1


# --- alert log ---------------------------------------------------------------------------


def change(action: str, rule: str, t_ms: int, *, severity: str = "warning") -> AlertChange:
    return AlertChange(
        action=action,  # type: ignore[arg-type]  # the tests pass both literals
        rule_id=rule,
        kind="queue_length",
        severity=severity,
        target="till",
        t_ms=t_ms,
        value=6.0 if action == "raise" else None,
        message=f"{rule} {action}",
    )


def test_raises_and_clears_are_one_alert_per_episode(conn: sqlite3.Connection) -> None:
    ids = record_changes(
        conn,
        "shop",
        [change("raise", "q", T0), change("raise", "q", T0 + 1), change("clear", "other", T0)],
    )
    assert ids[0] == ids[1] > 0 and ids[2] == -1
    assert [a.id for a in active_alerts(conn, "shop")] == [ids[0]]
    assert record_changes(conn, "shop", [change("clear", "q", T0 + 5)]) == [ids[0]]
    cleared = get_alert(conn, ids[0])
    assert cleared is not None and cleared.cleared_ms == T0 + 5 and not cleared.active
    (again,) = record_changes(conn, "shop", [change("raise", "q", T0 + 9)])
    assert again != ids[0]
    assert [a.id for a in alert_history(conn, rule_id="q")] == [again, ids[0]]
    assert active_alerts(conn, "elsewhere") == []


def test_a_bad_change_rolls_back_the_whole_batch(conn: sqlite3.Connection) -> None:
    with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
        record_changes(
            conn, "shop", [change("raise", "q", T0), change("raise", "r", T0, severity="loud")]
        )
    assert not conn.in_transaction
    assert alert_history(conn) == []


def test_clearing_the_rules_that_went_away(conn: sqlite3.Connection) -> None:
    a, b, c = record_changes(
        conn,
        "shop",
        [change("raise", "gone", T0), change("raise", "kept", T0), change("raise", "x", T0)],
    )
    record_changes(conn, "shop", [change("clear", "x", T0 + 1)])
    assert clear_rules(conn, [], T0 + 2, " (removed)") == 0
    assert clear_rules(conn, ["gone", "x"], T0 + 3, " (removed)") == 1
    gone, kept, x = (get_alert(conn, i) for i in (a, b, c))
    assert gone is not None and (gone.cleared_ms, gone.message) == (T0 + 3, "gone raise (removed)")
    assert kept is not None and kept.active
    assert x is not None and (x.cleared_ms, x.message) == (T0 + 1, "x raise")


def test_an_alert_is_acknowledged_once(conn: sqlite3.Connection) -> None:
    (alert_id,) = record_changes(conn, "shop", [change("raise", "q", T0)])
    assert set_acknowledged(conn, alert_id, "ann", T0 + 1)
    assert not set_acknowledged(conn, alert_id, "bob", T0 + 2)
    assert not set_acknowledged(conn, alert_id + 1, "bob", T0 + 2)
    acked = get_alert(conn, alert_id)
    assert acked is not None and (acked.acked_by, acked.acked_ms) == ("ann", T0 + 1)
