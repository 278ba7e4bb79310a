"""The box's TUF client: fetch and verify a release from the hub's repository.

:func:`fetch_release` refreshes the metadata (``tuf.ngclient.Updater``: root, timestamp,
snapshot, targets, each signature, version and expiry checked), reads the channel's
``latest.json`` or the named version's ``release.json`` and downloads its wheel and model
files, each verified against the signed length and hash. Every refusal is a
:class:`UpdateRefusedError` whose message says what was wrong in words (a tampered
file, a bad signature, expired or frozen metadata, a rollback), never a bare TUF class name.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from tuf.api import exceptions
from tuf.ngclient import Updater

logger = logging.getLogger(__name__)

#: Where the hub serves its repository (``cloud_hub.releases.URL_PREFIX``).
TUF_PREFIX: Final = "/tuf"
#: The largest release manifest or channel pointer the box reads.
MAX_MANIFEST_BYTES: Final = 64 * 1024


class UpdateRefusedError(Exception):
    """The update was refused: its reason, for logs, ``footfall update`` and the hub."""


@dataclass(frozen=True)
class FetchedRelease:
    """A verified release on disk.

    Attributes:
        channel: Its channel.
        version: Its version.
        wheel: The downloaded wheel.
        models: The downloaded model files.
    """

    channel: str
    version: str
    wheel: Path
    models: tuple[Path, ...]


def _explain(exc: Exception, what: str) -> str:
    """A TUF failure in words."""
    text = str(exc)
    if isinstance(exc, exceptions.ExpiredMetadataError):
        if "timestamp" in text:
            return (f"{what}: the hub's timestamp metadata has expired ({text}): the repository "
                    "is stale or frozen (a freeze attack); refusing to update")  # fmt: skip
        return f"{what}: expired metadata ({text}): refusing to update"
    if isinstance(exc, exceptions.BadVersionNumberError):
        return (f"{what}: metadata older than the box already trusts ({text}): "
                "a rollback attack; refusing to update")  # fmt: skip
    if isinstance(exc, exceptions.UnsignedMetadataError):
        return f"{what}: bad signature ({text}): refusing to update"
    if isinstance(
        exc, exceptions.LengthOrHashMismatchError | exceptions.DownloadLengthMismatchError
    ):
        return (f"{what}: a file does not match its signed hash or length ({text}): "
                "tampered; refusing to update")  # fmt: skip
    if isinstance(exc, exceptions.DownloadHTTPError):
        return f"{what}: the hub answered HTTP {exc.status_code}: {text}"
    if isinstance(exc, exceptions.DownloadError):
        return f"{what}: download failed: {text}"
    return f"{what}: {type(exc).__name__}: {text}"


def _updater(hub_url: str, trust_root: Path, state_dir: Path) -> Updater:
    metadata_dir = state_dir / "metadata"
    metadata_dir.mkdir(parents=True, exist_ok=True)
    try:
        bootstrap = trust_root.read_bytes()
    except OSError as exc:
        raise UpdateRefusedError(f"{trust_root}: the trusted root is unreadable: {exc}") from exc
    base = hub_url.rstrip("/") + TUF_PREFIX
    try:
        return Updater(
            str(metadata_dir), f"{base}/metadata/", str(state_dir / "downloads"),
            f"{base}/targets/", bootstrap=bootstrap,
        )  # fmt: skip
    except (exceptions.RepositoryError, ValueError) as exc:
        raise UpdateRefusedError(_explain(exc, f"{trust_root}: the trusted root")) from exc


def _download(updater: Updater, target: str, dest: Path) -> Path:
    info = updater.get_targetinfo(target)
    if info is None:
        raise UpdateRefusedError(f"{target}: not in the hub's signed targets")
    dest.parent.mkdir(parents=True, exist_ok=True)
    return Path(updater.download_target(info, str(dest)))


def _document(path: Path, target: str) -> dict[str, object]:
    data = path.read_bytes()
    try:
        document = json.loads(data) if len(data) <= MAX_MANIFEST_BYTES else None
    except (UnicodeDecodeError, json.JSONDecodeError):
        document = None
    if not isinstance(document, dict):
        raise UpdateRefusedError(f"{target}: not a JSON object of at most {MAX_MANIFEST_BYTES} B")
    return document


def _manifest(
    updater: Updater, channel: str, version: str | None, dest: Path
) -> tuple[str, dict[str, object]]:
    """The version (the channel's newest if None) and its verified ``release.json``."""
    if version is None:
        target = f"{channel}/latest.json"
        version = str(_document(_download(updater, target, dest / "latest.json"), target).get(
            "version", ""))  # fmt: skip
    target = f"{channel}/{version}/release.json"
    manifest = _document(_download(updater, target, dest / "release.json"), target)
    if manifest.get("version") != version or manifest.get("channel") != channel:
        raise UpdateRefusedError(f"{target}: names another release: {manifest}")
    return version, manifest


def check_release(
    hub_url: str, trust_root: Path, state_dir: Path, channel: str, version: str | None
) -> str:
    """Refresh the metadata and resolve the release to run, downloading only its manifest.

    Args:
        hub_url: The hub's base URL.
        trust_root: The root metadata the box trusts.
        state_dir: The client's folder.
        channel: The box's channel.
        version: The version its rollout group may run (None: the channel's newest).

    Returns:
        The version, verified to be published.

    Raises:
        UpdateRefusedError: Anything not verified, not found or not reachable.
    """
    what = f"{channel} {version or 'latest'}"
    updater = _updater(hub_url, trust_root, state_dir)
    try:
        updater.refresh()
        return _manifest(updater, channel, version, state_dir / "check")[0]
    except (exceptions.RepositoryError, exceptions.DownloadError) as exc:
        raise UpdateRefusedError(_explain(exc, what)) from exc


def fetch_release(
    hub_url: str,
    trust_root: Path,
    state_dir: Path,
    channel: str,
    version: str | None,
    dest: Path,
) -> FetchedRelease:
    """Refresh the metadata and download one release, every file verified.

    Args:
        hub_url: The hub's base URL.
        trust_root: The root metadata the box trusts (shipped with the image).
        state_dir: The client's folder (its trusted metadata, kept between runs).
        channel: The box's channel.
        version: The version its rollout group may run (None: the channel's newest).
        dest: Where to put the release's files.

    Returns:
        The release.

    Raises:
        UpdateRefusedError: Anything not verified, not found or not reachable.
    """
    what = f"{channel} {version or 'latest'}"
    updater = _updater(hub_url, trust_root, state_dir)
    try:
        updater.refresh()
        version, manifest = _manifest(updater, channel, version, dest)
        what = f"{channel} {version}"
        wheel_target = str(manifest.get("wheel", ""))
        models = manifest.get("models", [])
        if not isinstance(models, list):
            raise UpdateRefusedError(f"{channel}/{version}/release.json: models: expected a list")
        wheel = _download(updater, wheel_target, dest / wheel_target.rpartition("/")[2])
        model_files = tuple(
            _download(updater, str(m), dest / "models" / str(m).rpartition("/")[2]) for m in models
        )
    except (exceptions.RepositoryError, exceptions.DownloadError) as exc:
        raise UpdateRefusedError(_explain(exc, what)) from exc
    except OSError as exc:
        raise UpdateRefusedError(f"{what}: cannot store the download: {exc}") from exc
    logger.info("release %s verified: %s + %d model file(s)", what, wheel.name, len(model_files))
    return FetchedRelease(channel, version, wheel, model_files)
