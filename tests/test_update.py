"""Signed updates (issue 16): the hub's TUF repository, the box's updater, its health gate,
its rollback by itself and its recovery from a SIGKILL at each step of an install.

Real parts throughout: a TUF repository made by ``cloud_hub.releases`` served over HTTP by
the hub's blueprint, python-tuf's client, ``pip install --target`` of a tiny wheel built
here, and a real HTTP process (the wheel's ``footprobe``) playing each version's box.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import Metadata, Targets

from appliance.update import Settings, UpdateRefusedError, apply_release, fetch_release, recover
from appliance.update.install import STEPS, running_version
from appliance.update.journal import read_journal
from cloud_hub.releases import Expiry, ReleaseError, Repository
from tests.conftest import REPO as REPO_ROOT
from tests.update_support import Box, ReleaseHub, box, release_hub

__all__ = ["box", "release_hub"]


def _fetcher(
    hub: ReleaseHub, settings: Settings, version: str | None = None
) -> Callable[[Path], object]:
    def fetch(dest: Path) -> object:
        return fetch_release(hub.url, hub.trust_root, settings.releases / "tuf", "stable",
                             version, dest)  # fmt: skip

    return fetch


def _apply(hub: ReleaseHub, box: Box, version: str | None = None, **kw: object) -> object:
    return apply_release(box.settings, _fetcher(hub, box.settings, version), version, **kw)  # type: ignore[arg-type]


def _installed_base(release_hub: ReleaseHub, box: Box) -> None:
    release_hub.publish("1.0.0")
    outcome = _apply(release_hub, box)
    assert outcome.outcome == "installed", outcome  # type: ignore[attr-defined]
    box.wait_healthy("1.0.0")


def test_a_good_update_applies(release_hub: ReleaseHub, box: Box) -> None:
    _installed_base(release_hub, box)
    release_hub.publish("1.1.0")
    outcome = _apply(release_hub, box)
    assert (outcome.outcome, outcome.version, outcome.running) == ("installed", "1.1.0", "1.1.0")  # type: ignore[attr-defined]
    releases = box.settings.releases
    assert running_version(releases) == "1.1.0"
    assert (
        (releases / "current" / "footprobe" / "__init__.py")
        .read_text()
        .startswith("VERSION = '1.1.0'")
    )
    assert (releases / "1.1.0" / "models" / "model-1.1.0.onnx").read_bytes() == b"weights of 1.1.0"
    assert box.healthz()["version"] == "1.1.0"
    journal = read_journal(releases)
    assert (journal.phase, journal.current, journal.previous) == ("idle", "1.1.0", "1.0.0")
    assert journal.last is not None and journal.last.outcome == "installed"
    assert not (releases / ".staging").exists()


def _tamper_target(hub: ReleaseHub) -> None:
    wheel = next((hub.repo.targets_dir / "stable" / "1.1.0").glob("*.whl"))
    data = bytearray(wheel.read_bytes())
    data[-100] ^= 0xFF  # the same length, another hash
    wheel.write_bytes(bytes(data))


def _bad_signature(hub: ReleaseHub) -> None:
    """Targets re-signed, in place of the real ones, by a key the root does not trust."""
    path = hub.repo.metadata_dir / f"{hub.repo.targets().signed.version}.targets.json"
    md = Metadata[Targets].from_file(str(path))
    md.signed.targets.pop("stable/1.1.0/release.json")
    md.signatures.clear()
    md.sign(CryptoSigner.generate_ed25519())
    md.to_file(str(path))


def _expired(hub: ReleaseHub) -> None:
    """Targets published with a validity already over (the hub stopped re-signing them)."""
    hub.repo.publish("stable", "1.2.0", build_wheel_for(hub, "1.2.0"),
                     expiry=Expiry(targets_days=-1))  # fmt: skip


def build_wheel_for(hub: ReleaseHub, version: str) -> Path:
    from tests.update_support import build_wheel

    return build_wheel(hub.work / "wheels" / "extra", version)


def _freeze(hub: ReleaseHub) -> None:
    """The mirror keeps serving a timestamp that was signed long ago and has expired."""
    hub.repo.refresh_timestamp(Expiry(timestamp_days=-1 / 24))


ATTACKS: dict[str, tuple[Callable[[ReleaseHub], None], str]] = {
    "tampered target": (_tamper_target, "does not match its signed hash or length"),
    "bad signature": (_bad_signature, "bad signature"),
    "expired metadata": (_expired, "expired metadata"),
    "freeze": (_freeze, "stale or frozen (a freeze attack)"),
}


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_an_attack_is_refused_with_a_clear_error(
    attack: str, release_hub: ReleaseHub, box: Box
) -> None:
    _installed_base(release_hub, box)
    release_hub.publish("1.1.0")
    make, message = ATTACKS[attack]
    make(release_hub)
    outcome = _apply(release_hub, box)
    assert outcome.outcome == "refused", outcome  # type: ignore[attr-defined]
    assert message in outcome.reason, outcome.reason  # type: ignore[attr-defined]
    assert "refusing" in outcome.reason  # type: ignore[attr-defined]
    assert running_version(box.settings.releases) == "1.0.0"
    assert not (box.settings.releases / "1.1.0").exists()
    assert box.healthz()["version"] == "1.0.0"
    journal = read_journal(box.settings.releases)
    assert journal.last is not None and journal.last.outcome == "refused"


def test_a_rollback_of_the_metadata_is_refused(release_hub: ReleaseHub, box: Box) -> None:
    """A mirror that serves the repository as it was before the box's last refresh."""
    _installed_base(release_hub, box)
    old = release_hub.work / "old-metadata"
    shutil.copytree(release_hub.repo.metadata_dir, old)
    release_hub.publish("1.1.0")
    assert _apply(release_hub, box).outcome == "installed"  # type: ignore[attr-defined]
    shutil.rmtree(release_hub.repo.metadata_dir)
    shutil.copytree(old, release_hub.repo.metadata_dir)
    with pytest.raises(UpdateRefusedError, match="older than the box already trusts"):
        fetch_release(release_hub.url, release_hub.trust_root, box.settings.releases / "tuf",
                      "stable", None, release_hub.work / "dl")  # fmt: skip


def test_an_older_version_is_refused_unless_forced(release_hub: ReleaseHub, box: Box) -> None:
    _installed_base(release_hub, box)
    release_hub.publish("1.1.0")
    assert _apply(release_hub, box).outcome == "installed"  # type: ignore[attr-defined]
    outcome = _apply(release_hub, box, "1.0.0")
    assert outcome.outcome == "refused"  # type: ignore[attr-defined]
    assert "older than the running 1.1.0: a downgrade is refused" in outcome.reason  # type: ignore[attr-defined]
    assert running_version(box.settings.releases) == "1.1.0"
    forced = _apply(release_hub, box, "1.0.0", allow_downgrade=True)
    assert (forced.outcome, forced.running) == ("installed", "1.0.0")  # type: ignore[attr-defined]


@pytest.mark.parametrize("mode", ["degraded", "crash"])
def test_a_failing_health_gate_rolls_back_by_itself(
    mode: str, release_hub: ReleaseHub, box: Box
) -> None:
    _installed_base(release_hub, box)
    release_hub.publish("1.1.0", mode=mode)
    settings = box.settings
    box.settings = Settings(settings.releases, settings.health_url, settings.restart, 2.0, 0.1)
    outcome = _apply(release_hub, box)
    assert (outcome.outcome, outcome.version, outcome.running) == (  # type: ignore[attr-defined]
        "rolled_back", "1.1.0", "1.0.0"
    )  # fmt: skip
    assert outcome.reason.startswith("health gate failed after 2 s")  # type: ignore[attr-defined]
    expected = "degraded" if mode == "degraded" else "no answer from"
    assert expected in outcome.reason  # type: ignore[attr-defined]
    assert running_version(settings.releases) == "1.0.0"
    box.wait_healthy("1.0.0")
    journal = read_journal(settings.releases)
    assert (journal.phase, journal.current) == ("idle", "1.0.0")
    assert journal.last is not None and journal.last.outcome == "rolled_back"
    assert not journal.reported


def _cli_apply(hub: ReleaseHub, box: Box, stop_at: str, gate_s: float) -> subprocess.Popen[str]:
    s = box.settings
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), FOOTFALL_UPDATE_STOP_AT=stop_at)
    return subprocess.Popen(
        [sys.executable, "-m", "appliance.cli", "update", "apply", "--hub", hub.url,
         "--trust-root", str(hub.trust_root), "--releases", str(s.releases),
         "--health-url", s.health_url, "--restart-command", " ".join(s.restart),
         "--gate-s", str(gate_s), "--poll-s", "0.1"],
        env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
    )  # fmt: skip


@pytest.mark.parametrize("step", STEPS)
def test_a_sigkill_at_any_step_leaves_a_working_version(
    step: str, release_hub: ReleaseHub, box: Box
) -> None:
    _installed_base(release_hub, box)
    # the rollback step is reached only by a version that fails its gate
    release_hub.publish("1.1.0", mode="degraded" if step == "rolling_back" else "healthy")
    updater = _cli_apply(release_hub, box, step, gate_s=1.0)
    assert updater.stderr is not None
    lines = []
    for line in updater.stderr:
        lines.append(line)
        if f"stopped at {step}" in line:
            break
    else:
        updater.wait()
        pytest.fail(f"the updater never reached {step}: {''.join(lines)}")
    updater.send_signal(signal.SIGKILL)
    updater.wait(timeout=30)
    journal = recover(box.settings)
    assert (journal.phase, journal.current) == ("idle", "1.0.0")
    assert running_version(box.settings.releases) == "1.0.0"
    box.wait_healthy("1.0.0")
    assert box.healthz()["status"] == "ok"
    assert not (box.settings.releases / ".staging").exists()
    assert journal.last is None or journal.last.outcome in ("failed", "rolled_back", "installed")
    if step in ("placed", "switched", "gating", "rolling_back"):
        assert journal.last is not None and "interrupted while" in journal.last.reason


def test_release_commands(tmp_path: Path) -> None:
    run = [sys.executable, "-m", "appliance.cli", "release"]
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    repo, key = tmp_path / "repo", tmp_path / "offline" / "root.pem"
    done = subprocess.run([*run, "init", "--repo", str(repo), "--root-key", str(key)],
                          env=env, capture_output=True, text=True, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    assert not list((repo / "keys").glob("root*"))
    from tests.update_support import build_wheel

    wheel = build_wheel(tmp_path, "2.0.0")
    done = subprocess.run([*run, "publish", "--repo", str(repo), "--version", "2.0.0", str(wheel)],
                          env=env, capture_output=True, text=True, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    again = subprocess.run(
        [*run, "publish", "--repo", str(repo), "--version", "2.0.0", str(wheel)],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert again.returncode == 2
    assert "stable 2.0.0: already published" in again.stderr
    shown = subprocess.run([*run, "status", "--repo", str(repo)], env=env,
                           capture_output=True, text=True, check=True)  # fmt: skip
    status = json.loads(shown.stdout)
    assert status["releases"] == ["stable/2.0.0/release.json"]
    assert status["targets"]["version"] == 2
    signed = subprocess.run([*run, "sign", "--repo", str(repo), "--root-key", str(key)],
                            env=env, capture_output=True, text=True, check=False)  # fmt: skip
    assert signed.returncode == 0 and "root version 2 signed" in signed.stdout
    stranger = tmp_path / "stranger.pem"
    Repository.init(tmp_path / "other", [stranger])
    refused = subprocess.run([*run, "sign", "--repo", str(repo), "--root-key", str(stranger)],
                             env=env, capture_output=True, text=True, check=False)  # fmt: skip
    assert refused.returncode == 2
    assert "0 of the given keys sign for root; its threshold is 1" in refused.stderr


def test_root_threshold_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ReleaseError, match="between 1 and the 1 root key"):
        Repository.init(tmp_path / "r", [tmp_path / "k.pem"], root_threshold=2)
    repo = Repository.init(tmp_path / "r2", [tmp_path / "a.pem", tmp_path / "b.pem"], 2)
    assert repo.root().signed.roles["root"].threshold == 2
    assert len(repo.root().signatures) == 2
    with pytest.raises(ReleaseError, match="1 of the given keys sign for root; its threshold is 2"):
        repo.sign_root([tmp_path / "a.pem"])
    assert repo.root().signed.expires > datetime.now(UTC) + timedelta(days=300)
