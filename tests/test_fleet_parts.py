"""The fleet's parts: the heartbeat's wire shape, the hub's endpoint refusals, the box's
live config taking a hub version (or refusing it), and what the hub's import of the
config's validation loads."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import time
import uuid
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import func, select

import wire
from appliance.box.heartbeat import BoxAgent
from appliance.box.remote_config import RemoteConfig
from appliance.config import load_config
from appliance.config.live import LiveConfig
from cloud_hub.schema import box_heartbeats, heartbeat_history
from local_db import connect
from local_db.outbox import DownlinkRecord, record_downlink
from local_db.schema import forbidden_reason
from tests.hub_support import Hub
from tests.stores import SHOP
from tests.sync_support import box_config, new_box
from wire.heartbeat import (
    HEARTBEAT_PATH,
    MAX_HEARTBEAT_BYTES,
    check_heartbeat,
    decode_heartbeat,
    encode_heartbeat,
)

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def beat(tmp_path: Path) -> dict[str, Any]:
    """A real heartbeat of a box that is not running (``footfall sync push``'s)."""
    config = tmp_path / "store.yaml"
    config.write_text(SHOP)
    with closing(new_box(tmp_path / "box.db")):
        pass
    agent = BoxAgent(load_config(config), config, tmp_path / "box.db", "s1")
    facts: dict[str, Any] = agent.facts()
    return facts


def test_a_heartbeat_round_trips_with_its_manifest_and_no_trajectory_field(
    beat: dict[str, Any],
) -> None:
    assert decode_heartbeat(encode_heartbeat(beat)) == beat
    assert beat["config"]["version"] == 0 and beat["config"]["source"] == "box"
    files = beat["manifest"]["files"]
    assert "appliance/box/heartbeat.py" in files and "config/store.yaml" in files
    assert [k for k in beat if forbidden_reason(k)] == []
    for key, value, where in [
        ("tracks", [[1.0, 2.0]], "$.tracks"),  # no trajectory can ride along
        ("status", "fine", "$.status"),
        ("uptime_s", -1, "$.uptime_s"),
        ("sent_ms", True, "$.sent_ms"),
        ("cameras", [{"id": "a", "state": "up", "fps": 1.0, "x": 3}], "$.cameras[0].x"),
    ]:
        bad = copy.deepcopy(beat)
        bad[key] = value
        with pytest.raises(wire.WireError) as refused:
            check_heartbeat(bad)
        assert refused.value.path == where, (key, refused.value)
    tampered = copy.deepcopy(beat)
    tampered["manifest"]["files"]["appliance/box/heartbeat.py"] = "0" * 64
    with pytest.raises(wire.WireError, match="does not match"):
        check_heartbeat(tampered)
    with pytest.raises(wire.UnknownSchemaError):
        check_heartbeat({**beat, "v": 2})
    with pytest.raises(wire.BodyTooLargeError):
        decode_heartbeat(b" " * (MAX_HEARTBEAT_BYTES + 1))


def _post(hub: Hub, store: str, body: bytes, msg_id: str, when: int | None = None) -> Any:
    headers = wire.sign_headers(hub.secrets[store], msg_id, store, body,
                                when or int(time.time()))  # fmt: skip
    del headers["Content-Encoding"]
    return requests.post(hub.url + HEARTBEAT_PATH, data=body, headers=headers, timeout=60)


def _stored(hub: Hub, store: str) -> tuple[int, int]:
    with hub.engine.connect() as conn:
        return tuple(  # type: ignore[return-value]
            int(conn.execute(select(func.count()).select_from(t).where(t.c.store_id == store))
                .scalar_one())
            for t in (box_heartbeats, heartbeat_history)
        )  # fmt: skip


def test_the_hub_refuses_bad_heartbeats_with_the_reason_and_stores_nothing(
    hub: Hub, beat: dict[str, Any]
) -> None:
    store, other = hub.new_store(), hub.new_store()
    good = {**beat, "store_id": store, "heartbeat_id": uuid.uuid4().hex}
    body = encode_heartbeat(good)
    unsigned = requests.post(hub.url + HEARTBEAT_PATH, data=body, timeout=60)
    assert unsigned.status_code == 401
    shape = json.dumps({**good, "tracks": []}).encode()
    answer = _post(hub, store, shape, good["heartbeat_id"])
    assert answer.status_code == 400 and answer.json()["path"] == "$.tracks"
    for_other = encode_heartbeat({**good, "store_id": other})
    answer = _post(hub, store, for_other, good["heartbeat_id"])
    assert answer.status_code == 403 and "signed by" in answer.json()["error"]
    answer = _post(hub, store, body, "not-the-id")
    assert answer.status_code == 400 and "heartbeat id" in answer.json()["error"]
    assert _stored(hub, store) == (0, 0)
    when = int(time.time())
    answer = _post(hub, store, body, good["heartbeat_id"], when)
    assert answer.status_code == 200, answer.text
    ack, items = wire.decode_answer(answer.content)
    assert ack.batch_id == good["heartbeat_id"] and items == []
    replay = _post(hub, store, body, good["heartbeat_id"], when)
    assert replay.status_code == 409 and "replayed" in replay.json()["error"]
    assert _stored(hub, store) == (1, 1)


def _offer(db: Path, item_id: str, payload: dict[str, object]) -> None:
    with closing(connect(db)) as conn:
        record_downlink(conn, "s1", [DownlinkRecord("config_version", item_id, payload, True)],
                        int(time.time() * 1000))  # fmt: skip


def test_the_live_config_takes_a_hub_version_and_keeps_the_old_on_a_bad_one(
    tmp_path: Path,
) -> None:
    config = box_config(tmp_path, "http://127.0.0.1:9", "s1")
    db = tmp_path / "box.db"
    with closing(new_box(db)):
        pass
    live = LiveConfig(config)
    remote = RemoteConfig(config, db, "s1", live)
    assert remote.state()["version"] == 0
    renamed = config.read_text().replace("name: Test shop", "name: Renamed shop")
    _offer(db, "config-1", {"version": 1, "parent": 0, "yaml": renamed, "hash": "x"})
    assert remote.act() == 1
    assert live.current().store.name == "Renamed shop"
    assert remote.state()["version"] == 1
    assert remote.act() == 0  # acted on once
    broken = renamed.replace("fps: 10", "fps: many", 1)
    _offer(db, "config-2", {"version": 2, "parent": 1, "yaml": broken, "hash": "y"})
    assert remote.act() == 0
    state = remote.state()
    assert state["version"] == 1 and state["rejected"]["version"] == 2
    assert state["rejected"]["error"].startswith(f"{config.name}:")
    assert live.current().store.name == "Renamed shop" and live.error is None
    assert config.read_text() == renamed


def test_the_hubs_config_validation_loads_no_box_runtime() -> None:
    # (the detector settings' module, vision.onnx_model, imports local_db.durable's
    # atomic_write: a file helper, no database is opened)
    code = (
        "import sys, cloud_hub.app, cloud_hub.store_config\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('cv2', 'onnxruntime', 'torch',"
        " 'ultralytics', 'sync', 'webui') or m.startswith(('appliance.box', 'appliance.cli'))]\n"
        "print(sorted(bad))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=120, check=True)  # fmt: skip
    assert done.stdout.strip() == "[]", done.stdout + done.stderr


def test_ops_alert_destinations_come_from_the_environment_or_refuse_half_of_one() -> None:
    from cloud_hub.fleet_alerts import MailNotifier, WebhookNotifier, notifiers_from_env

    assert notifiers_from_env({}) == []
    found = notifiers_from_env({
        "FOOTFALL_HUB_ALERT_WEBHOOK_URL": "https://ops.example/hook",
        "FOOTFALL_HUB_ALERT_WEBHOOK_SECRET": "whsec_c2VjcmV0",
        "FOOTFALL_HUB_SMTP": "mail.example:2525",
        "FOOTFALL_HUB_ALERT_MAIL_FROM": "hub@example.org",
        "FOOTFALL_HUB_ALERT_MAIL_TO": "a@example.org, b@example.org",
    })  # fmt: skip
    assert isinstance(found[0], WebhookNotifier) and isinstance(found[1], MailNotifier)
    assert (found[1].host, found[1].port, list(found[1].recipients)) == (
        "mail.example", 2525, ["a@example.org", "b@example.org"])  # fmt: skip
    with pytest.raises(ValueError, match="WEBHOOK_SECRET"):
        notifiers_from_env({"FOOTFALL_HUB_ALERT_WEBHOOK_URL": "https://ops.example/hook"})
    with pytest.raises(ValueError, match="host:port"):
        notifiers_from_env({"FOOTFALL_HUB_SMTP": "mail.example"})
