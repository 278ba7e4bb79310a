"""The systemd units pass `scripts/check_units.sh` (`make lint`), and a regression fails it."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "check_units.sh"
UNITS = REPO / "systemd"
SERVICES = sorted(p.name for p in UNITS.glob("*.service"))

pytestmark = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed (apt: systemd)"
)


def _check(unit_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), str(unit_dir)], capture_output=True, text=True, timeout=120, check=False
    )


def _copy_units(tmp_path: Path) -> Path:
    copy = tmp_path / "systemd"
    shutil.copytree(UNITS, copy)
    return copy


def test_the_real_units_pass_with_every_service_at_most_2() -> None:
    result = _check(UNITS)
    assert result.returncode == 0, result.stderr
    assert {"footfall.service", "litestream.service", "footfall-hub.service"} <= set(SERVICES)
    levels = dict(re.findall(r"^(\S+\.service): exposure ([0-9.]+)", result.stdout, re.M))
    assert sorted(levels) == SERVICES
    assert all(float(level) <= 2.0 for level in levels.values()), levels


def test_a_weakened_unit_fails_naming_the_unit_and_its_score(tmp_path: Path) -> None:
    units = _copy_units(tmp_path)
    unit = units / "footfall.service"
    text = unit.read_text()
    hardening = text.index("# --- Hardening")
    unit.write_text(text[:hardening] + text[text.index("[Install]") :])
    result = _check(units)
    assert result.returncode == 1
    match = re.search(
        r"footfall\.service: exposure ([0-9.]+) is above 2\.0 \(systemd-analyze security\)",
        result.stderr,
    )
    assert match is not None, result.stderr
    assert float(match.group(1)) > 2.0
    # the worst settings are listed, so the reader knows what to put back
    assert "CapabilityBoundingSet=" in result.stderr
    # the other units still pass and say so
    assert "litestream.service: exposure" in result.stdout


def test_dropping_one_setting_of_the_box_unit_is_noticed_in_its_score(tmp_path: Path) -> None:
    units = _copy_units(tmp_path)
    unit = units / "footfall.service"
    weak = re.sub(r"^(CapabilityBoundingSet|SystemCallFilter|RestrictAddressFamilies)=.*\n", "",
                  unit.read_text(), flags=re.M)  # fmt: skip
    unit.write_text(weak)
    result = _check(units)
    assert result.returncode == 1
    assert "footfall.service: exposure" in result.stderr


def test_a_misspelt_setting_fails_verify_with_its_file_and_line(tmp_path: Path) -> None:
    units = _copy_units(tmp_path)
    unit = units / "litestream.service"
    unit.write_text(unit.read_text().replace("ProtectSystem=strict", "ProtectSystem=stricter"))
    result = _check(units)
    assert result.returncode == 1
    assert re.search(
        r"litestream\.service: systemd-analyze verify: .*litestream\.service:\d+: "
        r"Failed to parse protect system value, ignoring: stricter",
        result.stderr,
    ), result.stderr


def test_a_unit_starting_a_program_by_a_relative_name_fails(tmp_path: Path) -> None:
    units = _copy_units(tmp_path)
    unit = units / "footfall-hub.service"
    unit.write_text(unit.read_text().replace("ExecStart=/opt/footfall/.venv/bin/", "ExecStart=./"))
    result = _check(units)
    assert result.returncode == 1
    assert "footfall-hub.service: systemd-analyze verify:" in result.stderr


def test_a_bad_sysusers_line_fails(tmp_path: Path) -> None:
    units = _copy_units(tmp_path)
    conf = units / "sysusers.d" / "footfall.conf"
    conf.write_text(conf.read_text() + "x footfall\n")
    result = _check(units)
    assert result.returncode == 1
    assert "footfall.conf: systemd-sysusers:" in result.stderr
