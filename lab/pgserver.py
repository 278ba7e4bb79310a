"""A throwaway PostgreSQL server and ``footfall hub serve`` processes, for tests and benchmarks.

:func:`start_postgres` runs ``initdb`` into a fresh temp folder and a server on a free
127.0.0.1 port (its socket in that folder, durability off: ``fsync``,
``full_page_writes`` and ``synchronous_commit``), as ``nobody`` when run as root
(PostgreSQL refuses root); :meth:`PgServer.stop` removes it all. Debian's
``postgresql`` package provides the binaries (looked for on ``PATH`` and in
``/usr/lib/postgresql/*/bin``). :func:`start_hub` starts ``footfall hub serve --port 0``
from this checkout and waits until it prints its URL. The hub tests
(``tests/hub_support.py``) and ``footfall bench hub`` both use these.
"""

from __future__ import annotations

import logging
import os
import pwd
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

logger = logging.getLogger(__name__)

REPO: Final = Path(__file__).resolve().parent.parent
PG_SEARCH: Final = (
    "/usr/local/bin",
    *sorted(map(str, Path("/usr/lib/postgresql").glob("*/bin")), reverse=True),
)
PG_USER: Final = "footfall"
START_TIMEOUT_S: Final = 60.0


class PgServerError(RuntimeError):
    """PostgreSQL's binaries are missing or the server would not start (the reason)."""


def _pg_binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for folder in PG_SEARCH:
        candidate = Path(folder) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PgServer:
    """A PostgreSQL server started here; :meth:`new_database` makes a fresh database."""

    root: Path
    port: int
    pg_ctl: str
    run_as: list[str]
    _count: int = 0

    def new_database(self) -> str:
        """CREATE DATABASE hub_<n>; its SQLAlchemy URL."""
        import psycopg

        self._count += 1
        name = f"hub_{self._count}"
        with psycopg.connect(
            host="127.0.0.1", port=self.port, user=PG_USER, dbname="postgres", autocommit=True
        ) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://{PG_USER}@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        """Stop the server (immediately) and remove its folder."""
        subprocess.run(
            [*self.run_as, self.pg_ctl, "-D", str(self.root / "data"), "-m", "immediate", "stop"],
            capture_output=True, timeout=60, check=False, cwd=self.root,
        )  # fmt: skip
        shutil.rmtree(self.root, ignore_errors=True)


def start_postgres(max_connections: int = 50) -> PgServer:
    """Start a server: ``initdb`` and ``pg_ctl start`` on a free port.

    Args:
        max_connections: The server's ``max_connections``.

    Raises:
        PgServerError: The binaries are not installed, or initdb or the start failed
            (with their output and the server's log).
    """
    initdb, pg_ctl = _pg_binary("initdb"), _pg_binary("pg_ctl")
    if not initdb or not pg_ctl:
        raise PgServerError(
            "PostgreSQL's initdb and pg_ctl are not installed (looked on PATH and in "
            f"{', '.join(PG_SEARCH)}): apt-get install postgresql"
        )
    root = Path(tempfile.mkdtemp(prefix="footfall-pg-"))
    run_as: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        nobody = pwd.getpwnam("nobody")
        os.chown(root, nobody.pw_uid, nobody.pw_gid)
        run_as = ["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}",
                  "--clear-groups"]  # fmt: skip
    port = free_port()
    server = PgServer(root, port, pg_ctl, run_as)
    steps = [
        [initdb, "-D", str(root / "data"), "-U", PG_USER, "--auth=trust", "-E", "UTF8",
         "--locale=C", "--no-sync"],
        [pg_ctl, "-D", str(root / "data"), "-l", str(root / "server.log"), "-w", "-t", "60",
         "-o", f"-h 127.0.0.1 -p {port} -k {root} -c fsync=off -c full_page_writes=off "
         f"-c synchronous_commit=off -c max_connections={max_connections}", "start"],
    ]  # fmt: skip
    for step in steps:
        done = subprocess.run(
            [*run_as, *step], capture_output=True, text=True, timeout=120, check=False, cwd=root
        )
        if done.returncode != 0:
            log = (root / "server.log").read_text() if (root / "server.log").exists() else ""
            server.stop()
            raise PgServerError(
                f"{Path(step[0]).name} failed ({done.returncode}): {done.stderr}{log}"
            )
    logger.info("PostgreSQL started on 127.0.0.1:%d in %s", port, root)
    return server


@dataclass
class HubProcess:
    """A ``footfall hub serve`` process on a free port."""

    process: subprocess.Popen[str]
    url: str
    log: Path

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it lingers."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)
        if self.process.stdout:
            self.process.stdout.close()


def start_hub(
    db_url: str, log: Path, env: Mapping[str, str] | None = None, args: Sequence[str] = ()
) -> HubProcess:
    """Start ``footfall hub serve --port 0`` (this checkout's code) and wait for its URL.

    Args:
        db_url: The hub's database.
        log: Where its stderr goes.
        env: Extra environment variables.
        args: More options of ``hub serve`` (``--releases R``).

    Raises:
        PgServerError: It exited or printed no URL within :data:`START_TIMEOUT_S` (its log).
    """
    command = [sys.executable, "-m", "appliance.cli", "hub", "serve", "--db", db_url,
               "--port", "0", *args]  # fmt: skip
    environment = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    with log.open("w") as err:
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=err, text=True, env=environment, cwd=REPO
        )
    assert process.stdout is not None
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        ready, _, _ = select.select([process.stdout], [], [], 0.5)
        if ready:
            line = process.stdout.readline()
            if line.startswith("hub: "):
                return HubProcess(process, line.split(" ", 1)[1].strip(), log)
            if not line:
                break
    process.kill()
    process.wait(timeout=15)
    raise PgServerError(f"the hub did not start ({process.returncode}): {log.read_text()}")
