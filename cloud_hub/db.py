"""Opening the hub's database (SQLite by default, PostgreSQL in production) and migrating it.

URLs: ``sqlite:////path/hub.db`` (default :func:`default_url`, or ``$FOOTFALL_HUB_DB``)
or ``postgresql+psycopg://user@host/db``. On SQLite every transaction is
``BEGIN IMMEDIATE`` (one writer at a time, waiting up to :data:`SQLITE_BUSY_S`), in WAL
mode with foreign keys on. Migrations are Alembic scripts shipped in the package
(``cloud_hub/migrations/``), run by :func:`migrate` at ``footfall hub init`` and
``footfall hub serve``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Final

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

logger = logging.getLogger(__name__)

MIGRATIONS: Final = Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_S: Final = 30
ENV_URL: Final = "FOOTFALL_HUB_DB"


class HubDbError(RuntimeError):
    """The database URL is unusable or the database cannot be opened or migrated."""


def default_url() -> str:
    """``$FOOTFALL_HUB_DB``, else ``~/.local/share/footfall/hub.db`` on SQLite."""
    if os.environ.get(ENV_URL):
        return os.environ[ENV_URL]
    return f"sqlite:///{Path('~/.local/share/footfall/hub.db').expanduser()}"


def _sqlite_pragmas(dbapi_conn: Any, _record: object) -> None:
    dbapi_conn.isolation_level = None  # the driver opens no transaction; "begin" below does
    cursor = dbapi_conn.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_S * 1000}")
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.close()


def open_engine(url: str) -> Engine:
    """An engine on ``url``; a new SQLite file is made 0600 in a 0700 folder (it holds secrets).

    Raises:
        HubDbError: Not a SQLite or PostgreSQL URL.
    """
    try:
        parsed = make_url(url)
    except Exception as exc:  # sqlalchemy.exc.ArgumentError, ValueError
        raise HubDbError(f"{url!r} is not a database URL: {exc}") from exc
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            path = Path(parsed.database).expanduser()
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            path.touch(mode=0o600, exist_ok=True)  # its -wal and -shm files take its mode
        engine = create_engine(parsed)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
        return engine
    if backend == "postgresql":
        return create_engine(parsed, pool_pre_ping=True)
    raise HubDbError(f"{parsed.render_as_string()}: the hub runs on sqlite or postgresql only")


def is_postgres(engine: Engine) -> bool:
    """Whether ``engine`` is PostgreSQL (partitioned facts) rather than SQLite."""
    return engine.dialect.name == "postgresql"


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest migration (nothing if it is there).

    Raises:
        HubDbError: The database cannot be reached or a migration failed (it is rolled
            back: each runs in a transaction, DDL included, on both back ends).
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    try:
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
    except Exception as exc:  # any driver's error: report it with the URL
        url = engine.url.render_as_string(hide_password=True)
        raise HubDbError(f"migrating {url}: {type(exc).__name__}: {exc}") from exc
