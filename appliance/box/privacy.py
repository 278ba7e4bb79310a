"""``footfall privacy-audit``'s checks and the privacy manifest.

The checks read, they never repair (the database is opened read-only):

* ``files``: no image or video under any folder the box can write (its data folder,
  the asset cache, the config folder, and what ``footfall.service`` names in
  ``ReadWritePaths=``, ``StateDirectory=``, ``CacheDirectory=`` …), told by magic
  bytes, not by name; the floor plan drawing the config names is the one image allowed;
* ``database schema``: no BLOB column, no column named like pixels (any table);
* ``database values``: no value stored as a blob, no text holding an encoded image;
* ``track ids``: random (see :func:`check_track_ids`);
* ``retention``: the oldest track point against ``storage.track_retention_hours``;
* ``sync``: the tables a sync may send (``local_db.schema.SYNCED_TABLES``) hold no
  trajectory or pixel field (``local_db.schema.FORBIDDEN_FIELDS``);
* ``live view``: the live camera frame refused without a session;
* ``exposure``: the installed units' ``systemd-analyze security`` score.

The manifest (:func:`build_manifest`) is generated from the database's real schema
(or, before the box's first start, the schema this code's migrations create), the
table descriptions in ``local_db/schema.py``, the config, the webhook payload the
alert engine builds and the sync policy: what is stored, for how long, what leaves
the box and to where, what never does.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import logging
import os
import re
import shutil
import sqlite3
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from appliance.alerts.engine import webhook_payload
from appliance.alerts.rules import Transition
from appliance.alerts.webhook import envelope
from appliance.box.doctor import DEFAULT_CONFIG, UNITS, Check, config_hub
from appliance.config import AlertRule, BoxConfig, load_config
from local_db import connect, migrate
from local_db import schema as db_schema
from local_db.schema import Column
from vision.assets import cache_dir
from wire import TABLES as WIRE_TABLES
from wire.tables import TableShape

logger = logging.getLogger(__name__)

#: where installed units are looked for, in systemd's order of precedence
UNIT_DIRS: Final = (Path("/etc/systemd/system"), Path("/usr/lib/systemd/system"))
#: the most exposure a service may have (``scripts/check_units.sh``'s threshold)
EXPOSURE_MAX: Final = 2.0
#: the nightly maintenance deletes expired points once a day (and may run an hour late:
#: its misfire grace), so a point may outlive retention by this much before it fails
RETENTION_SLACK_H: Final = 25.0
#: ids below this in magnitude are a counter's or a tracker's own, not random 64-bit ones
SMALL_ID: Final = 2**32
#: at least this many ids rising in the order their tracks appeared: a counter (random
#: ids do so by chance with probability 2 / n!, below 1e-6 here)
MONOTONE_MIN: Final = 10
#: bytes read from each file to tell what it is
HEAD_BYTES: Final = 512
#: paths named in one finding's reason (the JSON has them all)
NAMED: Final = 5
#: base64 of the image formats' magic bytes, looked for anywhere in a text value
_BASE64_MARKERS: Final = {
    b"/9j/": "base64 JPEG",
    b"iVBORw0KGgo": "base64 PNG",
    b"R0lGOD": "base64 GIF",
}
#: a BMP's second header (the DIB header) starts with its own size, one of these
_BMP_HEADERS: Final = {n.to_bytes(4, "little") for n in (12, 40, 52, 56, 64, 108, 124)}
#: a base64 run this long is binary data (a frame), whatever it starts with
LONG_BASE64: Final = 4096
_BASE64_RUN: Final = re.compile(rb"[A-Za-z0-9+/_-]{32,}")


# --- what a file is -----------------------------------------------------------------


def sniff(head: bytes) -> str | None:
    """The image or video format these first bytes of a file start, or None.

    Args:
        head: the file's first bytes (:data:`HEAD_BYTES` of them, or all of a shorter file).
    """
    signatures: tuple[tuple[bytes, str], ...] = (
        (b"\xff\xd8\xff", "JPEG"),
        (b"\x89PNG\r\n\x1a\n", "PNG"),
        (b"GIF87a", "GIF"),
        (b"GIF89a", "GIF"),
        (b"II*\x00", "TIFF"),
        (b"MM\x00*", "TIFF"),
        (b"\x1aE\xdf\xa3", "Matroska/WebM video"),
        (b"FLV\x01", "FLV video"),
        (b"\x00\x00\x01\xba", "MPEG program stream"),
        (b"\x00\x00\x01\xb3", "MPEG video"),
        (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "JPEG 2000"),
        (b"\xffO\xffQ", "JPEG 2000 codestream"),
        (b"\x00\x00\x00\x0cJXL \r\n\x87\n", "JPEG XL"),
        (b"qoif", "QOI image"),
    )
    for magic, kind in signatures:
        if head.startswith(magic):
            return kind
    if head[:4] == b"RIFF" and head[8:12] in (b"WEBP", b"AVI ", b"AVIX"):
        return "WebP" if head[8:12] == b"WEBP" else "AVI video"
    if head[4:8] == b"ftyp":
        brand = head[8:12].decode("ascii", "replace").strip()
        return f"ISO media (MP4/MOV/HEIC, brand {brand})"
    if head[:2] == b"BM" and head[6:10] == bytes(4) and head[14:18] in _BMP_HEADERS:
        return "BMP"
    if re.match(rb"P[1-7]\s+\d", head):
        return "Netpbm image (PPM/PGM)"
    if len(head) > 376 and head[0] == head[188] == head[376] == 0x47:
        return "MPEG transport stream"
    return None


def looks_encoded(value: bytes) -> str | None:
    """What image a stored text value holds (a data: URL, base64, raw bytes), or None.

    Args:
        value: the text's bytes (``CAST(x AS BLOB)``: raw JPEG bytes are not UTF-8).
    """
    raw = sniff(value[:HEAD_BYTES])
    if raw:
        return f"raw {raw} bytes"
    head = value[:200].lower()
    if b"data:image/" in head or b"data:video/" in head:
        return "a data: URL"
    for run in _BASE64_RUN.finditer(value):
        chunk = run.group(0).replace(b"-", b"+").replace(b"_", b"/")[:HEAD_BYTES]
        try:
            kind = sniff(base64.b64decode(chunk[: len(chunk) // 4 * 4]))
        except binascii.Error:
            kind = None
        if kind:
            return f"base64 {kind}"
        if len(run.group(0)) >= LONG_BASE64:
            return f"{len(run.group(0))} characters of base64 (binary data)"
    return next((what for marker, what in _BASE64_MARKERS.items() if marker in value), None)


# --- where the box can write ----------------------------------------------------------


def find_units(dirs: tuple[Path, ...]) -> dict[str, Path]:
    """The box's unit files (doctor's ``UNITS``) found in ``dirs``, first match wins."""
    found: dict[str, Path] = {}
    for unit in UNITS:
        for folder in dirs:
            if (folder / unit).is_file():
                found[unit] = folder / unit
                break
    return found


def unit_writable_paths(unit: Path) -> list[Path]:
    """The folders a unit lets its service write: ``ReadWritePaths=`` and the ``*Directory=``.

    Args:
        unit: a ``.service`` file.
    """
    bases = {
        "StateDirectory": Path("/var/lib"),
        "CacheDirectory": Path("/var/cache"),
        "LogsDirectory": Path("/var/log"),
        "RuntimeDirectory": Path("/run"),
        "ConfigurationDirectory": Path("/etc"),
    }
    paths: list[Path] = []
    for line in unit.read_text().splitlines():
        key, sep, value = line.strip().partition("=")
        if not sep or key.startswith("#"):
            continue
        words = value.split()
        if key == "ReadWritePaths":
            paths += [Path(w.lstrip("-+")) for w in words]
        elif key in bases:
            paths += [bases[key] / w.split(":")[0] for w in words]
    return paths


def writable_roots(config_path: Path, db: Path, unit: Path | None) -> list[Path]:
    """Every folder the box can write, each once, none inside another one listed."""
    candidates = [db.parent, cache_dir(), config_path.parent]
    if unit is not None:
        candidates += unit_writable_paths(unit)
    resolved = sorted({p.expanduser().resolve() for p in candidates}, key=lambda p: len(p.parts))
    roots: list[Path] = []
    for path in resolved:
        if not any(path.is_relative_to(root) for root in roots):
            roots.append(path)
    return roots


@dataclass(slots=True)
class _Scan:
    files: int = 0
    media: list[tuple[Path, str]] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)


def _scan(root: Path, allowed: set[Path]) -> _Scan:
    scan = _Scan()

    def walk(folder: Path) -> Iterator[os.DirEntry[str]]:
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        yield from walk(Path(entry.path))
                    elif entry.is_file(follow_symlinks=False):
                        yield entry
        except OSError as exc:
            scan.unreadable.append(f"{folder}: {exc.strerror or exc}")

    for entry in walk(root):
        scan.files += 1
        path = Path(entry.path)
        try:
            with open(path, "rb") as f:
                head = f.read(HEAD_BYTES)
        except OSError as exc:
            scan.unreadable.append(f"{path}: {exc.strerror or exc}")
            continue
        kind = sniff(head)
        if kind and path.resolve() not in allowed:
            scan.media.append((path, kind))
    return scan


def check_files(roots: list[Path], allowed: set[Path]) -> list[Check]:
    """No image or video file under any of ``roots`` (by magic bytes), but ``allowed``."""
    checks = []
    for root in roots:
        name = f"files {root}"
        if not root.is_dir():
            checks.append(Check(name, "skip", "absent (nothing written there)"))
            continue
        scan = _scan(root, allowed)
        if scan.media:
            found = ", ".join(f"{p} ({kind})" for p, kind in scan.media[:NAMED])
            more = f" and {len(scan.media) - NAMED} more" if len(scan.media) > NAMED else ""
            checks.append(
                Check(name, "fail", f"{len(scan.media)} image/video file(s): {found}{more}")
            )
        elif scan.unreadable:
            checks.append(
                Check(
                    name,
                    "fail",
                    f"cannot read {len(scan.unreadable)} path(s), "
                    f"first {scan.unreadable[0]} (run as root or as footfall)",
                )
            )
        else:
            kept = [str(p) for p in allowed if p.is_relative_to(root)]
            but = f" but the floor plan drawing {', '.join(kept)}" if kept else ""
            checks.append(Check(name, "ok", f"{scan.files} file(s), no image or video{but}"))
    return checks


# --- the database ----------------------------------------------------------------------


def code_schema() -> dict[str, list[Column]]:
    """The tables this code's migrations create (an in-memory database, migrated quietly)."""
    migrations_log = logging.getLogger("local_db.migrations")
    level = migrations_log.level
    migrations_log.setLevel(logging.WARNING)  # "applying migration …" would read as the box's
    try:
        with closing(sqlite3.connect(":memory:", isolation_level=None)) as conn:
            migrate(conn)
            return db_schema.tables(conn)
    finally:
        migrations_log.setLevel(level)


def check_schema(tables: dict[str, list[Column]]) -> Check:
    """No BLOB-typed column and no column named like pixels, in any table."""
    bad = []
    for table, columns in tables.items():
        for c in columns:
            why = db_schema.forbidden_reason(c.name, db_schema.PIXEL_FIELDS)
            if "BLOB" in c.type or why:
                bad.append(f"{table}.{c.name} ({why or c.type + ' column'})")
    if bad:
        return Check(
            "database schema",
            "fail",
            f"{len(bad)} column(s) for frame data: " + ", ".join(bad[:NAMED]),
        )
    count = sum(len(c) for c in tables.values())
    return Check(
        "database schema", "ok", f"{len(tables)} tables, {count} columns: no BLOB, no pixels"
    )


def check_values(conn: sqlite3.Connection, tables: dict[str, list[Column]]) -> Check:
    """No value stored as a blob, no text value holding an encoded image (every row)."""
    found: list[str] = []
    for table, columns in tables.items():
        names = [c.name for c in columns]
        for column, n in db_schema.blob_values(conn, table, names).items():
            found.append(f"{table}.{column}: {n} blob value(s)")
        texts = db_schema.encoded_texts(conn, table, names, looks_encoded, limit=NAMED)
        found += [f"{table}.{column}: {what}" for column, what in texts]
    if found:
        return Check("database values", "fail", "frame data stored: " + "; ".join(found[:NAMED]))
    return Check(
        "database values", "ok", "no blob value, no text holding an image (every row read)"
    )


def check_track_ids(ids_by_camera: dict[str, list[int]]) -> Check:
    """Each camera's track ids are random 64-bit ones, not a counter.

    ``vision.tracking`` gives every track a fresh id from the OS entropy pool (8 bytes,
    signed): an id tells nothing of how many people came before, nor of the order they
    came in, and does not link a person across cameras or restarts. So the ids of one
    camera, in the order their tracks appeared, fail when any is a small integer
    (below 2**32 in magnitude: a counter or the tracker's own id; a random id is one
    with probability 2**-31) or when at least :data:`MONOTONE_MIN` of them only rise
    or only fall (a counter from a random start).
    """
    if not ids_by_camera:
        return Check("track ids", "skip", "no track points stored")
    bad, good = [], []
    for camera, ids in ids_by_camera.items():
        small = [i for i in ids if abs(i) < SMALL_ID]
        pairs = list(itertools.pairwise(ids))
        rising = all(a < b for a, b in pairs) or all(a > b for a, b in pairs)
        if small:
            bad.append(
                f"camera {camera}: {len(small)} of {len(ids)} ids are small integers "
                f"(e.g. {', '.join(map(str, small[:3]))}): a counter, not random"
            )
        elif len(ids) >= MONOTONE_MIN and rising:
            bad.append(
                f"camera {camera}: {len(ids)} ids move one way in the order the tracks "
                "appeared: a counter, not random"
            )
        else:
            good.append(f"{camera}: {len(ids)}")
    if bad:
        return Check("track ids", "fail", "; ".join(bad))
    return Check(
        "track ids",
        "ok",
        f"random 64-bit ids (tracks checked per camera, at most 1000: {', '.join(good)})",
    )


def check_retention(oldest: tuple[str, int] | None, retention_h: float, now_ms: int) -> Check:
    """The oldest track point against ``storage.track_retention_hours``.

    It warns between retention and retention + :data:`RETENTION_SLACK_H` (the nightly
    maintenance has not run yet) and fails beyond.
    """
    if oldest is None:
        return Check("retention", "ok", f"no track point stored (retention {retention_h:g} h)")
    camera, t_ms = oldest
    age_h = (now_ms - t_ms) / 3_600_000
    reason = (
        f"oldest track point (camera {camera}) is {age_h:.1f} h old; retention {retention_h:g} h"
    )
    if age_h > retention_h + RETENTION_SLACK_H:
        return Check("retention", "fail", f"{reason}: expired points are not being deleted")
    if age_h > retention_h:
        return Check("retention", "warn", f"{reason}: the nightly maintenance deletes it")
    return Check("retention", "ok", reason)


def check_sync(tables: dict[str, list[Column]]) -> Check:
    """The tables a sync may send hold no trajectory or pixel field."""
    synced = db_schema.synced(list(tables))
    bad = [
        f"{t}.{c.name} ({why})"
        for t in synced
        for c in tables[t]
        if (why := db_schema.forbidden_reason(c.name))
    ]
    if bad:
        return Check(
            "sync",
            "fail",
            f"fields that must never leave the box in {db_schema.SYNCED_TABLES}: {', '.join(bad)}",
        )
    columns = sum(len(tables[t]) for t in synced)
    return Check(
        "sync",
        "ok",
        f"{len(synced)} tables ({db_schema.SYNCED_TABLES}), {columns} "
        "columns may leave: no trajectory or pixel field",
    )


def check_protocol(shapes: Iterable[TableShape] = WIRE_TABLES.values()) -> Check:
    """What the sync protocol can carry at all (``wire``'s row shapes): no trajectory or pixels.

    The database check above covers what the tables hold; this covers what a batch can
    express at all, whatever the box's tables hold: a field ``wire`` cannot name cannot leave.

    Args:
        shapes: the protocol's row shapes (default: ``wire.TABLES``).
    """
    shapes = list(shapes)
    bad = [
        f"{shape.name}.{column.name} ({why})"
        for shape in shapes
        for column in (*shape.key, *shape.values)
        if (why := db_schema.forbidden_reason(column.name))
    ]
    if bad:
        return Check("sync protocol", "fail", f"wire can carry: {', '.join(bad)}")
    fields = sum(len(shape.key) + len(shape.values) for shape in shapes)
    return Check(
        "sync protocol",
        "ok",
        f"wire's {len(shapes)} row shapes, {fields} fields: no trajectory or pixel field",
    )


# --- the live view and the units --------------------------------------------------------


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *_args: Any, **_kwargs: Any) -> None:
        return None


def check_live_view(urls: list[str], timeout_s: float, *, required: bool) -> list[Check]:
    """Each live camera frame URL, without a session: refused (401, 403, or to sign-in).

    Args:
        urls: the live frame's URLs (one per camera).
        timeout_s: per request.
        required: an unreachable dashboard fails (the URL was given) instead of skipping.
    """
    opener = urllib.request.build_opener(_NoRedirect)
    checks = []
    for url in urls:
        name = f"live view {url}"
        try:
            with opener.open(url, timeout=timeout_s) as response:
                head = response.read(HEAD_BYTES)
                kind = sniff(head) or response.headers.get_content_type()
                checks.append(
                    Check(name, "fail", f"HTTP {response.status} without a session: serves {kind}")
                )
        except urllib.error.HTTPError as exc:
            location = exc.headers.get("Location", "")
            if exc.code in (401, 403):
                checks.append(Check(name, "ok", f"refused without a session (HTTP {exc.code})"))
            elif exc.code in (301, 302, 303, 307, 308) and "/login" in location:
                checks.append(Check(name, "ok", f"HTTP {exc.code} to the sign-in page"))
            else:
                where = f" to {location}" if location else ""
                checks.append(
                    Check(
                        name,
                        "fail",
                        f"HTTP {exc.code}{where} (expected 401, 403 or the sign-in page)",
                    )
                )
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = f"unreachable: {getattr(exc, 'reason', exc)}"
            if required:
                checks.append(Check(name, "fail", reason))
            else:
                checks.append(Check(name, "skip", f"{reason} (the box is not running)"))
    return checks


def check_exposure(units: dict[str, Path]) -> list[Check]:
    """``systemd-analyze security --offline=true`` of each installed unit, at most 2.0."""
    exe = shutil.which("systemd-analyze")
    if not units:
        return [Check("exposure", "skip", "no installed footfall units")]
    if exe is None:
        return [Check("exposure", "skip", "systemd-analyze not found")]
    checks = []
    for unit, path in units.items():
        cmd = [
            exe,
            "security",
            "--offline=true",
            f"--threshold={round(EXPOSURE_MAX * 10)}",
            "--no-pager",
            str(path),
        ]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            checks.append(Check(f"exposure {unit}", "fail", f"systemd-analyze failed: {exc}"))
            continue
        level = re.search(r"Overall exposure level for \S+: ([0-9.]+)", proc.stdout)
        score = level.group(1) if level else "unknown"
        if proc.returncode == 0 and level:
            checks.append(
                Check(f"exposure {unit}", "ok", f"{path}: {score} (at most {EXPOSURE_MAX})")
            )
        else:
            worst = [ln.split()[1] for ln in proc.stdout.splitlines() if ln.startswith("✗")][:4]
            checks.append(
                Check(
                    f"exposure {unit}",
                    "fail",
                    f"{path}: {score}, above {EXPOSURE_MAX} (e.g. {', '.join(worst)})",
                )
            )
    return checks


# --- the audit ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Options:
    """What the audit reads.

    Attributes:
        config: the store YAML.
        db: the database (None: the config's ``storage.db_path``).
        url: the dashboard (None: the config's ``web.host`` and ``web.port``).
        live_paths: the live camera frame's paths for a config (from the dashboard's routes).
        unit_dirs: where the installed units are looked for.
        timeout_s: per HTTP request.
        now_ms: UTC ms to take as now (None: the clock).
    """

    config: Path = DEFAULT_CONFIG
    db: Path | None = None
    url: str | None = None
    live_paths: Callable[[BoxConfig], list[str]] | None = None
    unit_dirs: tuple[Path, ...] = UNIT_DIRS
    timeout_s: float = 3.0
    now_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Audit:
    """The checks and the manifest."""

    checks: list[Check]
    manifest: dict[str, Any]

    @property
    def ok(self) -> bool:
        """No check failed."""
        return all(c.status != "fail" for c in self.checks)


def dashboard_url(config: BoxConfig) -> str:
    """The dashboard's base URL from ``web.host`` and ``web.port`` (a wildcard: loopback)."""
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(
        config.web.host, config.web.host
    )
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{config.web.port}"


def run_audit(options: Options) -> Audit:
    """Every check, and the manifest.

    Raises:
        appliance.config.ConfigError: the config file is invalid.
    """
    config = load_config(options.config)
    db = options.db or Path(config.storage.db_path).expanduser()
    units = find_units(options.unit_dirs)
    roots = writable_roots(options.config, db, units.get("footfall.service"))
    plan = config.floor_plan.image
    allowed = {(options.config.parent / plan).resolve()} if plan else set()
    checks = check_files(roots, allowed)
    now_ms = options.now_ms if options.now_ms is not None else round(time.time() * 1000)
    if db.is_file():
        try:
            with closing(connect(db, readonly=True)) as conn:
                tables = db_schema.tables(conn)
                checks += [check_schema(tables), check_values(conn, tables)]
                if "track_points" in tables:
                    checks.append(check_track_ids(db_schema.first_seen_track_ids(conn)))
                    oldest = db_schema.oldest_track_point(conn)
                    retention = config.storage.track_retention_hours
                    checks.append(check_retention(oldest, retention, now_ms))
        except sqlite3.Error as exc:
            checks.append(Check("database", "fail", f"{db}: {type(exc).__name__}: {exc}"))
            tables = code_schema()
    else:
        tables = code_schema()
        checks.append(
            Check(
                "database", "skip", f"{db}: not created yet (the code's schema is audited instead)"
            )
        )
    checks.append(check_sync(tables))
    checks.append(check_protocol())
    base = (options.url or dashboard_url(config)).rstrip("/")
    paths = options.live_paths(config) if options.live_paths else []
    checks += check_live_view(
        [base + p for p in paths], options.timeout_s, required=options.url is not None
    )
    checks += check_exposure(units)
    source = str(db) if db.is_file() else "the schema this code's migrations create"
    return Audit(checks, build_manifest(config, options.config, tables, source, base))


# --- the manifest -----------------------------------------------------------------------


def webhook_fields() -> list[str]:
    """The fields of a webhook's body, as the alert engine builds it (dotted when nested)."""
    rule = AlertRule.model_construct(
        id="rule", kind="store_occupancy", severity="warning", raise_at=1.0, clear_at=0.0
    )
    body = envelope(webhook_payload("store", 1, Transition("raise", rule, "", 0, 1.0, "")), "d", 0)

    def names(obj: dict[str, Any], prefix: str = "") -> list[str]:
        out: list[str] = []
        for key, value in obj.items():
            out += names(value, f"{prefix}{key}.") if isinstance(value, dict) else [prefix + key]
        return out

    return names(json.loads(body))


def build_manifest(
    config: BoxConfig, config_path: Path, tables: dict[str, list[Column]], source: str, url: str
) -> dict[str, Any]:
    """What is stored, for how long, what leaves the box and to where, what never does.

    Args:
        config: the store config.
        config_path: its file.
        tables: the schema (the database's, or the code's before the first start).
        source: where the schema was read.
        url: the dashboard's base URL.
    """
    values = {
        "track_retention_hours": config.storage.track_retention_hours,
        "session_hours": config.web.session_hours,
        "session_idle_minutes": config.web.session_idle_minutes,
    }
    stored = []
    for name, columns in tables.items():
        doc = db_schema.TABLES.get(name)
        stored.append(
            {
                "table": name,
                "what": doc.what if doc else "not described (no migration of this code creates it)",
                "kept": doc.kept.format(**values) if doc else "unknown",
                "columns": [
                    {
                        "name": c.name,
                        "type": c.type,
                        "meaning": (doc.columns.get(c.name) if doc else None) or "not described",
                    }
                    for c in columns
                ],
            }
        )
    synced = db_schema.synced(list(tables))
    hub = config_hub(config)
    rb = config.ring_buffer
    return {
        "store": {"id": config.store.id, "name": config.store.name},
        "sources": {"config": str(config_path), "schema": source},
        "stored": stored,
        "retention": {
            "track_points_hours": config.storage.track_retention_hours,
            "frames": f"RAM only: the newest {rb.seconds:g} s per camera, at most "
            f"{rb.max_mb} MB; never written to disk",
            "web_sessions_hours": config.web.session_hours,
            "web_session_idle_minutes": config.web.session_idle_minutes,
        },
        "leaves": {
            "aggregates": {
                "to": hub,
                "note": "sent by the sync job" if hub else "no hub configured: nothing is sent",
                "tables": {t: [c.name for c in tables[t]] for t in synced},
            },
            "webhooks": {
                "to": [w.url for w in config.alerting.webhooks],
                "fields": webhook_fields(),
            },
            "dashboard": {
                "to": url,
                "note": "the store LAN: aggregates and live positions to signed-in users; "
                "the live camera frame (from RAM) only to a signed-in installer",
            },
        },
        "never_leaves": {
            "frames": "camera images: decoded in RAM, never stored, never sent",
            "tables": [t for t in tables if t not in synced],
        },
        "policy": {
            "synced_tables": db_schema.SYNCED_TABLES,
            "forbidden_fields": db_schema.FORBIDDEN_FIELDS,
        },
    }


def manifest_markdown(manifest: dict[str, Any], checks: list[Check]) -> str:
    """The manifest (and the audit's checks) as a Markdown document for people."""
    store, leaves = manifest["store"], manifest["leaves"]
    ret = manifest["retention"]
    out = [
        f"# Privacy manifest: {store['name']} ({store['id']})",
        "",
        f"Generated by `footfall privacy-audit` from {manifest['sources']['config']} and "
        f"{manifest['sources']['schema']}.",
        "",
        "## What is stored on the box, and for how long",
        "",
        f"- Raw trajectories (`track_points`): {ret['track_points_hours']:g} h.",
        f"- Camera frames: {ret['frames']}.",
        f"- Dashboard sessions: {ret['web_sessions_hours']:g} h at most, "
        f"{ret['web_session_idle_minutes']:g} min unused.",
        "",
    ]
    for table in manifest["stored"]:
        out += [
            f"### `{table['table']}`",
            "",
            f"{table['what']}. Kept: {table['kept']}.",
            "",
            "| column | type | meaning |",
            "| --- | --- | --- |",
        ]
        out += [f"| `{c['name']}` | {c['type']} | {c['meaning']} |" for c in table["columns"]]
        out.append("")
    agg, hooks = leaves["aggregates"], leaves["webhooks"]
    out += [
        "## What leaves the box, and to where",
        "",
        f"- **Aggregates** to the hub: {agg['to'] or 'none'} ({agg['note']}). Only these "
        f"tables ({manifest['policy']['synced_tables']}) and columns:",
    ]
    out += [f"  - `{t}`: {', '.join(f'`{c}`' for c in cols)}" for t, cols in agg["tables"].items()]
    out += [
        f"- **Alert webhooks** to {', '.join(hooks['to']) or 'none configured'}: "
        f"{', '.join(f'`{f}`' for f in hooks['fields'])}.",
        f"- **The dashboard** at {leaves['dashboard']['to']}: {leaves['dashboard']['note']}.",
        "",
        "## What never leaves the box",
        "",
        f"- Frames: {manifest['never_leaves']['frames']}.",
        "- Trajectories, accounts, sessions and the alert log: "
        + ", ".join(f"`{t}`" for t in manifest["never_leaves"]["tables"])
        + ".",
        "- No field of these kinds may ever be synced:",
    ]
    out += [f"  - `{p}`: {why}" for p, why in manifest["policy"]["forbidden_fields"].items()]
    out += ["", "## Audit", "", "| status | check | finding |", "| --- | --- | --- |"]
    out += [f"| {c.status.upper()} | {c.name} | {c.reason} |" for c in checks]
    return "\n".join(out) + "\n"
