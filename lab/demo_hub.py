"""The demo's hub: a SQLite hub on localhost that every demo store syncs into.

:func:`start_hub` migrates a fresh hub database, serves the hub (ingest API and the
managers' dashboard) and issues the one-time setup token of its first admin.
:meth:`DemoHub.enrol` registers a store from its box config (region, time zone, floor
area, opening hours) the way ``footfall hub store add`` does, writes the store's secret
into a file beside the demo's config copy and returns the config's ``hub:`` section, so
the box syncs with its own sender on its own scheduler, as ``footfall run`` would.

One store's line to the hub goes through an :class:`Uplink`, a TCP forwarder that drops
every connection until it is brought up: that box backs off, keeps its outbox, and
catches up oldest first once the line is back, while the hub's completeness ledger
shows its hours as not yet received and then fills them in.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from sqlalchemy import Engine

from appliance.config.model import BoxConfig
from cloud_hub.accounts import issue_setup_token
from cloud_hub.app import create_app
from cloud_hub.db import migrate, open_engine
from cloud_hub.registry import add_store
from local_db.backup import remove_database
from webui.serve import RunningServer, start_server

logger = logging.getLogger(__name__)

#: The name of the secret file beside each demo config copy.
SECRET_FILE: Final = "hub.secret"
#: The demo's boxes sync this often (a real box: every 5 minutes).
SYNC_EVERY_S: Final = 10
_ACCEPT_POLL_S: Final = 0.5
_CHUNK: Final = 1 << 16


def _hours(text: str) -> float:
    hours, minutes = text.split(":")
    return int(hours) + int(minutes) / 60


def weekly_hours(config: BoxConfig) -> list[int] | None:
    """Hours open per weekday, Monday first, from the box's opening hours (None: not set)."""
    if not config.store.opening_hours:
        return None
    days = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    week = [0] * 7
    for spec in config.store.opening_hours:
        for day in spec.days:
            week[days.index(day)] = round(_hours(spec.close) - _hours(spec.open))
    return week


@dataclass
class DemoHub:
    """The demo's running hub.

    Attributes:
        url: Where the hub answers (dashboard and ingest API).
        token: The one-time setup token that creates the first admin.
        engine: Its database.
        server: The serving thread.
    """

    url: str
    token: str | None
    engine: Engine
    server: RunningServer

    def enrol(
        self, config: BoxConfig, folder: Path, region: str, url: str | None = None
    ) -> dict[str, object]:
        """Register the store of ``config`` and hand its box the secret.

        Args:
            config: The store's box config.
            folder: The folder of the demo's config copy (the secret file goes there).
            region: The hub region the store belongs to.
            url: The hub's address as this box reaches it (default: :attr:`url`).

        Returns:
            The config's ``hub:`` section.
        """
        store = config.store
        area = config.floor_plan.width_m * config.floor_plan.depth_m
        with self.engine.begin() as conn:
            secret = add_store(
                conn, store.id, store.name, region, store.timezone, round(area, 1),
                round(time.time() * 1000), weekly_hours(config),
            )  # fmt: skip
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / SECRET_FILE
        path.unlink(missing_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(secret + "\n")
        return {"url": url or self.url, "store_id": store.id, "secret_file": SECRET_FILE}

    def stop(self) -> None:
        """Stop serving and close the database."""
        self.server.stop()
        self.engine.dispose()


def start_hub(db: Path, host: str, port: int) -> DemoHub:
    """A fresh SQLite hub at ``db``, migrated and served on ``host:port`` (0: a free port).

    Raises:
        OSError: The address cannot be bound.
        cloud_hub.db.HubDbError: The database cannot be migrated.
    """
    db.parent.mkdir(parents=True, exist_ok=True)
    remove_database(db)
    engine = open_engine(f"sqlite:///{db}")
    migrate(engine)
    with engine.begin() as conn:
        token = issue_setup_token(conn)
    server = start_server(create_app(engine), host, port)
    return DemoHub(server.url, token, engine, server)


class Uplink:
    """A TCP line to the hub that can be cut: while down it drops every connection.

    The box sees what a dead uplink looks like (the connection closes before an answer),
    so its sender backs off and keeps the batch, exactly as behind a broken router.

    Args:
        hub_url: The hub's ``http://host:port``.
        host: The address the line listens on.
    """

    def __init__(self, hub_url: str, host: str) -> None:
        hub_host, _, hub_port = hub_url.removeprefix("http://").rpartition(":")
        self._target = (hub_host, int(hub_port))
        self._listener = socket.create_server((host, 0))
        self._listener.settimeout(_ACCEPT_POLL_S)
        self.up = threading.Event()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="uplink", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        """The hub's address through this line."""
        host, port = self._listener.getsockname()[:2]
        return f"http://{host}:{port}"

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # closed
            if self.up.is_set():
                threading.Thread(target=self._forward, args=(client,), daemon=True).start()
            else:
                client.close()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(_CHUNK):
                sink.sendall(data)
        except OSError:
            pass  # either end went away: the other side sees the connection end
        finally:
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_WR)

    def _forward(self, client: socket.socket) -> None:
        with client:
            try:
                upstream = socket.create_connection(self._target, timeout=30)
            except OSError as exc:
                logger.warning("uplink: the hub at %s:%d: %s", *self._target, exc)
                return
            with upstream:
                back = threading.Thread(target=self._pump, args=(upstream, client), daemon=True)
                back.start()
                self._pump(client, upstream)
                back.join()

    def close(self) -> None:
        """Stop accepting connections."""
        self._closed.set()
        self._listener.close()
        self._thread.join(timeout=2 * _ACCEPT_POLL_S + 1)
