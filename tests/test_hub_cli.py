"""``footfall hub init|store add|rotate-secret|list`` on both back ends, and what rotation means."""

from __future__ import annotations

import re
import time
import uuid
from pathlib import Path

import pytest

import wire
from appliance.cli import main
from cloud_hub.app import create_app
from cloud_hub.db import open_engine
from cloud_hub.registry import active_secrets
from tests.hub_support import batch_of, footfall_rows

SECRET = re.compile(r"whsec_[A-Za-z0-9+/=]+")
T0 = 1_711_836_000_000


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_store_add_list_and_bad_input(hub_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    store = f"shop-{uuid.uuid4().hex[:8]}"
    add = ("hub", "store", "add", store, "--name", "Shop One", "--region", "north",
           "--tz", "Europe/Berlin", "--area-m2", "450", "--db", hub_db)  # fmt: skip
    code, out, _ = _run(capsys, *add)
    assert code == 0, out
    printed = SECRET.findall(out)
    engine = open_engine(hub_db)
    with engine.connect() as conn:
        assert active_secrets(conn, store, int(time.time() * 1000)) == printed
    code, _, err = _run(capsys, *add)
    assert (code, err.strip()) == (2, f"hub store add: store {store!r} exists already")
    bad = {
        ("--tz", "Mars/Olympus"): "unknown time zone 'Mars/Olympus'",
        ("--region", "North Region"): "region id 'North Region' must match",
    }
    for (option, value), reason in bad.items():
        argv = list(add)
        argv[argv.index(option) + 1] = value
        argv[3] = f"other-{uuid.uuid4().hex[:8]}"
        code, _, err = _run(capsys, *argv)
        assert code == 2 and reason in err, err
    argv = list(add)
    argv[argv.index("--area-m2") + 1] = "-3"
    assert _run(capsys, *argv)[0] == 2  # argparse: must be ≥ 0
    code, out, _ = _run(capsys, "hub", "store", "list", "--db", hub_db)
    assert code == 0
    row = next(line for line in out.splitlines() if line.startswith(store + "\t"))
    assert row.split("\t") == [store, "Shop One", "north", "Europe/Berlin", "450", "1", "0", "-"]
    engine.dispose()


def test_rotation_keeps_the_old_secret_for_the_grace_period_then_revokes_it(
    hub_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    store = f"shop-{uuid.uuid4().hex[:8]}"
    code, out, _ = _run(capsys, "hub", "store", "add", store, "--name", "S", "--region", "r",
                        "--tz", "UTC", "--db", hub_db)  # fmt: skip
    assert code == 0
    (old,) = SECRET.findall(out)
    code, out, _ = _run(capsys, "hub", "store", "rotate-secret", store, "--db", hub_db)
    assert code == 0 and "valid 168 h more" in out
    (new,) = SECRET.findall(out)
    engine = open_engine(hub_db)
    client = create_app(engine).test_client()

    def status(secrets: list[str]) -> int:
        batch = batch_of(store, agg_footfall=footfall_rows(T0, 1))
        body = wire.encode_batch(batch)
        headers = wire.sign_headers(secrets, batch.batch_id, store, body, int(time.time()))
        return client.post(wire.BATCH_PATH, data=body, headers=headers).status_code

    assert status([old]) == 200  # a box not yet switched
    assert status([new, old]) == 200  # a box switching signs with both
    assert status([new]) == 200
    code, out, _ = _run(capsys, "hub", "store", "rotate-secret", store, "--revoke-old",
                        "--db", hub_db)  # fmt: skip
    assert code == 0 and "revoked" in out
    (newest,) = SECRET.findall(out)
    assert status([new]) == 401 and status([old]) == 401
    assert status([newest]) == 200
    with engine.connect() as conn:
        assert active_secrets(conn, store, int(time.time() * 1000)) == [newest]
    code, _, err = _run(capsys, "hub", "store", "rotate-secret", "no-such", "--db", hub_db)
    assert (code, err.strip()) == (2, "hub store rotate-secret: no store 'no-such'")
    engine.dispose()


def test_init_migrates_and_refuses_other_databases(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path}/new/hub.db"
    code, out, _ = _run(capsys, "hub", "init", "--db", url)
    assert code == 0 and "hub database ready" in out
    assert (tmp_path / "new" / "hub.db").stat().st_mode & 0o777 == 0o600  # it holds secrets
    assert _run(capsys, "hub", "init", "--db", url)[0] == 0  # again: nothing to do
    code, _, err = _run(capsys, "hub", "init", "--db", "mysql://h/db")
    assert code == 2 and "the hub runs on sqlite or postgresql only" in err
