"""``footfall doctor``'s checks: is this box fit to run, and if not, what is wrong.

Each check returns :class:`Check` rows (``ok``, ``warn``, ``fail`` or ``skip`` with a
one-line reason). They read, they never repair: the database is opened read-only,
the model is loaded but nothing is written to the model cache, one frame is read
from each camera and dropped.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import logging
import os
import shutil
import sqlite3
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final, Literal

from ruamel.yaml import YAML

from appliance.config import BoxConfig, ConfigError, load_config
from local_db import connect
from local_db.litestream import LitestreamError, find_binary
from local_db.maintenance import integrity_problems
from local_db.migrations import MIGRATIONS, applied_migrations

logger = logging.getLogger(__name__)

Status = Literal["ok", "warn", "fail", "skip"]
DEFAULT_CONFIG: Final = Path("/etc/footfall/store.yaml")
DEFAULT_LITESTREAM_CONFIG: Final = Path("/etc/footfall/litestream.yml")
#: the box's units, checked with ``systemctl is-active`` when systemd runs the machine
UNITS: Final = ("footfall.service", "litestream.service")
#: a replica this far behind the database's last write is a warning, twice as far a failure
REPLICA_LAG_WARN_S: Final = 15 * 60
#: ``adjtimex``: the clock is not synchronised (``TIME_ERROR``, ``STA_UNSYNC``)
_TIME_ERROR: Final = 5
_STA_UNSYNC: Final = 0x0040


@dataclass(frozen=True, slots=True)
class Check:
    """One line of the doctor's report."""

    name: str
    status: Status
    reason: str

    def as_dict(self) -> dict[str, str]:
        """The row as JSON-ready fields."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Options:
    """What the doctor checks, and against which limits.

    Attributes:
        config: the store YAML.
        db: the database (None: the config's ``storage.db_path``).
        litestream_config: Litestream's YAML (checked only if it exists).
        hub: the hub's URL (None: the config's ``hub`` if it has one).
        camera_timeout_s: how long each camera may take to deliver its first frame.
        hub_timeout_s: how long the hub's ``/healthz`` may take.
        disk_min_mb: free space below which the data folder fails (None: the config's
            ``runtime.disk_free_min_mb``); below twice that it warns.
    """

    config: Path = DEFAULT_CONFIG
    db: Path | None = None
    litestream_config: Path = DEFAULT_LITESTREAM_CONFIG
    hub: str | None = None
    camera_timeout_s: float = 10.0
    hub_timeout_s: float = 3.0
    disk_min_mb: int | None = None


def run_checks(options: Options) -> list[Check]:
    """Every check, in the report's order (the cameras are probed in parallel)."""
    try:
        config = load_config(options.config)
    except ConfigError as exc:
        first = exc.issues[0] if exc.issues else exc
        more = f" (and {len(exc.issues) - 1} more)" if len(exc.issues) > 1 else ""
        skipped = ("cameras", "model", "gpu", "disk", "database", "hub")
        checks = [Check("config", "fail", f"{first}{more}")]
        checks += [Check(name, "skip", "no valid config") for name in skipped]
    else:
        summary = f"{options.config}: store {config.store.id}, {len(config.cameras)} camera(s)"
        checks = [Check("config", "ok", summary), *_box_checks(config, options)]
    return [*checks, check_clock(), check_litestream(options.litestream_config), *check_units()]


def _box_checks(config: BoxConfig, options: Options) -> list[Check]:
    """The checks that need the store's config."""
    db = options.db or Path(config.storage.db_path).expanduser()
    min_mb = config.runtime.disk_free_min_mb if options.disk_min_mb is None else options.disk_min_mb
    return [
        *check_cameras(config, options.camera_timeout_s),
        check_model(config),
        check_gpu(config),
        check_disk(db.parent, min_mb),
        check_database(db),
        check_hub(options.hub or config_hub(config), options.hub_timeout_s),
    ]


def check_cameras(config: BoxConfig, timeout_s: float) -> list[Check]:
    """Each camera opened through vision's sources, and its first frame within ``timeout_s``."""
    from appliance.box.cameras import resolve_source
    from vision.probe import probe_camera

    def probe(index: int) -> Check:
        camera = config.cameras[index]
        status, reason = probe_camera(resolve_source(camera.source), camera.fps, timeout_s)
        return Check(f"camera {camera.id}", status, reason)

    with ThreadPoolExecutor(max_workers=len(config.cameras)) as pool:
        return list(pool.map(probe, range(len(config.cameras))))


def check_model(config: BoxConfig) -> Check:
    """The detector's model file present and loadable."""
    from vision.probe import probe_model

    return Check("model", *probe_model(config.detector))


def check_gpu(config: BoxConfig) -> Check:
    """The GPU (and TensorRT) where the detector asks for one."""
    from vision.probe import probe_gpu

    return Check("gpu", *probe_gpu(config.detector))


def check_disk(folder: Path, min_free_mb: int) -> Check:
    """Free space where the database lives: fail below ``min_free_mb``, warn below twice it."""
    existing = next((p for p in (folder, *folder.parents) if p.exists()), Path("/"))
    usage = shutil.disk_usage(existing)
    free_mb = usage.free >> 20
    reason = f"{existing}: {free_mb} MiB free of {usage.total >> 20} MiB"
    if free_mb < min_free_mb:
        return Check("disk", "fail", f"{reason}, below {min_free_mb} MiB")
    if free_mb < 2 * min_free_mb:
        return Check("disk", "warn", f"{reason}, less than twice {min_free_mb} MiB")
    return Check("disk", "ok", reason)


def check_database(db: Path) -> Check:
    """``PRAGMA integrity_check`` and whether every migration of this code is applied."""
    if not db.exists():
        return Check("database", "warn", f"{db}: not created yet (the box creates it at start)")
    try:
        with closing(connect(db, readonly=True)) as conn:
            problems = integrity_problems(conn)
            if problems:
                more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
                return Check("database", "fail", f"{db}: integrity_check: {problems[0]}{more}")
            applied = applied_migrations(conn)
    except sqlite3.Error as exc:
        return Check("database", "fail", f"{db}: {type(exc).__name__}: {exc}")
    unknown = sorted(applied - MIGRATIONS.keys())
    if unknown:
        return Check("database", "fail", f"{db}: migrations newer than this code: {unknown}")
    pending = sorted(MIGRATIONS.keys() - applied)
    if pending:
        return Check(
            "database", "warn", f"{db}: integrity ok; {len(pending)} migration(s) pending: "
            f"{', '.join(pending)} (applied at the box's next start)",
        )  # fmt: skip
    return Check("database", "ok", f"{db}: integrity ok, {len(applied)} migrations current")


def config_hub(config: BoxConfig) -> str | None:
    """The hub URL of the config's optional ``hub`` section (a URL, or one with ``url``)."""
    hub: Any = getattr(config, "hub", None)
    if hub is None or isinstance(hub, str):
        return hub
    url = getattr(hub, "url", None)
    return str(url) if url else None


def check_hub(url: str | None, timeout_s: float) -> Check:
    """The hub's ``/healthz`` answering within ``timeout_s``."""
    if not url:
        return Check("hub", "warn", "not configured (no hub URL: the box keeps its data local)")
    health = url.rstrip("/") + "/healthz"
    t0 = time.monotonic()
    try:
        with urllib.request.urlopen(health, timeout=timeout_s) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        return Check("hub", "fail", f"{health}: HTTP {exc.code} {exc.reason}")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return Check("hub", "fail", f"{health}: unreachable: {reason}")
    ms = (time.monotonic() - t0) * 1000
    return Check(
        "hub",
        "ok",
        f"{health}: HTTP {status} in {ms:.0f} ms "
        "(whether it accepts this box's batches: footfall sync status)",
    )


def check_clock(timedatectl: str = "timedatectl") -> Check:
    """Clock synchronised (signatures and TLS depend on it): systemd's view, else the kernel's."""
    exe = shutil.which(timedatectl)
    if exe is not None:
        try:
            proc = subprocess.run(
                [exe, "show", "-p", "NTPSynchronized", "--value"],
                capture_output=True,
                text=True,
                timeout=5,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            logger.debug("timedatectl failed: %s", exc)
        else:
            value = proc.stdout.strip()
            if proc.returncode == 0 and value == "yes":
                return Check("clock", "ok", "synchronised (timedatectl: NTPSynchronized=yes)")
            if proc.returncode == 0 and value == "no":
                return Check("clock", "fail", "not synchronised (timedatectl: NTPSynchronized=no)")
            logger.debug("timedatectl: exit %s, %r", proc.returncode, proc.stderr.strip())
    return _kernel_clock()


def _kernel_clock() -> Check:
    """The kernel's NTP state through ``adjtimex(2)`` (read only: modes 0)."""
    libc_name = ctypes.util.find_library("c")
    # struct timex: int modes, then longs and ints the kernel fills; 'status' is the 6th field
    buf = (ctypes.c_long * 32)()
    try:
        libc = ctypes.CDLL(libc_name, use_errno=True)
        state = int(libc.adjtimex(ctypes.byref(buf)))
    except (OSError, AttributeError) as exc:
        return Check("clock", "warn", f"unknown (no timedatectl, adjtimex failed: {exc})")
    if state < 0:
        return Check("clock", "warn", f"unknown (adjtimex: {os.strerror(ctypes.get_errno())})")
    status = ctypes.cast(buf, ctypes.POINTER(ctypes.c_int))[10]  # after 5 eight-byte fields
    if state == _TIME_ERROR or status & _STA_UNSYNC:
        return Check("clock", "fail", "not synchronised (kernel: adjtimex reports STA_UNSYNC)")
    return Check("clock", "ok", "synchronised (kernel: adjtimex)")


def check_litestream(config_path: Path) -> Check:
    """The Litestream replica's newest LTX file against the database's last write."""
    if not config_path.is_file():
        return Check("litestream", "skip", f"not configured ({config_path} does not exist)")
    try:
        dbs = YAML(typ="safe").load(config_path.read_text())["dbs"]
        db = Path(dbs[0]["path"])
        exe = find_binary()
    except LitestreamError as exc:
        return Check("litestream", "fail", str(exc))
    except (OSError, KeyError, IndexError, TypeError, ValueError) as exc:
        return Check("litestream", "fail", f"{config_path}: no dbs[0].path: {exc}")
    cmd = [str(exe), "ltx", "-config", str(config_path), "-level", "all", "-json", str(db)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
        files = json.loads(proc.stdout) if proc.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired, json.JSONDecodeError) as exc:
        return Check("litestream", "fail", f"`litestream ltx` failed: {exc}")
    if files is None:
        output = (proc.stderr or proc.stdout).strip().splitlines()
        return Check("litestream", "fail", f"`litestream ltx` exited {proc.returncode}: "
                     f"{output[-1] if output else ''}")  # fmt: skip
    if not files:
        return Check("litestream", "fail", f"{db}: the replica holds nothing yet (not replicating)")
    newest = max(datetime.fromisoformat(f["timestamp"].replace("Z", "+00:00")) for f in files)
    age_s = time.time() - newest.timestamp()
    written = max((p.stat().st_mtime for p in _db_files(db)), default=newest.timestamp())
    behind_s = max(0.0, written - newest.timestamp())
    reason = f"{db}: newest replica file {age_s:.0f} s old, {behind_s:.0f} s behind the database"
    if behind_s > 2 * REPLICA_LAG_WARN_S:
        return Check("litestream", "fail", reason)
    if behind_s > REPLICA_LAG_WARN_S:
        return Check("litestream", "warn", reason)
    return Check("litestream", "ok", reason)


def _db_files(db: Path) -> Iterator[Path]:
    for suffix in ("", "-wal"):
        path = db.with_name(db.name + suffix)
        if path.exists():
            yield path


def _systemd_booted() -> bool:
    """sd_booted(): systemd is PID 1."""
    return Path("/run/systemd/system").is_dir()


def check_units() -> list[Check]:
    """``systemctl is-active`` of the box's units, when systemd runs this machine."""
    if not _systemd_booted():
        return [Check("units", "skip", "systemd is not PID 1 (not a box install)")]
    checks = []
    for unit in UNITS:
        proc = subprocess.run(
            ["systemctl", "is-active", unit], capture_output=True, text=True, check=False
        )
        state = proc.stdout.strip() or proc.stderr.strip()
        if state == "active":
            checks.append(Check(unit, "ok", "active"))
        elif unit == "litestream.service" and state == "inactive":
            checks.append(Check(unit, "skip", "inactive (no Litestream replica configured?)"))
        else:
            checks.append(Check(unit, "fail", f"{state} (journalctl -u {unit})"))
    return checks
