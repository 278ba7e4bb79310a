"""`make demo` as a newcomer runs it: both dashboards answer while it serves, then it stops."""

from __future__ import annotations

import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from appliance.cli import build_parser
from appliance.cli.web import demo_folder

from .conftest import REPO


def test_makefile_demo_runs_footfall_demo() -> None:
    recipe = (REPO / "Makefile").read_text().split("\ndemo:", 1)[1].split("\n\n", 1)[0]
    assert "footfall demo $(DEMO_ARGS)" in recipe


def test_demo_serves_the_video_store_and_the_live_simulated_store(
    tmp_path: Path, vtest: Path
) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "appliance.cli", "demo", "--dir", str(tmp_path), "--port", "0",
         "--serve-s", "20"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
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
        assert len(urls) == 2 and len(tokens) == 2, out
        for url in urls:
            with urllib.request.urlopen(f"{url}/setup", timeout=10) as page:
                assert b"Set up this box" in page.read()
    finally:
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    for db in ("vtest.db", "supermarket.db"):
        assert (tmp_path / db).stat().st_size > 0
    # the config copies are new files, not edits: no backup of them
    assert sorted(p.name for p in tmp_path.rglob("*.bak")) == []


def test_demo_folder_defaults_under_the_asset_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FOOTFALL_CACHE", str(tmp_path / "cache"))
    assert demo_folder(None) == tmp_path / "cache" / "demo"
    assert demo_folder(str(tmp_path / "elsewhere")) == tmp_path / "elsewhere"
    assert build_parser().parse_args(["demo"]).dir is None
