"""The box's heartbeat facts (:mod:`wire.heartbeat`), gathered for the sync sender.

:class:`BoxAgent` is what ``footfall run`` and ``footfall sync push`` hand the sender
(:class:`sync.Sender`'s ``agent``): :meth:`BoxAgent.facts` gathers the heartbeat (the
health's state when the box runs, else what the database and the config say; the
machine's temperatures and load where ``/sys`` and ``/proc`` have them; the signed
version manifest of the installed code, the model and the config), and
:meth:`BoxAgent.act` applies the hub's config versions (:mod:`appliance.box.remote_config`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing
from importlib import metadata
from pathlib import Path
from typing import Any, Final

import appliance
from appliance.box.health import Health
from appliance.box.remote_config import RemoteConfig
from appliance.config import BoxConfig
from local_db import connect, outbox
from wire.heartbeat import MAX_REASON_CHARS, MAX_REASONS, manifest_digest

logger = logging.getLogger(__name__)

#: The box's packages whose files the manifest hashes.
PACKAGES: Final = ("appliance", "vision", "local_db", "webui", "sync", "wire")
_THERMAL = Path("/sys/class/thermal")
_JETSON_GPU_LOAD = Path("/sys/devices/gpu.0/load")


def software_version() -> str:
    """The installed ``footfall`` distribution's version (``unknown`` from a checkout)."""
    try:
        return metadata.version("footfall")
    except metadata.PackageNotFoundError:
        return "unknown"


def _temperature(kinds: tuple[str, ...]) -> float | None:
    """The hottest thermal zone whose type names one of ``kinds`` (°C), if readable."""
    found = []
    for zone in sorted(_THERMAL.glob("thermal_zone*")):
        try:
            kind = (zone / "type").read_text().strip().lower()
            if any(k in kind for k in kinds):
                found.append(int((zone / "temp").read_text().strip()) / 1000)
        except (OSError, ValueError):
            continue
    return max(found) if found else None


def _gpu_load() -> float | None:
    try:
        return min(100.0, int(_JETSON_GPU_LOAD.read_text().strip()) / 10)  # per mille
    except (OSError, ValueError):
        return None


class _Hashes:
    """File hashes, recomputed only when a file's size or mtime moved."""

    def __init__(self) -> None:
        self._seen: dict[Path, tuple[int, int, str]] = {}

    def of(self, path: Path) -> str | None:
        try:
            st = path.stat()
            kept = self._seen.get(path)
            if kept is not None and kept[:2] == (st.st_size, st.st_mtime_ns):
                return kept[2]
            digest = hashlib.sha256()
            with path.open("rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    digest.update(chunk)
        except OSError:
            return None
        self._seen[path] = (st.st_size, st.st_mtime_ns, digest.hexdigest())
        return digest.hexdigest()


def _code_files() -> Iterator[tuple[str, Path]]:
    root = Path(appliance.__file__).resolve().parent.parent
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            yield path.relative_to(root).as_posix(), path


class BoxAgent:
    """The box's side of the fleet for the sync sender: heartbeat facts, config versions.

    Args:
        config: The store config (read at start; ``live`` when the box runs).
        config_path: Its file.
        db_path: The box's database.
        target: The hub's id of the store.
        health: The running box's health (None for ``footfall sync push``).
        remote: The config versions (default: one on ``config_path``).
        clock: UTC seconds.
        monotonic: Monotonic seconds (the uptime).
    """

    def __init__(
        self,
        config: BoxConfig,
        config_path: Path,
        db_path: Path,
        target: str,
        *,
        health: Health | None = None,
        remote: RemoteConfig | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config, self.config_path, self.db_path, self.target = (
            config, config_path, db_path, target)  # fmt: skip
        self.health = health
        self.remote = remote or RemoteConfig(config_path, db_path, target, clock=clock)
        self._clock, self._mono = clock, monotonic
        self._started = monotonic()
        self._hashes = _Hashes()

    def act(self) -> None:
        """Apply the hub's pending config versions."""
        self.remote.act()

    def _manifest(self) -> dict[str, Any]:
        files = {name: self._hashes.of(path) for name, path in _code_files()}
        model = self._model_path()
        if model is not None:
            files[f"model/{model.name}"] = self._hashes.of(model)
        files["config/" + self.config_path.name] = self._hashes.of(self.config_path)
        kept = {name: digest for name, digest in files.items() if digest is not None}
        return {"files": kept, "digest": manifest_digest(kept)}

    def _model_path(self) -> Path | None:
        model = getattr(self.config.detector, "model", None)
        if not isinstance(model, (str, Path)):
            return None
        path = Path(model).expanduser()
        return path if path.is_absolute() else self.config_path.parent / path

    def _backlog(self) -> int | None:
        try:
            with closing(connect(self.db_path, readonly=True)) as conn:
                pending = outbox.pending_rows(conn, self.config.store.id, self.target)
        except sqlite3.Error as exc:
            logger.debug("heartbeat: sync backlog unknown: %s", exc)
            return None
        return sum(pending.values())

    def _health(self) -> dict[str, Any]:
        if self.health is not None:
            return self.health.health_report()
        db_bytes = None
        try:
            db_bytes = self.db_path.stat().st_size
        except OSError:
            logger.debug("heartbeat: no database at %s", self.db_path)
        try:
            free: int | None = shutil.disk_usage(self.db_path.parent).free
        except OSError:
            free = None
        cameras = {c.id: {"state": "not running", "fps": 0.0} for c in self.config.cameras}
        return {"status": "ok", "reasons": [], "cameras": cameras, "disk_free_bytes": free,
                "db": {"bytes": db_bytes}, "analytics": {"analysed_until_ms": None},
                "sync_lag_s": None}  # fmt: skip

    def facts(self) -> dict[str, Any]:
        """The heartbeat document (checked by the sender's :func:`wire.encode_heartbeat`)."""
        report = self._health()
        model = self._model_path()
        try:
            load: float | None = os.getloadavg()[0]
        except OSError:
            load = None
        reasons = [str(r)[:MAX_REASON_CHARS] for r in report["reasons"]][:MAX_REASONS]
        return {
            "v": 1,
            "store_id": self.target,
            "heartbeat_id": uuid.uuid4().hex,
            "sent_ms": round(self._clock() * 1000),
            "status": report["status"],
            "reasons": reasons,
            "software": software_version(),
            "model": None if model is None else self._hashes.of(model),
            "uptime_s": round(self._mono() - self._started, 3),
            "cameras": [
                {"id": cid, "state": str(cam["state"])[:32], "fps": float(cam["fps"])}
                for cid, cam in report["cameras"].items()
            ][:16],
            "cpu_temp_c": _temperature(("cpu", "x86_pkg", "soc", "acpitz")),
            "gpu_temp_c": _temperature(("gpu",)),
            "load_1m": load,
            "gpu_load_pct": _gpu_load(),
            "disk_free_bytes": report["disk_free_bytes"],
            "db_bytes": report["db"]["bytes"],
            "analysed_until_ms": report["analytics"]["analysed_until_ms"],
            "sync_backlog_rows": self._backlog(),
            "sync_lag_s": report["sync_lag_s"],
            "clock_offset_ms": None,  # the hub measures it: sent_ms against its own clock
            "config": self.remote.state(),
            "manifest": self._manifest(),
        }
