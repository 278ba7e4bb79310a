"""The fleet against a real hub server process: boxes as real ``footfall sync push`` processes.

Each simulated box is its own folder (config with a ``hub`` section, a migrated box
database) and reports by running ``footfall sync push`` (batches, then a heartbeat); a
box that stops reporting simply is not run. The hub's clock is moved where the test needs
minutes to pass: the fleet page through ``create_app(engine, clock=...)`` on the same
database, the ops alerts through :func:`cloud_hub.fleet_alerts.check_fleet`'s ``now_ms``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from flask.testing import FlaskClient
from sqlalchemy import select

import wire
from appliance.config import ConfigError, parse_config
from cloud_hub.app import create_app
from cloud_hub.fleet_alerts import MailNotifier, WebhookNotifier, check_fleet
from cloud_hub.schema import box_heartbeats, fleet_alerts, store_configs
from cloud_hub.store_config import text_hash
from tests.hub_dashboard_support import CSRF, PASSWORD, add_account, csv_rows
from tests.hub_support import Hub, free_port
from tests.sync_support import box_config, new_box

REPO = Path(__file__).resolve().parent.parent
MIN_MS = 60_000
OFFLINE_MS = 15 * MIN_MS


@dataclass
class Box:
    """A simulated box: its folder, config and database, and its hub store."""

    store: str
    folder: Path
    config: Path
    secret: str

    def push(self) -> subprocess.Popen[str]:
        """Start one sync (``footfall sync push``): batches, then the heartbeat."""
        return subprocess.Popen(
            [sys.executable, "-m", "appliance.cli", "sync", "push", "--config", str(self.config)],
            cwd=REPO, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(REPO), "HUB_SECRET": self.secret},
        )  # fmt: skip


def new_sim_box(hub: Hub, tmp_path: Path, name: str, region: str = "north") -> Box:
    store = hub.new_store(region=region)
    folder = tmp_path / name
    folder.mkdir()
    config = box_config(folder, hub.url, store)
    with closing(new_box(folder / "box.db")):
        pass
    return Box(store, folder, config, hub.secrets[store][0])


def sync_all(*boxes: Box) -> None:
    """Run one sync of each box, all at once (each its own process); each must deliver."""
    running = [b.push() for b in boxes]
    for proc in running:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0 and "heartbeat: delivered" in out, out + err[-3000:]


def seen_ms(hub: Hub, store: str) -> int:
    with hub.engine.connect() as conn:
        return int(
            conn.execute(
                select(box_heartbeats.c.received_ms).where(box_heartbeats.c.store_id == store)
            ).scalar_one()
        )


def signed_in(hub: Hub, now_ms: list[int], name: str = "ops") -> FlaskClient:
    """A dashboard client on the hub's database whose clock the test moves."""
    client = create_app(hub.engine, clock=lambda: now_ms[0] / 1000).test_client()
    token = CSRF.search(client.get("/login").get_data(as_text=True))
    assert token
    answer = client.post(
        "/login", data={"csrf_token": token[1], "username": name, "password": PASSWORD}
    )
    assert answer.status_code == 302, answer.get_data(as_text=True)[:300]
    return client


def fleet_rows(client: FlaskClient, **filters: str) -> dict[str, dict[str, str]]:
    answer = client.get("/fleet.csv", query_string=filters)
    assert answer.status_code == 200
    return {r["store"]: r for r in csv_rows(answer.get_data(as_text=True))}


class Webhook:
    """A real HTTP receiver of the ops webhook: every signed event it got."""

    def __init__(self, secret: str) -> None:
        self.events: list[dict[str, Any]] = []
        received = self.events

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                signed = wire.parse_headers(dict(self.headers.items()))
                wire.verify([secret], signed, body)  # raises on a bad signature
                received.append(json.loads(body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/ops"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Inbox:
    """aiosmtpd's handler: every message received."""

    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:  # noqa: N802
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def ops() -> Iterator[tuple[Webhook, Inbox, list[Any]]]:
    secret = wire.generate_secret()
    hook, inbox = Webhook(secret), Inbox()
    port = free_port()
    smtp = Controller(inbox, hostname="127.0.0.1", port=port)
    smtp.start()
    mail = MailNotifier("127.0.0.1", port, "hub@example.org", ["ops@example.org"])
    notifiers = [WebhookNotifier(hook.url, secret), mail]
    try:
        yield hook, inbox, notifiers
    finally:
        smtp.stop()
        hook.close()


def test_heartbeats_make_fleet_statuses_offline_and_back_with_alerts_once(
    hub: Hub, tmp_path: Path, ops: tuple[Webhook, Inbox, list[Any]]
) -> None:
    hook, inbox, notifiers = ops
    steady = new_sim_box(hub, tmp_path, "steady")
    quits = new_sim_box(hub, tmp_path, "quits")
    silent = new_sim_box(hub, tmp_path, "silent", region="south")  # never reports
    add_account(hub, "ops", "admin")
    add_account(hub, "southern", "manager", {"south"})
    sync_all(steady, quits)
    sync_all(steady)  # the second box has stopped reporting
    now = [seen_ms(hub, steady.store) + OFFLINE_MS]  # the steady box is just not late
    assert seen_ms(hub, quits.store) < seen_ms(hub, steady.store)
    client = signed_in(hub, now)
    rows = fleet_rows(client)
    assert rows[steady.store]["status"] == "ok"
    assert rows[quits.store]["status"] == "offline"
    assert rows[quits.store]["reason"] == "no heartbeat for 15 min"
    assert rows[silent.store]["status"] == "never seen"
    assert rows[steady.store]["cameras"] == "2" and rows[steady.store]["config_version"] == "0"
    assert rows[steady.store]["software"] and rows[steady.store]["disk_free_mb"]
    # filters: region, software version, status; a manager sees only their region
    assert set(fleet_rows(client, region="south")) == {silent.store}
    assert set(fleet_rows(client, status="offline")) == {quits.store}
    version = rows[steady.store]["software"]
    assert steady.store in fleet_rows(client, software=version)
    assert set(fleet_rows(signed_in(hub, now, "southern"))) == {silent.store}
    page = client.get("/fleet").get_data(as_text=True)
    assert f'data-store="{quits.store}" data-status="offline"' in page
    # the ops alert: raised once, notified once to each destination
    assert check_fleet(hub.engine, now[0], OFFLINE_MS, notifiers) == 1
    assert check_fleet(hub.engine, now[0], OFFLINE_MS, notifiers) == 0  # raised once
    raised = [e for e in hook.events if e["store_id"] == quits.store]
    assert [(e["type"], e["kind"]) for e in raised] == [("fleet.alert.raised", "offline")]
    assert [m["Subject"] for m in inbox.messages] == [f"footfall: box {quits.store} offline raised"]
    assert {e["store_id"] for e in hook.events} == {quits.store}  # never seen is no alert
    # it comes back: ok on the page at once, but the alert clears only after 2 heartbeats
    sync_all(quits)
    now[0] = seen_ms(hub, quits.store) + MIN_MS
    assert fleet_rows(client)[quits.store]["status"] == "ok"
    assert check_fleet(hub.engine, now[0], OFFLINE_MS, notifiers) == 0
    sync_all(quits)
    assert check_fleet(hub.engine, now[0], OFFLINE_MS, notifiers) == 1
    assert check_fleet(hub.engine, now[0], OFFLINE_MS, notifiers) == 0
    events = [(e["type"], e["kind"]) for e in hook.events if e["store_id"] == quits.store]
    assert events == [("fleet.alert.raised", "offline"), ("fleet.alert.cleared", "offline")]
    assert len(inbox.messages) == 2 and "cleared" in inbox.messages[1]["Subject"]
    with hub.engine.connect() as conn:
        alerts = conn.execute(
            select(fleet_alerts).where(fleet_alerts.c.store_id == quits.store)
        ).all()
    assert len(alerts) == 1 and alerts[0].cleared_ms is not None


def _edit(client: FlaskClient, store: str, text: str, parent: int | None) -> tuple[int, str]:
    page = client.get(f"/stores/{store}/config").get_data(as_text=True)
    token = CSRF.search(page)
    assert token
    answer = client.post(
        f"/stores/{store}/config",
        data={"csrf_token": token[1], "yaml": text, "parent": "" if parent is None else parent},
    )
    return answer.status_code, answer.get_data(as_text=True)


def _running(hub: Hub, store: str) -> dict[str, Any]:
    with hub.engine.connect() as conn:
        body = conn.execute(
            select(box_heartbeats.c.body).where(box_heartbeats.c.store_id == store)
        ).scalar_one()
    config: dict[str, Any] = json.loads(body)["config"]
    return config


def test_a_config_pushed_applied_reported_a_bad_one_rejected_and_a_conflict_shown(
    hub: Hub, tmp_path: Path
) -> None:
    box = new_sim_box(hub, tmp_path, "cfg")
    add_account(hub, "editor", "admin")
    add_account(hub, "reader", "viewer")
    sync_all(box)
    original = box.config.read_text()
    assert _running(hub, box.store)["version"] == 0
    now = [int(time.time() * 1000)]
    client = signed_in(hub, now, "editor")
    # an invalid edit: the box's own line-numbered errors, nothing stored
    bad = original.replace("width_m: 10", "width_m: -3")
    with pytest.raises(ConfigError) as box_error:
        parse_config(bad, "store.yaml")
    code, page = _edit(client, box.store, bad, 0)
    assert code == 400 and str(box_error.value.issues[0]) in page.replace("&#39;", "'")
    assert re.search(r"store\.yaml:\d+: floor_plan\.width_m", str(box_error.value.issues[0]))
    # a viewer may read but not save
    viewer = signed_in(hub, now, "reader")
    assert viewer.get(f"/stores/{box.store}/config").status_code == 200
    assert _edit(viewer, box.store, original, 0)[0] == 403
    with hub.engine.connect() as conn:
        assert conn.execute(select(store_configs)).all() == []
    # a good edit: pushed on the next sync, applied atomically (the old file kept), reported
    hours = original.replace(
        "timezone: Europe/London}",
        "timezone: Europe/London, opening_hours: [{days: [mon], open: '09:00', close: '18:00'}]}",
    )
    parse_config(hours, "store.yaml")
    code, _ = _edit(client, box.store, hours, 0)
    assert code == 302
    sync_all(box)  # receives and applies version 1
    assert box.config.read_text() == hours
    assert (box.folder / "store.yaml.prev").read_text() == original
    sync_all(box)  # reports it
    running = _running(hub, box.store)
    assert (running["version"], running["source"], running["hash"]) == (1, "hub", text_hash(hours))
    assert 'id="box-version">1<' in client.get(f"/stores/{box.store}/config").get_data(as_text=True)
    # a version the box refuses (here: a hub whose check let it through): reported, old kept
    broken = hours.replace("in_side: right", "in_side: upwards")
    with pytest.raises(ConfigError) as refused:
        parse_config(broken, "store.yaml")
    with hub.engine.begin() as conn:
        conn.execute(store_configs.insert().values(
            store_id=box.store, version=2, parent=1, yaml=broken, hash=text_hash(broken),
            author="old-hub", created_ms=now[0]))  # fmt: skip
    sync_all(box)
    sync_all(box)
    assert box.config.read_text() == hours  # the old one keeps running
    running = _running(hub, box.store)
    assert running["version"] == 1
    assert running["rejected"] == {"version": 2, "error": str(refused.value.issues[0])}
    row = fleet_rows(client)[box.store]
    assert row["status"] == "degraded" and "config version 2 rejected: store.yaml:" in row["reason"]
    # a conflict: the installer edits on the box while a manager edits on the hub
    code, _ = _edit(client, box.store, hours.replace("18:00", "19:00"), 1)
    assert code == 302
    local = hours.replace("Test shop", "Test shop (installer)")
    box.config.write_text(local)
    sync_all(box)
    assert box.config.read_text() == local  # never silently overwritten
    running = _running(hub, box.store)
    assert (running["source"], running["parent"]) == ("box", 1)
    page = client.get(f"/stores/{box.store}/config").get_data(as_text=True)
    assert 'id="conflict"' in page
    diff = page.split('id="conflict-diff"')[1].split("</pre>")[0]
    assert "-store: {id: shop, name: Test shop (installer)" in diff and "19:00" in diff
