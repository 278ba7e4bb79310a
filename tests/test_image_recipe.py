"""`scripts/check_image.sh` (`make lint`) passes on the recipe and fails on each regression."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed (apt: systemd)"
)


def _check(repo: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(repo / "scripts" / "check_image.sh")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _copy(tmp_path: Path) -> Path:
    """The parts of the checkout the check reads (it finds them beside itself)."""
    copy = tmp_path / "repo"
    for folder in ("scripts", "image_build", "systemd"):
        shutil.copytree(REPO / folder, copy / folder, symlinks=True)
    return copy


def test_the_recipe_passes() -> None:
    result = _check(REPO)
    assert result.returncode == 0, result.stderr
    assert "the Jetson overlay and its units, repart.d: OK" in result.stdout


def _bad_package(repo: Path) -> None:
    with (repo / "image_build" / "x86_64" / "packages.txt").open("a") as out:
        out.write("Python3 (the interpreter)\n")


def _duplicate_package(repo: Path) -> None:
    with (repo / "image_build" / "jetson" / "packages.txt").open("a") as out:
        out.write("python3-venv\n")


def _not_executable(repo: Path) -> None:
    (
        repo
        / "image_build"
        / "jetson"
        / "overlay"
        / "usr"
        / "lib"
        / "footfall"
        / "jetson-firstboot.sh"
    ).chmod(0o644)


def _weak_dropin(repo: Path) -> None:
    dropin = repo / "image_build" / "jetson" / "overlay" / "etc" / "systemd" / "system"
    (dropin / "footfall.service.d" / "jetson.conf").write_text(
        "[Service]\nMemoryDenyWriteExecute=false\nCapabilityBoundingSet=~\nPrivateTmp=false\n"
        "ProtectSystem=false\nProtectHome=false\nSystemCallFilter=\nRestrictAddressFamilies=\n"
        "ProtectKernelTunables=false\nProtectKernelModules=false\nDevicePolicy=auto\n"
    )


def _bad_repart(repo: Path) -> None:
    conf = repo / "image_build" / "x86_64" / "rootfs" / "usr" / "lib" / "repart.d" / "50-root.conf"
    conf.write_text("[Partition]\nType=root-sideways\n")


@pytest.mark.parametrize(
    ("breaks", "reason"),
    [
        (_bad_package, "x86_64/packages.txt: not a Debian package name"),
        (_duplicate_package, "jetson/packages.txt: listed twice: python3-venv"),
        (_not_executable, "jetson-firstboot.sh: not executable"),
        (_weak_dropin, "footfall.service: exposure"),
        (_bad_repart, "x86_64 repart.d: systemd-repart"),
    ],
)
def test_a_regression_fails_naming_it(
    tmp_path: Path, breaks: Callable[[Path], None], reason: str
) -> None:
    repo = _copy(tmp_path)
    breaks(repo)
    result = _check(repo)
    assert result.returncode == 1
    assert reason in result.stderr, result.stderr
