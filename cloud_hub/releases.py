"""The hub's TUF repository of releases (The Update Framework, python-tuf's Metadata API).

A folder holding ``metadata/`` (``N.root.json``, ``N.targets.json``, ``N.snapshot.json``
and ``timestamp.json``: consistent snapshots), ``targets/`` (each file stored as
``<channel>/<version>/<sha256>.<name>``) and ``keys/`` (the online keys of the targets,
snapshot and timestamp roles, ed25519 PEM, mode 0600). The root keys are not in it: ``init``
writes each to a path the operator gives and keeps elsewhere (offline), and ``sign``
needs a threshold of them to sign a new root version.

A release is a set of targets under a channel: ``<channel>/<version>/<file>`` for the
wheel and each model file, ``<channel>/<version>/release.json`` (what the release holds)
and ``<channel>/latest.json`` (the channel's newest version). ``publish`` adds them and
re-signs targets, snapshot and timestamp with the online keys; the box verifies them all
(``appliance/update``). ``footfall hub serve --releases DIR`` serves the folder read-only
(:func:`blueprint`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final, TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)
from flask import Blueprint, Response, abort, send_from_directory
from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import (
    SPECIFICATION_VERSION,
    Metadata,
    MetaFile,
    Role,
    Root,
    Snapshot,
    TargetFile,
    Targets,
    Timestamp,
)
from tuf.api.serialization.json import JSONSerializer

logger = logging.getLogger(__name__)

ONLINE_ROLES: Final = ("targets", "snapshot", "timestamp")
#: A channel name and a release version (PEP 440-ish: digits, dots, letters).
CHANNEL_RE: Final = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
VERSION_RE: Final = re.compile(r"^\d+(\.\d+){1,3}([a-z]+\d*)?$")
#: Where ``hub serve`` serves the repository.
URL_PREFIX: Final = "/tuf"

S = TypeVar("S", Root, Timestamp, Snapshot, Targets)


class ReleaseError(Exception):
    """A repository operation refused: a bad name, a missing key, a version that exists."""


@dataclass(frozen=True)
class Expiry:
    """How long each role's metadata stays valid once signed (days)."""

    root_days: float = 365.0
    targets_days: float = 90.0
    snapshot_days: float = 7.0
    timestamp_days: float = 1.0

    def until(self, role: str, now: datetime) -> datetime:
        """The expiry of ``role`` signed at ``now`` (whole seconds, as TUF stores it)."""
        days: float = getattr(self, f"{role}_days")
        return (now + timedelta(days=days)).replace(microsecond=0)


def write_key(path: Path) -> CryptoSigner:
    """A new ed25519 key written to ``path`` (PEM, mode 0600, never over an existing file).

    Raises:
        ReleaseError: The file exists or cannot be written.
    """
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise ReleaseError(f"{path}: cannot create the key file: {exc.strerror}") from exc
    with open(fd, "wb") as out:
        out.write(pem)
    return CryptoSigner(private)


def load_key(path: Path) -> CryptoSigner:
    """The signer of an ed25519 key file.

    Raises:
        ReleaseError: Unreadable or not an ed25519 private key.
    """
    try:
        private = load_pem_private_key(path.read_bytes(), None)
    except (OSError, ValueError, TypeError) as exc:
        raise ReleaseError(f"{path}: not a readable ed25519 private key: {exc}") from exc
    if not isinstance(private, Ed25519PrivateKey):
        raise ReleaseError(f"{path}: not an ed25519 key")
    return CryptoSigner(private)


def _replace(path: Path, data: bytes) -> None:
    """Write ``path`` by a temporary file and a rename (readers never see half a file)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as src:
        for block in iter(lambda: src.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class Repository:
    """One TUF repository folder (see the module's docstring)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.metadata_dir = folder / "metadata"
        self.targets_dir = folder / "targets"
        self.keys_dir = folder / "keys"

    # -- reading -------------------------------------------------------------------------

    def _load(self, name: str, kind: type[S]) -> Metadata[S]:
        try:
            data = (self.metadata_dir / name).read_bytes()
        except OSError as exc:
            raise ReleaseError(f"{self.metadata_dir / name}: not a TUF repository: {exc}") from exc
        try:
            return Metadata[kind].from_bytes(data)  # type: ignore[valid-type,return-value]
        except ValueError as exc:
            raise ReleaseError(f"{self.metadata_dir / name}: not a TUF repository: {exc}") from exc

    def root(self) -> Metadata[Root]:
        """The newest root metadata."""
        return self._load("root.json", Root)

    def timestamp(self) -> Metadata[Timestamp]:
        """The timestamp metadata."""
        return self._load("timestamp.json", Timestamp)

    def snapshot(self) -> Metadata[Snapshot]:
        """The snapshot the timestamp names."""
        version = self.timestamp().signed.snapshot_meta.version
        return self._load(f"{version}.snapshot.json", Snapshot)

    def targets(self) -> Metadata[Targets]:
        """The targets the snapshot names."""
        version = self.snapshot().signed.meta["targets.json"].version
        return self._load(f"{version}.targets.json", Targets)

    def _online_signer(self, role: str) -> CryptoSigner:
        return load_key(self.keys_dir / f"{role}.pem")

    # -- writing -------------------------------------------------------------------------

    def _write(self, md: Metadata[S], name: str) -> None:
        _replace(self.metadata_dir / name, md.to_bytes(JSONSerializer(compact=False)))

    def _write_root(self, md: Metadata[Root]) -> None:
        self._write(md, f"{md.signed.version}.root.json")
        self._write(md, "root.json")

    @classmethod
    def init(
        cls,
        folder: Path,
        root_keys: Sequence[Path],
        root_threshold: int = 1,
        expiry: Expiry | None = None,
        now: datetime | None = None,
    ) -> Repository:
        """Create a repository: new root keys at ``root_keys``, online keys in ``keys/``.

        Args:
            folder: An empty or new folder.
            root_keys: Where to write each root key (kept offline by the operator).
            root_threshold: How many root keys must sign a root.
            expiry: Each role's validity.
            now: The clock (default: now, UTC).

        Returns:
            The repository, with empty targets signed.

        Raises:
            ReleaseError: The folder holds a repository, a key path exists, or the
                threshold is not between 1 and the number of root keys.
        """
        if not 1 <= root_threshold <= len(root_keys):
            raise ReleaseError(
                f"root threshold {root_threshold}: must be between 1 and the "
                f"{len(root_keys)} root key(s) given"
            )
        repo = cls(folder)
        if (repo.metadata_dir / "root.json").exists():
            raise ReleaseError(f"{folder}: already a TUF repository (use sign or publish)")
        for sub in (repo.metadata_dir, repo.targets_dir, repo.keys_dir):
            sub.mkdir(parents=True, exist_ok=True)
        repo.keys_dir.chmod(0o700)
        expiry = expiry or Expiry()
        now = now or datetime.now(UTC)
        root_signers = [write_key(path) for path in root_keys]
        root = Root(expires=expiry.until("root", now), consistent_snapshot=True)
        root.roles["root"] = Role([], root_threshold)
        for signer in root_signers:
            root.add_key(signer.public_key, "root")
        for role in ONLINE_ROLES:
            root.add_key(write_key(repo.keys_dir / f"{role}.pem").public_key, role)
        md = Metadata(root)
        for signer in root_signers:
            md.sign(signer, append=True)
        repo._write_root(md)
        repo._sign_online(Targets(expires=expiry.until("targets", now)), expiry, now)
        logger.info("TUF repository created in %s (root threshold %d)", folder, root_threshold)
        return repo

    def sign_root(
        self, root_keys: Sequence[Path], expiry: Expiry | None = None, now: datetime | None = None
    ) -> int:
        """Sign a new root version (a new expiry) with the offline root keys.

        Args:
            root_keys: At least the threshold of the root's keys.
            expiry: Its validity.
            now: The clock.

        Returns:
            The new root version.

        Raises:
            ReleaseError: Too few of the given keys are the root's.
        """
        expiry = expiry or Expiry()
        now = now or datetime.now(UTC)
        md = self.root()
        root = md.signed
        keyids = set(root.roles["root"].keyids)
        signers = [s for s in (load_key(p) for p in root_keys) if s.public_key.keyid in keyids]
        if len(signers) < root.roles["root"].threshold:
            raise ReleaseError(
                f"{len(signers)} of the given keys sign for root; its threshold is "
                f"{root.roles['root'].threshold}"
            )
        root.version += 1
        root.expires = expiry.until("root", now)
        md.signatures.clear()
        for signer in signers:
            md.sign(signer, append=True)
        self._write_root(md)
        logger.info("TUF root version %d signed, expires %s", root.version, root.expires)
        return root.version

    def _sign_online(self, targets: Targets, expiry: Expiry, now: datetime) -> None:
        """Sign ``targets`` (a new version), then a snapshot and a timestamp naming it."""
        targets_md = Metadata(targets)
        targets_md.sign(self._online_signer("targets"))
        self._write(targets_md, f"{targets.version}.targets.json")
        try:
            old_snapshot = self.snapshot().signed.version
        except ReleaseError:
            old_snapshot = 0
        snapshot = Snapshot(
            version=old_snapshot + 1,
            expires=expiry.until("snapshot", now),
            meta={"targets.json": MetaFile(version=targets.version)},
        )
        snapshot_md = Metadata(snapshot)
        snapshot_md.sign(self._online_signer("snapshot"))
        self._write(snapshot_md, f"{snapshot.version}.snapshot.json")
        self.refresh_timestamp(expiry, now, snapshot.version)

    def refresh_timestamp(
        self, expiry: Expiry | None = None, now: datetime | None = None, snapshot: int | None = None
    ) -> int:
        """Sign a new timestamp, more often than ``timestamp_days``: boxes refuse a stale one.

        Returns:
            The new timestamp version.
        """
        expiry = expiry or Expiry()
        now = now or datetime.now(UTC)
        try:
            old = self.timestamp().signed
            version, snapshot = old.version + 1, snapshot or old.snapshot_meta.version
        except ReleaseError:
            version = 1
        timestamp = Timestamp(
            version=version,
            expires=expiry.until("timestamp", now),
            snapshot_meta=MetaFile(version=snapshot or 1),
        )
        md = Metadata(timestamp)
        md.sign(self._online_signer("timestamp"))
        self._write(md, "timestamp.json")
        return version

    def publish(
        self,
        channel: str,
        version: str,
        wheel: Path,
        models: Sequence[Path] = (),
        expiry: Expiry | None = None,
        now: datetime | None = None,
    ) -> list[str]:
        """Add a release to a channel; re-sign targets, snapshot and timestamp.

        Args:
            channel: e.g. ``stable``.
            version: The release version (the wheel's).
            wheel: The box's wheel.
            models: Model files shipped with it.
            expiry: Each online role's validity.
            now: The clock.

        Returns:
            The target paths added.

        Raises:
            ReleaseError: A bad channel or version, a missing file, a version published before.
        """
        if not CHANNEL_RE.match(channel):
            raise ReleaseError(f"channel {channel!r}: expected lowercase letters, digits, '-'")
        if not VERSION_RE.match(version):
            raise ReleaseError(f"version {version!r}: expected e.g. 1.4.0")
        if not wheel.name.endswith(".whl"):
            raise ReleaseError(f"{wheel}: the release's first file must be a wheel (.whl)")
        expiry = expiry or Expiry()
        now = now or datetime.now(UTC)
        targets_md = self.targets()
        targets = targets_md.signed
        manifest_path = f"{channel}/{version}/release.json"
        if manifest_path in targets.targets:
            raise ReleaseError(f"{channel} {version}: already published (publish a new version)")
        names = [p.name for p in (wheel, *models)]
        if len(set(names)) != len(names) or "release.json" in names:
            raise ReleaseError(f"file names must be distinct and not release.json: {names}")
        added: dict[str, bytes | Path] = {}
        for path in (wheel, *models):
            if not path.is_file():
                raise ReleaseError(f"{path}: no such file")
            added[f"{channel}/{version}/{path.name}"] = path
        manifest = {
            "channel": channel,
            "version": version,
            "wheel": f"{channel}/{version}/{wheel.name}",
            "models": [f"{channel}/{version}/{p.name}" for p in models],
        }
        added[manifest_path] = json.dumps(manifest, indent=2, sort_keys=True).encode()
        added[f"{channel}/latest.json"] = json.dumps({"version": version}).encode()
        for target_path, source in added.items():
            data_path = self._store_target(target_path, source)
            info = TargetFile.from_file(target_path, str(data_path), ["sha256"])
            info.unrecognized_fields["custom"] = {"channel": channel, "version": version}
            targets.targets[target_path] = info
        targets.version += 1
        targets.expires = expiry.until("targets", now)
        self._sign_online(targets, expiry, now)
        logger.info("published %s %s: %s", channel, version, ", ".join(names))
        return list(added)

    def _store_target(self, target_path: str, source: bytes | Path) -> Path:
        """Store a target under its hash-prefixed name (consistent snapshots); its path."""
        folder, _, name = target_path.rpartition("/")
        dest_dir = self.targets_dir / folder
        dest_dir.mkdir(parents=True, exist_ok=True)
        data = source if isinstance(source, bytes) else source.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        dest = dest_dir / f"{digest}.{name}"
        if not dest.exists():
            _replace(dest, data)
        return dest

    def describe(self) -> dict[str, object]:
        """Versions and expiries of each role, and the channels' newest releases."""
        now = datetime.now(UTC)
        roles: dict[str, Metadata[Root] | Metadata[Targets] | Metadata[Snapshot]] = {
            "root": self.root(),
            "targets": self.targets(),
            "snapshot": self.snapshot(),
        }
        out: dict[str, object] = {
            name: {
                "version": md.signed.version,
                "expires": md.signed.expires.isoformat(),
                "expired": md.signed.is_expired(now),
            }
            for name, md in roles.items()
        }
        stamp = self.timestamp().signed
        out["timestamp"] = {
            "version": stamp.version,
            "expires": stamp.expires.isoformat(),
            "expired": stamp.is_expired(now),
        }
        targets = roles["targets"].signed
        assert isinstance(targets, Targets)
        out["releases"] = sorted(p for p in targets.targets if p.endswith("/release.json"))
        out["spec_version"] = SPECIFICATION_VERSION
        return out


def blueprint(folder: Path) -> Blueprint:
    """Read-only GET routes serving a repository's metadata and targets under ``/tuf``.

    Args:
        folder: The repository folder (``keys/`` is never served).
    """
    bp = Blueprint("tuf_releases", __name__, url_prefix=URL_PREFIX)
    repo = Repository(folder)

    @bp.get("/metadata/<name>")
    def metadata(name: str) -> Response:
        if not re.fullmatch(r"(\d+\.)?(root|targets|snapshot|timestamp)\.json", name):
            abort(404)
        return send_from_directory(repo.metadata_dir.resolve(), name, max_age=0)

    @bp.get("/targets/<path:path>")
    def targets(path: str) -> Response:
        return send_from_directory(repo.targets_dir.resolve(), path, max_age=0)

    return bp
