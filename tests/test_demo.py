"""`make demo` as a newcomer runs it: four dashboards and the hub answer, the offline store
catches up, then it stops."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
import urllib.request
from contextlib import closing
from pathlib import Path

import pytest
from sqlalchemy import func, select

from appliance.cli import build_parser
from appliance.cli.web import demo_folder
from cloud_hub.db import open_engine
from cloud_hub.schema import FACTS

from .conftest import REPO


def test_makefile_demo_runs_footfall_demo() -> None:
    recipe = (REPO / "Makefile").read_text().split("\ndemo:", 1)[1].split("\n\n", 1)[0]
    assert "footfall demo $(DEMO_ARGS)" in recipe


def test_demo_serves_four_stores_and_a_hub_the_offline_store_catches_up(
    tmp_path: Path, vtest: Path
) -> None:
    log = tmp_path / "demo.log"  # a file, not a pipe: nobody reads the logs while it runs
    with log.open("w") as err_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "appliance.cli", "demo", "--dir", str(tmp_path / "demo"),
             "--port", "0", "--serve-s", "45", "--offline-s", "5"],
            stdout=subprocess.PIPE, stderr=err_file, text=True,
        )  # fmt: skip
    assert proc.stdout is not None
    lines: list[str] = []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("Ctrl-C"):
            break
    out = "".join(lines)
    try:
        assert re.search(r"\d+ track points, \d+ anonymous tracks", out), out
        urls = re.findall(r"^(?:vtest|simulated)[^:]*: (http://\S+)$", out, re.M)
        tokens = re.findall(r"setup token \(one use, creates the installer account\): (\S+)", out)
        assert len(urls) == 4 and len(tokens) == 4, out
        for url in urls:
            with urllib.request.urlopen(f"{url}/setup", timeout=10) as page:
                assert b"Set up this box" in page.read()
        hub = re.search(r"^hub [^:]*: (http://\S+)$", out, re.M)
        assert hub and re.search(r"hub setup token \(one use, creates the first admin\): \S+", out)
        with urllib.request.urlopen(f"{hub[1]}/setup", timeout=10) as page:
            assert b"Create the first admin" in page.read()
    finally:
        rest, _ = proc.communicate(timeout=180)
    err = log.read_text()
    assert proc.returncode == 0, err
    assert re.search(r"^simulated fashion store[^:]*: caught up ", rest, re.M), rest + err
    # every store's rows reached the hub, the offline store's history too (oldest first)
    folder = tmp_path / "demo"
    engine = open_engine(f"sqlite:///{folder / 'hub.db'}")
    footfall = FACTS["agg_footfall"]
    with engine.connect() as conn:
        at_hub = dict(
            conn.execute(
                select(footfall.c.store_id, func.min(footfall.c.bucket_ms)).group_by(
                    footfall.c.store_id
                )
            ).all()
        )
    engine.dispose()
    assert sorted(at_hub) == ["sim-corner-shop", "sim-fashion", "sim-supermarket", "vtest-demo"]
    with closing(sqlite3.connect(folder / "fashion" / "fashion.db")) as box:
        (oldest,) = box.execute("SELECT min(bucket_ms) FROM agg_footfall").fetchone()
    assert at_hub["sim-fashion"] == oldest
    for db in ("vtest.db", "supermarket/supermarket.db", "hub.db"):
        assert (folder / db).stat().st_size > 0
    # the config copies are new files, not edits: no backup of them
    assert sorted(p.name for p in folder.rglob("*.bak")) == []


def test_demo_folder_defaults_under_the_asset_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FOOTFALL_CACHE", str(tmp_path / "cache"))
    assert demo_folder(None) == tmp_path / "cache" / "demo"
    assert demo_folder(str(tmp_path / "elsewhere")) == tmp_path / "elsewhere"
    assert build_parser().parse_args(["demo"]).dir is None
