"""First boot of a flashed box: per-box secrets, hostname and first config, once."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from appliance.box.firstboot import CONFIG_NAME, first_boot, wizard_lines
from appliance.cli import main
from appliance.config import load_config
from appliance.config.setup import SETUP_FILE, TOKEN_FILE, mark_done, read_state


def _files(etc: Path, hostname: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in [*sorted(etc.iterdir()), hostname]}


def test_first_boot_makes_the_box_its_own_and_a_valid_config(tmp_path: Path) -> None:
    etc, hostname = tmp_path / "etc" / "footfall", tmp_path / "hostname"
    hostname.write_text("footfall\n")
    made = first_boot(etc, hostname)
    assert made.pending and made.token
    assert made.hostname.startswith("footfall-") and len(made.hostname) == len("footfall-") + 6
    assert hostname.read_text() == made.hostname + "\n"
    assert (etc / TOKEN_FILE).read_text().strip() == made.token
    state = read_state(etc / SETUP_FILE)
    assert state is not None and state.accepts(made.token) and not state.accepts("guess")
    assert made.token not in (etc / SETUP_FILE).read_text()  # only its hash
    for secret in (TOKEN_FILE, SETUP_FILE):  # never readable by others, not for a moment
        assert stat.S_IMODE((etc / secret).stat().st_mode) == 0o600
    config = load_config(etc / CONFIG_NAME)
    assert config.store.id == made.hostname and config.cameras[0].source == "usb:0"
    assert main(["config", "check", str(etc / CONFIG_NAME)]) == 0


def test_two_boxes_get_different_secrets(tmp_path: Path) -> None:
    a = first_boot(tmp_path / "a", tmp_path / "a-hostname")
    b = first_boot(tmp_path / "b", tmp_path / "b-hostname")
    assert a.token != b.token and a.hostname != b.hostname


def test_first_boot_twice_changes_nothing_and_returns_the_same_token(tmp_path: Path) -> None:
    etc, hostname = tmp_path / "footfall", tmp_path / "hostname"
    first = first_boot(etc, hostname)
    before = _files(etc, hostname)
    again = first_boot(etc, hostname)
    assert again.created == () and again.token == first.token
    assert again.hostname == first.hostname
    assert _files(etc, hostname) == before


def test_first_boot_never_overwrites_an_existing_config_or_a_renamed_host(tmp_path: Path) -> None:
    etc, hostname = tmp_path / "footfall", tmp_path / "hostname"
    first_boot(etc, hostname)
    edited = (etc / CONFIG_NAME).read_text().replace("New store", "Corner shop")
    (etc / CONFIG_NAME).write_text(edited)
    hostname.write_text("till-1\n")
    first_boot(etc, hostname)
    assert (etc / CONFIG_NAME).read_text() == edited
    assert hostname.read_text() == "till-1\n"


def test_after_setup_no_token_is_printed_and_none_can_be_made(tmp_path: Path) -> None:
    etc, hostname = tmp_path / "footfall", tmp_path / "hostname"
    made = first_boot(etc, hostname)
    assert made.token
    mark_done(etc / SETUP_FILE, "2026-01-01T00:00:00+00:00")
    assert not (etc / TOKEN_FILE).exists()
    later = first_boot(etc, hostname)
    assert not later.pending and later.token is None and later.created == ()
    assert all(made.token not in line for line in wizard_lines(later, 8080))
    with pytest.raises(ValueError, match="setup is done"):
        first_boot(etc, hostname, new_token=True)


def test_a_lost_token_is_said_and_replaced_only_on_request(tmp_path: Path) -> None:
    etc, hostname = tmp_path / "footfall", tmp_path / "hostname"
    made = first_boot(etc, hostname)
    (etc / TOKEN_FILE).unlink()
    lost = first_boot(etc, hostname)
    assert lost.token is None and lost.pending
    assert "--new-token" in "\n".join(wizard_lines(lost, 8080))
    fresh = first_boot(etc, hostname, new_token=True)
    assert fresh.token and made.token and fresh.token != made.token
    assert fresh.hostname == made.hostname
    state = read_state(etc / SETUP_FILE)
    assert state is not None and state.accepts(fresh.token) and not state.accepts(made.token)


def test_cli_prints_the_wizard_and_token_then_exits_2_on_a_malformed_state(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    etc, hostname = tmp_path / "footfall", tmp_path / "hostname"
    args = ["firstboot", "--etc", str(etc), "--hostname-file", str(hostname), "--user", "nobody"]
    assert main(args) == 0
    out = capsys.readouterr().out
    token = (etc / TOKEN_FILE).read_text().strip()
    assert f"setup token (one use, opens the wizard): {token}" in out
    assert f"http://{hostname.read_text().strip()}.local:8080/wizard" in out
    (etc / SETUP_FILE).write_text(json.dumps({"state": "maybe"}))
    before = _files(etc, hostname)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"{etc / SETUP_FILE}: not a setup state" in err and "Traceback" not in err
    assert _files(etc, hostname) == before
