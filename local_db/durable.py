"""Durable file writes: the one place that fsyncs and renames.

Every file the box replaces (the store config and its backups, uploaded floor plans, the
prepared detector models, database backups) goes through :func:`atomic_write` or, for a
file written by another library, :func:`fsync_file` + :func:`fsync_dir` around its own
rename: a reader sees the old file or the new one, never half of one, and a power cut
after the call loses nothing.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

logger = logging.getLogger(__name__)


def fsync_dir(folder: Path) -> None:
    """Make a rename or a new file in ``folder`` durable.

    Best effort where the file system cannot open or sync a directory (then it is logged at
    debug level and ignored).
    """
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        logger.debug("cannot open directory %s to fsync it", folder)
        return
    try:
        os.fsync(fd)
    except OSError:
        logger.debug("fsync of directory %s not supported", folder)
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    """Flush ``path``'s contents to disk (a file another library wrote and closed)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, mode: int = 0o666) -> None:
    """Replace ``path`` with ``data`` atomically: temp file, fsync, rename, fsync of the folder.

    The temporary file sits beside ``path`` (``.NAME.PID.THREAD.tmp``) so that the rename
    stays on one file system; it is removed if the write fails.

    Args:
        path: The file to create or replace; its folder must exist.
        data: The whole new contents.
        mode: The new file's permissions (less the umask), set when it is created, so
            that a secret is never readable by others, not even for a moment.

    Raises:
        OSError: The folder is not writable or the disk is full (the old file is then
            untouched and no temporary file is left).
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)
