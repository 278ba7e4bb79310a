"""A box's heartbeat: what it runs and how it is, ``POST`` :data:`HEARTBEAT_PATH`, signed.

The body is plain JSON (not gzip; at most :data:`MAX_HEARTBEAT_BYTES`), signed with the
store's secrets exactly as a batch is (``webhook-id`` is ``heartbeat_id``), and checked
strictly by :func:`decode_heartbeat`: every key is known (an unknown one, such as a
trajectory, is refused), every value has its type and bounds. Version
:data:`HEARTBEAT_VERSION`::

    {"v": 1, "store_id": "s1", "heartbeat_id": "<uuid hex>", "sent_ms": 1764667200000,
     "status": "ok" | "degraded", "reasons": ["camera door: down (no frames yet)"],
     "software": "0.9.0", "model": "<sha256 of the model file>" | null, "uptime_s": 3600.0,
     "cameras": [{"id": "door", "state": "up", "fps": 14.8}],
     "cpu_temp_c": 51.0 | null, "gpu_temp_c": null, "load_1m": 0.8 | null,
     "gpu_load_pct": null, "disk_free_bytes": 1e10 | null, "db_bytes": 123456 | null,
     "analysed_until_ms": ... | null, "sync_backlog_rows": 0 | null, "sync_lag_s": 0.0 | null,
     "clock_offset_ms": null,
     "config": {"version": 3, "parent": 2, "hash": "<sha256>", "source": "hub" | "box",
                "yaml": "...", "rejected": {"version": 4, "error": "store.yaml:7: ..."} | null},
     "manifest": {"files": {"appliance/box/health.py": "<sha256>", ...}, "digest": "<sha256>"}}

``manifest`` is the signed version manifest: a hash of every installed code, model and
config file, and one digest over them (:func:`manifest_digest`), signed as the request is.
The hub answers as it answers a batch (:func:`wire.encode_answer`, ``batch_id`` being the
heartbeat id), with the store's downlink items.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any, Final

from wire.batch import parse_json
from wire.errors import BodyTooLargeError, UnknownSchemaError, WireError

#: Where the hub takes heartbeats.
HEARTBEAT_PATH: Final = "/api/v1/heartbeat"
#: The shape this module reads and writes.
HEARTBEAT_VERSION: Final = 1
#: The most bytes of a heartbeat body.
MAX_HEARTBEAT_BYTES: Final = 512 * 1024
MAX_REASONS: Final = 50
MAX_REASON_CHARS: Final = 500
MAX_CAMERAS: Final = 16
MAX_MANIFEST_FILES: Final = 2000
MAX_CONFIG_CHARS: Final = 256 * 1024
STATUSES: Final = ("ok", "degraded")
CONFIG_SOURCES: Final = ("hub", "box")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_INT_MAX = 2**63 - 1

Heartbeat = dict[str, Any]


def _fail(path: str, message: str) -> WireError:
    return WireError(message, path)


def _text(value: object, path: str, most: int, pattern: re.Pattern[str] | None = None) -> str:
    if not isinstance(value, str):
        raise _fail(path, "expected a string")
    if len(value) > most:
        raise _fail(path, f"longer than {most} characters")
    if pattern is not None and not pattern.fullmatch(value):
        raise _fail(path, f"{value[:64]!r} is not of the form {pattern.pattern}")
    return value


def _number(value: object, path: str, low: float, high: float, *, integer: bool) -> float | int:
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok:
        raise _fail(path, "expected an integer" if integer else "expected a number")
    assert isinstance(value, (int, float))
    if not low <= value <= high:
        raise _fail(path, f"{value} is outside {low:g}..{high:g}")
    return value


def _optional(value: object, path: str, low: float, high: float, *, integer: bool) -> object:
    return None if value is None else _number(value, path, low, high, integer=integer)


def _object(value: object, path: str, required: set[str], optional: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(path, "expected an object")
    unknown = sorted(set(value) - required - optional)
    if unknown:
        raise _fail(f"{path}.{unknown[0]}", "unknown key (a heartbeat carries only its fields)")
    missing = sorted(required - set(value))
    if missing:
        raise _fail(f"{path}.{missing[0]}", "missing")
    return value


#: The optional numbers of a heartbeat: (low, high, integer).
_NUMBERS: Final[dict[str, tuple[float, float, bool]]] = {
    "cpu_temp_c": (-60.0, 200.0, False),
    "gpu_temp_c": (-60.0, 200.0, False),
    "load_1m": (0.0, 1e6, False),
    "gpu_load_pct": (0.0, 100.0, False),
    "disk_free_bytes": (0, _INT_MAX, True),
    "db_bytes": (0, _INT_MAX, True),
    "analysed_until_ms": (0, _INT_MAX, True),
    "sync_backlog_rows": (0, _INT_MAX, True),
    "sync_lag_s": (0.0, 1e12, False),
    "clock_offset_ms": (-_INT_MAX, _INT_MAX, True),
}
_REQUIRED: Final = {"v", "store_id", "heartbeat_id", "sent_ms", "status", "reasons", "software",
                    "uptime_s", "cameras", "config", "manifest"}  # fmt: skip
_OPTIONAL: Final = {"model", *_NUMBERS}


def manifest_digest(files: Mapping[str, str]) -> str:
    """One SHA-256 over a manifest's ``{path: sha256}`` (sorted), the version of what runs."""
    text = json.dumps(dict(sorted(files.items())), separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _check_config(value: object, path: str) -> None:
    config = _object(value, path, {"version", "parent", "hash", "source", "yaml"}, {"rejected"})
    _number(config["version"], f"{path}.version", 0, _INT_MAX, integer=True)
    _optional(config["parent"], f"{path}.parent", 0, _INT_MAX, integer=True)
    _text(config["hash"], f"{path}.hash", 64, _SHA256)
    if config["source"] not in CONFIG_SOURCES:
        raise _fail(f"{path}.source", f"expected one of {', '.join(CONFIG_SOURCES)}")
    _text(config["yaml"], f"{path}.yaml", MAX_CONFIG_CHARS)
    rejected = config.get("rejected")
    if rejected is not None:
        found = _object(rejected, f"{path}.rejected", {"version", "error"}, set())
        _number(found["version"], f"{path}.rejected.version", 0, _INT_MAX, integer=True)
        _text(found["error"], f"{path}.rejected.error", MAX_REASON_CHARS * 4)


def _check_manifest(value: object, path: str) -> None:
    manifest = _object(value, path, {"files", "digest"}, set())
    files = manifest["files"]
    if not isinstance(files, dict) or len(files) > MAX_MANIFEST_FILES:
        raise _fail(f"{path}.files", f"expected an object of at most {MAX_MANIFEST_FILES} files")
    for name, digest in files.items():
        _text(name, f"{path}.files", 300)
        _text(digest, f"{path}.files[{name[:64]!r}]", 64, _SHA256)
    _text(manifest["digest"], f"{path}.digest", 64, _SHA256)
    if manifest["digest"] != manifest_digest(files):
        raise _fail(f"{path}.digest", "does not match the files' hashes")


def check_heartbeat(document: object) -> Heartbeat:
    """Check a decoded heartbeat document; the same document if it is one.

    Raises:
        UnknownSchemaError: Its ``v`` is not :data:`HEARTBEAT_VERSION`.
        WireError: Any other key, type or bound is wrong (the path names it).
    """
    if isinstance(document, dict) and "v" in document and document["v"] != HEARTBEAT_VERSION:
        raise UnknownSchemaError(
            f"unknown heartbeat version {str(document['v'])[:16]!r} "
            f"(this hub reads {HEARTBEAT_VERSION})",
            "$.v",
        )
    beat = _object(document, "$", set(_REQUIRED), set(_OPTIONAL))
    _text(beat["store_id"], "$.store_id", 64, _ID)
    _text(beat["heartbeat_id"], "$.heartbeat_id", 128, _ID)
    _number(beat["sent_ms"], "$.sent_ms", 0, _INT_MAX, integer=True)
    if beat["status"] not in STATUSES:
        raise _fail("$.status", f"expected one of {', '.join(STATUSES)}")
    reasons = beat["reasons"]
    if not isinstance(reasons, list) or len(reasons) > MAX_REASONS:
        raise _fail("$.reasons", f"expected a list of at most {MAX_REASONS} reasons")
    for i, reason in enumerate(reasons):
        _text(reason, f"$.reasons[{i}]", MAX_REASON_CHARS)
    _text(beat["software"], "$.software", 64)
    if beat.get("model") is not None:
        _text(beat["model"], "$.model", 64, _SHA256)
    _number(beat["uptime_s"], "$.uptime_s", 0.0, 1e12, integer=False)
    cameras = beat["cameras"]
    if not isinstance(cameras, list) or len(cameras) > MAX_CAMERAS:
        raise _fail("$.cameras", f"expected a list of at most {MAX_CAMERAS} cameras")
    for i, raw in enumerate(cameras):
        camera = _object(raw, f"$.cameras[{i}]", {"id", "state", "fps"}, set())
        _text(camera["id"], f"$.cameras[{i}].id", 64, _ID)
        _text(camera["state"], f"$.cameras[{i}].state", 32)
        _number(camera["fps"], f"$.cameras[{i}].fps", 0.0, 1000.0, integer=False)
    for name, (low, high, integer) in _NUMBERS.items():
        _optional(beat.get(name), f"$.{name}", low, high, integer=integer)
    _check_config(beat["config"], "$.config")
    _check_manifest(beat["manifest"], "$.manifest")
    return beat


def encode_heartbeat(beat: Heartbeat) -> bytes:
    """A checked heartbeat as its JSON body.

    Raises:
        WireError: It is not a valid heartbeat.
    """
    body = json.dumps(check_heartbeat(beat), separators=(",", ":"), allow_nan=False).encode()
    if len(body) > MAX_HEARTBEAT_BYTES:
        raise BodyTooLargeError(f"the heartbeat is over {MAX_HEARTBEAT_BYTES} bytes")
    return body


def decode_heartbeat(body: bytes) -> Heartbeat:
    """A request body as a checked heartbeat.

    Raises:
        BodyTooLargeError: Over :data:`MAX_HEARTBEAT_BYTES`.
        UnknownSchemaError: An unknown ``v``.
        WireError: Not JSON, or not a valid heartbeat.
    """
    if len(body) > MAX_HEARTBEAT_BYTES:
        raise BodyTooLargeError(f"the heartbeat is over {MAX_HEARTBEAT_BYTES} bytes")
    return check_heartbeat(parse_json(body))
