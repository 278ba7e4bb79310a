"""The Alerts page: active alerts and history, acknowledging (managers, with the CSRF token)."""

from __future__ import annotations

import re
from pathlib import Path

from appliance.alerts import get_alert
from appliance.config import load_config
from local_db import connect
from tests.webui_support import REPO, csrf_token, make_app, raise_alert, sign_in

CONFIG = REPO / "examples" / "sim" / "supermarket" / "store.yaml"
T = 1_717_600_000_000  # 2024-06-05 17:06:40 in Berlin


def test_active_alerts_and_history_in_store_time(tmp_path: Path) -> None:
    app = make_app(tmp_path, CONFIG)
    app.config["FOOTFALL_CLOCK"] = lambda: (T + 600_000) / 1000
    alert_id = raise_alert(tmp_path / "box.db", load_config(CONFIG), T, "queue-1 has 6 people")
    client = app.test_client()
    sign_in(client, "staff")
    page = client.get("/alerts", headers={"HX-Request": "true"}).get_data(as_text=True)
    active = page.split('id="active-alerts"')[1].split("</table>")[0]
    assert f'data-alert="{alert_id}"' in active and "queue-1 has 6 people" in active
    assert "Wed 5 Jun 2024 17:06" in active  # raised, in store time
    assert "Acknowledge</button>" not in page  # staff may not
    history = page.split('id="alert-history"')[1]
    assert f'data-alert="{alert_id}"' in history
    live = client.get("/live", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "queue-1 has 6 people" in live.split('id="live-alerts"')[1]


def test_acknowledge_needs_the_permission_and_the_csrf_token(tmp_path: Path) -> None:
    app = make_app(tmp_path, CONFIG)
    app.config["FOOTFALL_CLOCK"] = lambda: (T + 600_000) / 1000
    alert_id = raise_alert(tmp_path / "box.db", load_config(CONFIG), T)
    url = f"/alerts/{alert_id}/ack"
    manager = app.test_client()
    sign_in(manager, "manager")
    assert manager.post(url).status_code == 400  # no CSRF token
    assert manager.post(url, headers={"X-CSRFToken": "forged"}).status_code == 400
    staff = app.test_client()
    sign_in(staff, "staff")
    assert staff.post(url, data={"csrf_token": csrf_token(staff, "/alerts")}).status_code == 403
    page = manager.get("/alerts").get_data(as_text=True)
    assert "Acknowledge</button>" in page
    token = re.search(r'"X-CSRFToken": "([^"]+)"', page)  # what htmx sends from hx-headers
    assert token
    done = manager.post(url, headers={"HX-Request": "true", "X-CSRFToken": token.group(1)})
    assert done.status_code == 200
    assert "manager · Wed 5 Jun 2024 17:16" in done.get_data(as_text=True)
    conn = connect(tmp_path / "box.db")
    try:
        alert = get_alert(conn, alert_id)
        assert alert is not None and alert.acked_by == "manager" and alert.acked_ms == T + 600_000
    finally:
        conn.close()
    again = manager.post(url, data={"csrf_token": token.group(1)})
    assert again.status_code == 302 and again.headers["Location"] == "/alerts"
    assert "was already acknowledged" in manager.get("/alerts").get_data(as_text=True)
    assert manager.post("/alerts/999/ack", data={"csrf_token": token.group(1)}).status_code == 404
